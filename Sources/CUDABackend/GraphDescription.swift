import Foundation

/// What a recorded step's CUDA graph holds, for the `-v` log: each node in an order its edges allow, with what it runs
/// (a kernel's name and launch shape, a memset, an event) and the nodes it waits for, programmatic edges marked; then
/// the longest chain of dependent nodes, which bounds a small step's time more than its arithmetic does (each node in
/// the chain costs a few microseconds however little it computes: Benchmarks/RESULTS.md).
///
/// It shows what the libraries put in the graph, which their API does not say: how many kernels a cuBLASLt product is
/// (a split of `k` may add a reduction kernel or a memset), and which edges the driver made programmatic. Everything it
/// needs is optional in the driver (CUDA 12.3 and later); where a call is missing it says so and describes nothing.
struct GraphDescription {
    private typealias GetEdges = @convention(c) (OpaquePointer?, UnsafeMutablePointer<OpaquePointer?>?, UnsafeMutablePointer<OpaquePointer?>?,
                                                 UnsafeMutableRawPointer?, UnsafeMutablePointer<Int>) -> CUresult
    private typealias GetName = @convention(c) (UnsafeMutablePointer<UnsafePointer<CChar>?>, OpaquePointer?) -> CUresult
    private let nodes: CUDADriver.GraphNodeCalls
    /// `cuGraphGetEdges_v2` (graph, from, to, edge data, count in/out): its `CUgraphEdgeData` is 8 bytes, the outgoing
    /// port first and the edge's type (1: programmatic) third.
    private let getEdges: GetEdges
    /// `cuFuncGetName` and `cuKernelGetName`: a node's kernel is one or the other (library kernels are often the second).
    private let functionName: GetName?, kernelName: GetName?

    /// Nil where the driver lacks the node or edge calls (before CUDA 12.3).
    init?(driver: CUDADriver) {
        guard let nodes = driver.graphNodes, let library = dlopen(driver.path, RTLD_NOW | RTLD_NOLOAD),
              let edges = dlsym(library, "cuGraphGetEdges_v2") else { return nil }
        self.nodes = nodes
        getEdges = unsafeBitCast(edges, to: GetEdges.self)
        functionName = dlsym(library, "cuFuncGetName").map { unsafeBitCast($0, to: GetName.self) }
        kernelName = dlsym(library, "cuKernelGetName").map { unsafeBitCast($0, to: GetName.self) }
    }

    /// The node types of `CUgraphNodeType`, by value.
    private static let typeNames = ["kernel", "memcpy", "memset", "host function", "child graph", "empty", "event wait",
                                    "event record", "semaphore signal", "semaphore wait", "allocation", "free",
                                    "memory operations", "conditional"]

    /// One line per node of `graph`, then a summary line; throws only when the driver refuses to list the graph.
    func lines(_ graph: OpaquePointer?) throws -> [String] {
        var count = 0
        guard nodes.cuGraphGetNodes(graph, nil, &count) == 0 else { throw CUDAError("cuGraphGetNodes failed") }
        var list = [OpaquePointer?](repeating: nil, count: count)
        guard nodes.cuGraphGetNodes(graph, &list, &count) == 0 else { throw CUDAError("cuGraphGetNodes failed") }
        list = Array(list.prefix(count))
        var edgeCount = 0
        guard getEdges(graph, nil, nil, nil, &edgeCount) == 0 else { throw CUDAError("cuGraphGetEdges_v2 failed") }
        var from = [OpaquePointer?](repeating: nil, count: edgeCount), to = from
        var data = [UInt64](repeating: 0, count: edgeCount)
        let status = data.withUnsafeMutableBytes { getEdges(graph, &from, &to, $0.baseAddress, &edgeCount) }
        guard status == 0 else { throw CUDAError("cuGraphGetEdges_v2 failed") }

        // Node handles are opaque: numbered by their place in the driver's list.
        var index = [OpaquePointer: Int]()
        for (i, node) in list.enumerated() { if let node { index[node] = i } }
        var incoming = [[(node: Int, programmatic: Bool)]](repeating: [], count: count)
        var outgoing = [[Int]](repeating: [], count: count)
        for e in 0..<min(edgeCount, from.count) {
            guard let f = from[e].flatMap({ index[$0] }), let t = to[e].flatMap({ index[$0] }) else { continue }
            let programmatic = (data[e] >> 16) & 0xFF == 1
            incoming[t].append((f, programmatic))
            outgoing[f].append(t)
        }
        // Kahn's order, lowest number first among the ready nodes; the longest chain (in nodes) ending at each.
        var remaining = incoming.map(\.count), ready = (0..<count).filter { remaining[$0] == 0 }
        var order = [Int](), depth = [Int](repeating: 1, count: count)
        while !ready.isEmpty {
            let n = ready.min()!
            ready.removeAll { $0 == n }
            order.append(n)
            for t in outgoing[n] {
                depth[t] = max(depth[t], depth[n] + 1)
                remaining[t] -= 1
                if remaining[t] == 0 { ready.append(t) }
            }
        }
        let number = Dictionary(uniqueKeysWithValues: order.enumerated().map { ($1, $0 + 1) })
        var lines = [String](), kernels = 0, programmaticEdges = 0
        for n in order {
            var type: Int32 = -1
            _ = nodes.cuGraphNodeGetType(list[n], &type)
            var what = Self.typeNames.indices.contains(Int(type)) ? Self.typeNames[Int(type)] : "node of type \(type)"
            if type == 0 {
                kernels += 1
                what = kernelLine(list[n]) ?? what
            }
            let after = incoming[n].map { "#\(number[$0.node] ?? 0)\($0.programmatic ? " (programmatic)" : "")" }
            programmaticEdges += incoming[n].filter(\.programmatic).count
            lines.append("  #\(number[n] ?? 0) \(what)\(after.isEmpty ? "" : "; after \(after.joined(separator: ", "))")")
        }
        let chain = order.map { depth[$0] }.max() ?? 0
        lines.append("  \(count) nodes (\(kernels) kernels), \(edgeCount) edges (\(programmaticEdges) programmatic); the longest chain of dependent nodes: \(chain)")
        return lines
    }

    /// "kernel NAME, grid X×Y×Z, block X×Y×Z, N bytes of dynamic shared memory", from the node's parameters
    /// (`CUDA_KERNEL_NODE_PARAMS_v2`: the function at 0, grid and block at 8 and 20, shared bytes at 32, the library
    /// kernel at 56); nil when the driver does not report them.
    private func kernelLine(_ node: OpaquePointer?) -> String? {
        withUnsafeTemporaryAllocation(byteCount: 72, alignment: 8) { raw -> String? in
            raw.initializeMemory(as: UInt8.self, repeating: 0)
            guard nodes.cuGraphKernelNodeGetParams(node, raw.baseAddress!) == 0 else { return nil }
            let base = raw.baseAddress!
            let function = base.load(as: OpaquePointer?.self), kernel = base.load(fromByteOffset: 56, as: OpaquePointer?.self)
            var name: UnsafePointer<CChar>?
            if let function, let functionName, functionName(&name, function) != 0 { name = nil }
            if name == nil, let kernel, let kernelName, kernelName(&name, kernel) != 0 { name = nil }
            let u = { (offset: Int) in base.load(fromByteOffset: offset, as: UInt32.self) }
            let shared = u(32)
            return "kernel \(name.map { String(cString: $0) } ?? "(unnamed)"), grid \(u(8))×\(u(12))×\(u(16)), block \(u(20))×\(u(24))×\(u(28))"
                + (shared > 0 ? ", \(shared) bytes of dynamic shared memory" : "")
        }
    }
}
