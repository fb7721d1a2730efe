import Foundation
import MLPCore

/// What a recording of a training step is kept under: the step as the core described it, and the schedule chosen for it
/// (which decides its operations).
struct RecordingKey: Hashable {
    var network: Int, data: Int, rows: Int
    var batchGathered: Bool
    var schedule: StepSchedule
}

/// Whether operations run as they are queued, are being recorded into a step's graph, or are already in the graph being
/// replayed (then they only refresh the values that change).
enum RecordingMode { case direct, capturing(StepGraph), replaying(StepGraph) }

/// One recording of a training step: the executable graph, the pinned buffers its uploads copy from (in the order the
/// step issues them), and an event recorded after each launch.
final class StepGraph {
    var executable: OpaquePointer?
    var uploads: [(buffer: UnsafeMutableRawPointer, bytes: Int)] = []
    var done: OpaquePointer?
    /// Pinned memory for the uploads, allocated before recording starts (allocation is not allowed during a capture),
    /// handed out in order.
    var arena: UnsafeMutableRawPointer?
    var arenaUsed = 0
    static let arenaBytes = 256 * 1024
    /// With `MLP_CUDA_TRACE=1`: timing events recorded on the main stream inside the recording, after each operation,
    /// read after each replay (`trace`).
    var marks: [(label: String, event: OpaquePointer?)] = []
    /// When the recording began (for the `-v` log).
    var recordingStarted: UInt64 = 0
    /// With nodes whose arguments change between replays: the captured graph (kept: its nodes name those of the
    /// executable one), and the gather's node, whose indices each replay sets (`inlineIndexLimit`).
    var captured: OpaquePointer?
    var inlineGather: RecordedKernelNode?
    /// The optimizer updates' nodes, by the address of the parameters each updates: each replay sets the step's values
    /// in them.
    var updateNodes: [UInt: RecordedKernelNode] = [:]
    /// While recording: the launches of the gather and of the updates, from which their nodes' arguments are laid out
    /// when the recording ends.
    var gatherLaunch: (kernel: String, grid: (UInt32, UInt32), arguments: ArgumentBlock)?
    var updateLaunches: [UInt: (kernel: String, grid: (UInt32, UInt32), arguments: ArgumentBlock)] = [:]
}

/// A training step recorded once and replayed (`Backend.runTrainingStep`): the first time a step is seen it runs
/// unrecorded (its products' algorithms are timed then), the second time it is recorded as a CUDA graph, and afterwards
/// it is replayed: each replay sets the arguments that change in their nodes (the batch's indices in the gather's, the
/// optimizer's step values in each update's; the few uploads left, such as a large batch's indices, refresh the pinned
/// buffers they copy from) and launches the graph once. With `MLP_CUDA_OFF=graphs` every operation is launched as it
/// comes.
extension CUDABackend {
    public func runTrainingStep(_ step: TrainingStep, _ queue: (StepSchedule) -> Void) {
        let schedule = self.schedule(for: step)
        let key = RecordingKey(network: step.network, data: step.data, rows: step.rows, batchGathered: step.batchGathered, schedule: schedule)
        if step.tunes {
            tuneStep(key, schedule, queue)
        } else {
            runStep(key, schedule, queue)
        }
    }

    /// Runs, records or replays the step `key` once.
    func runStep(_ key: RecordingKey, _ schedule: StepSchedule, _ queue: (StepSchedule) -> Void) {
        bf16Mirrors.forgetStep()  // each recording starts from the same copies: the weights'
        beginStep(key)
        queue(schedule)
        endStep()
    }

