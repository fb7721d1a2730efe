import Foundation
import MLPCore

/// The matrix products: each through its cuBLASLt plan (`MatmulPlanner`), on the main or the side stream, with its
/// stream's workspace.
extension CUDABackend {
    public func gemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: DevicePointer<Float>, lda: Int, b: DevicePointer<Float>, ldb: Int, beta: Float, c: DevicePointer<Float>, ldc: Int) {
        // Waits for the side stream only if it touches these matrices: the first layer's weight gradient (a plain
        // product) then runs beside the later layers' weight gradients instead of after them.
        if sidePending && (sideAccesses.writes(into: StreamAccesses.extent(a, rows: transposeA ? k : m, stride: lda))
                                                      || sideAccesses.writes(into: StreamAccesses.extent(b, rows: transposeB ? n : k, stride: ldb))
                                                      || sideAccesses.uses(StreamAccesses.extent(c, rows: m, stride: ldc))) {
            join()
        }
        enqueueGemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        mark("product \(m)×\(n)×\(k) \(transposeA ? "T" : "N")\(transposeB ? "T" : "N")")
    }

    /// `gemm` on the main stream without joining the side stream first (for operations that know what it reads).
    func enqueueGemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: DevicePointer<Float>, lda: Int, b: DevicePointer<Float>, ldb: Int, beta: Float, c: DevicePointer<Float>, ldc: Int) {
        if case .replaying = mode { return }  // recorded in the graph
        record {
            let call = MatmulCall(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                                  a: a.address, lda: lda, b: b.address, ldb: ldb, beta: beta, c: c.address, ldc: ldc)
            try matmul(call, on: stream)
        }
    }

    /// Runs `call` through cuBLASLt on stream `target`. The first run of a shape outside a recording times the
    /// candidates (on the main stream, synchronously).
    func matmul(_ call: MatmulCall, on target: OpaquePointer?) throws {
        let onSide = target == sideStream
        let workspace = onSide ? workspaces.side : workspaces.main
        if precision == .bf16 {
            wroteWithoutMirror(DevicePointer<Float>(address: call.c), count: (call.m - 1) * call.ldc + call.n)
            if runsInBF16(call) { return try run(try bf16Operands(of: call, on: target), on: target, workspace) }
        }
        if transposesInput(of: call), let copy = try transposeScratch(floats: call.m * call.k, side: onSide) {
            // A weight gradient's Xᵀ·dZ: X copied transposed first, so that the product reads both operands along
            // k, the layout tensor-core kernels load directly (see `transposesInput`).
            try enqueueKernel("transpose", grid: (UInt32((call.m + 31) / 32), UInt32((call.k + 31) / 32)), block: 32, blockY: 8, on: target,
                              [DevicePointer<Float>(address: UInt(copy)), DevicePointer<Float>(address: call.a), Int32(call.k), Int32(call.m), Int32(call.lda)])
            var direct = call
            direct.transposeA = false
            direct.a = UInt(copy)
            direct.lda = call.k
            return try run(direct, on: target, workspace)
        }
        try run(call, on: target, workspace)
    }

    /// `call` with its plan's algorithm (timed first, if this is its shape's first run outside a recording).
    private func run(_ call: MatmulCall, on target: OpaquePointer?, _ workspace: UInt64) throws {
        let started = DispatchTime.now().uptimeNanoseconds
        guard let plan = try planner.plan(for: call) else {
            throw CUDAError("cuBLASLt \(planner.lt.getVersion()) offers no algorithm for the product \(call.label) in \(precision.rawValue)")
        }
        if !plan.tuned, case .direct = mode {
            // The plan was just made (a plan is tuned on its first use): the -v log says what making it and
            // choosing its algorithm cost, the bulk of a step shape's first run.
            let planned = DispatchTime.now().uptimeNanoseconds
            join()  // timed with nothing beside it (the main stream's work is finished by the timing itself)
            let line = try planner.tune(plan, call, stream: stream, workspace: workspaces.main, driver: driver)
            let chosen = DispatchTime.now().uptimeNanoseconds
            log("product \(line ?? plan.label): " + String(format: "planned in %.1f ms, algorithm chosen in %.1f ms",
                                                               Double(planned - started) / 1e6, Double(chosen - planned) / 1e6))
        }
        if case .capturing = mode, !plansInRecording.contains(where: { $0 === plan }) { plansInRecording.append(plan) }
        try planner.run(plan, call, stream: target, workspace: workspace)
    }

    /// Whether the product `call`, a weight gradient's Xᵀ·dZ, first copies X transposed into scratch and then runs
    /// without a transpose: TF32 products of at least `transposedInputMinimumFlops`
    /// (`MLP_CUDA_OFF=transposed-inputs`: none). TF32 tensor-core kernels read both operands along `k`; in Xᵀ·dZ neither
    /// is stored that way, and the product then runs far slower than the forward product of the same size. Copying
    /// every weight gradient's input lost on the small workloads, and in fp32 (whose kernels do not care about the
    /// layout) everywhere (Benchmarks/RESULTS.md). bf16 products never copy: Hopper's matrix units read 16-bit operands
    /// stored either way.
    private func transposesInput(of call: MatmulCall) -> Bool {
        options.uses(.transposedInputs) && Self.transposesInput(of: call, matrixUnits: precision == .tf32)
    }

    /// The rule of `transposesInput` for a backend of that precision.
    static func transposesInput(of call: MatmulCall, matrixUnits: Bool) -> Bool {
        call.transposeA && !call.transposeB && matrixUnits && 2.0 * Double(call.m) * Double(call.n) * Double(call.k) >= transposedInputMinimumFlops
    }
    static let transposedInputMinimumFlops = 2e9
    /// The stream's transpose scratch of at least `floats`, or nil if it is smaller and cannot grow here (inside a
    /// recording: the step ran once unrecorded before, so it has grown then).
    private func transposeScratch(floats: Int, side: Bool) throws -> UInt64? {
        let scratch = side ? \CUDABackend.transposeScratches.side : \.transposeScratches.main
        return try reserve(scratch, Float.self, count: floats) ? UInt64(self[keyPath: scratch].address) : nil
    }

    /// Grows the buffer at `buffer` to at least `count` elements (and `minimum`) if it is smaller and no step is being
    /// recorded or replayed; returns whether it holds `count` now. A recorded step keeps the address it was recorded
    /// with, so an outgrown buffer is retired, never freed.
    func reserve<T>(_ buffer: ReferenceWritableKeyPath<CUDABackend, GrowingBuffer>, _ type: T.Type, count: Int, minimum: Int = 0) throws -> Bool {
        let current = self[keyPath: buffer]
        if current.count >= count { return true }
        guard case .direct = mode else { return false }
        let grown = GrowingBuffer(address: try allocate(T.self, count: max(count, minimum)).address, count: max(count, minimum))
        if current.count > 0 { retiredScratch.append(current.address) }
        self[keyPath: buffer] = grown
        return true
    }
}