    /// The start of a step's operations: a step seen before is recorded (the second time) or replayed.
    private func beginStep(_ key: RecordingKey) {
        guard usesGraphs, pendingError == nil, case .direct = mode else { return }
        guard seenSteps.contains(key) else {
            seenSteps.insert(key)
            firstRunStarted = DispatchTime.now().uptimeNanoseconds
            return
        }
        var list = graphs[key] ?? []
        let turn = parity[key, default: 0]
        parity[key] = turn ^ 1
        uploadIndex = 0
        if turn < list.count {
            let graph = list[turn]
            let start = DispatchTime.now().uptimeNanoseconds
            record { try driver.check(driver.cuEventSynchronize(graph.done), "cuEventSynchronize") }
            hostWaitSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if options.traces { readMarks(graph) }
            mode = .replaying(graph)
        } else {
            let graph = StepGraph()
            graph.recordingStarted = DispatchTime.now().uptimeNanoseconds
            record {
                try driver.check(driver.cuEventCreate(&graph.done, 2), "cuEventCreate")
                try driver.check(driver.cuMemAllocHost(&graph.arena, StepGraph.arenaBytes), "cuMemAllocHost")
                // CU_STREAM_CAPTURE_MODE_THREAD_LOCAL: only this thread's calls are checked for capture safety.
                try driver.check(driver.cuStreamBeginCapture(stream, 1), "cuStreamBeginCapture")
            }
            guard pendingError == nil else { return }
            list.append(graph)
            graphs[key] = list
            plansInRecording = []
            mode = .capturing(graph)
            mark("step start")
        }
    }

    /// The end of a step's operations: a recording is instantiated and launched, a replay launched.
    private func endStep() {
        join()
        mark("join of the second stream, step end")
        switch mode {
        case .direct:
            if let started = firstRunStarted {
                // The first run of a step of this shape, unrecorded: its products' plans are made (and timed, or
                // read from the tuning cache) here. Queued, not finished: the GPU may still be running it.
                firstRunStarted = nil
                log(String(format: "first step of its shape queued in %.1f ms (products planned, outside any graph)", Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6))
            }
            return
        case .capturing(let graph):
            mode = .direct
            lastRecordedPlans = plansInRecording
            var captured: OpaquePointer?
            let status = driver.cuStreamEndCapture(stream, &captured)
            record {
                try driver.check(status, "cuStreamEndCapture")
                let captureEnded = DispatchTime.now().uptimeNanoseconds
                try driver.check(driver.cuGraphInstantiate(&graph.executable, captured, 0), "cuGraphInstantiateWithFlags")
                if !recordsQuietly, let graphDescription, let lines = try? graphDescription.lines(captured) {
                    log("the recorded step's graph, its nodes in dependency order:\n" + lines.joined(separator: "\n"))
                }
                if graph.gatherLaunch != nil || !graph.updateLaunches.isEmpty {
                    // The nodes' handles are the captured graph's: kept with the recording.
                    graph.captured = captured
                    try findChangingNodes(of: graph, in: captured)
                } else {
                    _ = driver.cuGraphDestroy(captured)
                }
                let instantiated = DispatchTime.now().uptimeNanoseconds
                if !recordsQuietly { log(String(format: "step recorded as a CUDA graph: %.1f ms to record, %.1f ms to instantiate", Double(captureEnded - graph.recordingStarted) / 1e6, Double(instantiated - captureEnded) / 1e6)) }
                // Recording ran nothing: launch the step now.
                try driver.check(driver.cuGraphLaunch(graph.executable, stream), "cuGraphLaunch")
                try driver.check(driver.cuEventRecord(graph.done, stream), "cuEventRecord")
            }
        case .replaying(let graph):
            mode = .direct
            precondition(uploadIndex == graph.uploads.count, "a replayed step made \(uploadIndex) uploads where the recording had \(graph.uploads.count)")
            record {
                try driver.check(driver.cuGraphLaunch(graph.executable, stream), "cuGraphLaunch")
                try driver.check(driver.cuEventRecord(graph.done, stream), "cuEventRecord")
            }
        }
    }

    /// Whether operations run as they are queued: no step is being recorded or replayed.
    var runsDirectly: Bool {
        if case .direct = mode { return true }
        return false
    }

    /// Destroys every recorded step (after the GPU has finished them), so that the next step of each shape is recorded
    /// again, with the products' algorithms as they now are.
    func discardRecordings() {
        _ = driver.cuStreamSynchronize(stream)  // a launched recording's every stream joins the main one
        for graph in graphs.values.joined() {
            if let executable = graph.executable { _ = driver.cuGraphExecDestroy(executable) }
            if let captured = graph.captured { _ = driver.cuGraphDestroy(captured) }
            if let done = graph.done { _ = driver.cuEventDestroy(done) }
            for mark in graph.marks { _ = driver.cuEventDestroy(mark.event) }
            if let arena = graph.arena { _ = driver.cuMemFreeHost(arena) }
        }
        graphs = [:]
        parity = [:]
    }

    /// The kernel nodes of `captured` whose parameters the driver reports (library kernels, cuBLASLt's, may not): each
    /// with its function and its first argument's 8 bytes (a pointer, for ours).
    private func kernelNodes(in captured: OpaquePointer?) throws -> [(node: OpaquePointer?, function: OpaquePointer?, firstArgument: UInt64)] {
        guard let calls = driver.graphNodes else { return [] }
        var count = 0
        try driver.check(calls.cuGraphGetNodes(captured, nil, &count), "cuGraphGetNodes")
        var nodes = [OpaquePointer?](repeating: nil, count: count)
        try driver.check(calls.cuGraphGetNodes(captured, &nodes, &count), "cuGraphGetNodes")
        var found = [(node: OpaquePointer?, function: OpaquePointer?, firstArgument: UInt64)]()
        withUnsafeTemporaryAllocation(byteCount: 72, alignment: 8) { raw in
            for node in nodes.prefix(count) {
                var type: Int32 = -1
                guard calls.cuGraphNodeGetType(node, &type) == 0, type == 0 else { continue }  // CU_GRAPH_NODE_TYPE_KERNEL
                raw.initializeMemory(as: UInt8.self, repeating: 0)
                guard calls.cuGraphKernelNodeGetParams(node, raw.baseAddress!) == 0 else { continue }
                let function = raw.baseAddress!.load(as: OpaquePointer?.self)
                let parameters = raw.baseAddress!.load(fromByteOffset: 40, as: UnsafeMutablePointer<UnsafeMutableRawPointer?>?.self)
                let first = parameters?.pointee?.load(as: UInt64.self) ?? 0
                found.append((node, function, first))
            }
        }
        return found
    }

    /// Finds, in the graph `captured` just recorded as `graph`, the kernel nodes whose arguments each replay changes
    /// (the inline gather's, the updates'), and lays out their arguments from the launches they were recorded with.
    private func findChangingNodes(of graph: StepGraph, in captured: OpaquePointer?) throws {
        let nodes = try kernelNodes(in: captured)
        if let launch = graph.gatherLaunch {
            let function = functions[launch.kernel]!
            guard let found = nodes.first(where: { $0.function == function }) else {
                throw CUDAError("the recorded step's gather node was not found (set MLP_CUDA_OFF=inline-indices)")
            }
            graph.inlineGather = RecordedKernelNode(node: found.node, function: function, grid: launch.grid, block: 256, arguments: launch.arguments)
        }
        let updates = [functions["optimizer_update"]!, functions["optimizer_update_gather"]!]
        for node in nodes where updates.contains(node.function) {
            let parameters = UInt(node.firstArgument)
            guard let launch = graph.updateLaunches[parameters], functions[launch.kernel]! == node.function else { continue }
            graph.updateNodes[parameters] = RecordedKernelNode(node: node.node, function: node.function, grid: launch.grid, block: 256, arguments: launch.arguments)
        }
        guard graph.updateNodes.count == graph.updateLaunches.count else {
            throw CUDAError("\(graph.updateLaunches.count - graph.updateNodes.count) of the recorded step's optimizer updates were not found in its graph")
        }
        graph.gatherLaunch = nil
        graph.updateLaunches = [:]
    }

    /// Sets `node`'s arguments, as they now are, in `graph`'s executable graph for its next launch.
    func setArguments(of node: RecordedKernelNode, in graph: StepGraph, _ kernel: StaticString) throws {
        guard let calls = driver.graphNodes else { throw CUDAError("cuGraphExecKernelNodeSetParams is missing") }
        let status = calls.cuGraphExecKernelNodeSetParams(graph.executable, node.node, UnsafeRawPointer(node.parameters))
        if status != 0 { try driver.check(status, "cuGraphExecKernelNodeSetParams(\(kernel))") }
    }
}
