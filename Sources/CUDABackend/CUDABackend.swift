import Foundation
import MLPCore
import MNIST

/// The cuda backend: NVIDIA GPUs through the driver API, with the kernels of `Kernels` compiled by NVRTC at
/// start-up for the device's compute capability, and the matrix products through cuBLAS. The libraries are
/// opened with `dlopen` when the backend starts, so the package builds and runs where there is no CUDA; there,
/// starting it throws a `CUDAError` that lists every library path tried.
///
/// A backend holds its context, stream, pinned buffers and recorded graphs for the life of the process: make one
/// and keep it.
///
/// Every operation is queued on one stream; `download` and `synchronize` wait for it. A failure inside an
/// operation is kept and thrown by the next `synchronize()` (the `Backend` operations do not throw); with
/// `MLP_CUDA_SYNC=1` every operation synchronises and checks at once, to find the one that fails.
///
/// A training step (between `beginStep` and `endStep`) is recorded as a CUDA graph the first time it is seen and
/// replayed afterwards: each replay refreshes only the pinned buffers its uploads copy from (the batch's indices,
/// the optimizer's step values) and launches the graph once. `MLP_CUDA_GRAPH=0` launches every operation instead.
public final class CUDABackend: Backend {
    public let name = "cuda"
    public let isHostMemory = false
    public let deviceDescription: String
    /// Whether products may use TF32 matrix units (`--precision tf32`).
    public let allowTF32: Bool

    let driver: CUDADriver
    let blas: CUBLAS
    let stream: OpaquePointer?
    let blasHandle: OpaquePointer?
    private var functions = [String: OpaquePointer?]()
    /// Small uploads (a batch's indices, a metrics reset) go through a ring of pinned staging slots and an
    /// asynchronous copy, so the host does not wait for the GPU at every step; a slot's event says when the copy
    /// that last used it has run.
    private let stagingSlots: Int = 64
    private let stagingSlotBytes: Int = 64 * 1024
    private var staging: UnsafeMutableRawPointer?
    private var stagingEvents = [OpaquePointer?]()
    private var nextSlot = 0

    // MARK: Recorded steps (CUDA graphs)

    /// One recording of a training step: the executable graph, the pinned buffers its uploads copy from (in the
    /// order the step issues them), and an event recorded after each launch.
    private final class StepGraph {
        var executable: OpaquePointer?
        var uploads: [(buffer: UnsafeMutableRawPointer, bytes: Int)] = []
        var done: OpaquePointer?
        /// Pinned memory for the uploads, allocated before recording starts (allocation is not allowed during a
        /// capture), handed out in order.
        var arena: UnsafeMutableRawPointer?
        var arenaUsed = 0
        static let arenaBytes = 256 * 1024
    }
    private enum Mode { case direct, capturing(StepGraph), replaying(StepGraph) }
    private var mode = Mode.direct
    private var uploadIndex = 0
    /// Two recordings per step key, used in turn, so that the host fills one's upload buffers while the GPU still
    /// runs the other.
    private var graphs = [StepKey: [StepGraph]]()
    private var parity = [StepKey: Int]()
    /// Whether training steps are recorded and replayed as CUDA graphs (`MLP_CUDA_GRAPH=0` turns it off).
    public let usesGraphs: Bool
    /// `[8]` Floats: the optimizer's values for the step (see the `optimizer_update` kernel).
    private var hyperparameters = DevicePointer<Float>(address: 0)
    private let synchronizeEachOperation: Bool
    private var pendingError: CUDAError?

    /// Opens the driver, NVRTC and cuBLAS, takes device `device`'s primary context and compiles the kernels.
    /// - Throws: `CUDAError` saying which library is missing (with every path tried), or which call failed.
    public init(device: Int = 0, allowTF32: Bool = false, log: (String) -> Void = { _ in }) throws {
        let d = try CUDADriver.load()
        driver = d
        log("CUDA driver: \(d.path)")
        try d.check(d.cuInit(0), "cuInit")
        var version: Int32 = 0
        try d.check(d.cuDriverGetVersion(&version), "cuDriverGetVersion")
        var count: Int32 = 0
        try d.check(d.cuDeviceGetCount(&count), "cuDeviceGetCount")
        guard device < Int(count) else { throw CUDAError("--device \(device): this machine has \(count) CUDA device(s)") }
        var handle: Int32 = 0
        try d.check(d.cuDeviceGet(&handle, Int32(device)), "cuDeviceGet")
        var nameBuffer = [CChar](repeating: 0, count: 256)
        try d.check(d.cuDeviceGetName(&nameBuffer, 256, handle), "cuDeviceGetName")
        var major: Int32 = 0, minor: Int32 = 0
        try d.check(d.cuDeviceGetAttribute(&major, 75, handle), "cuDeviceGetAttribute(compute capability major)")
        try d.check(d.cuDeviceGetAttribute(&minor, 76, handle), "cuDeviceGetAttribute(compute capability minor)")
        var context: OpaquePointer?
        try d.check(d.cuDevicePrimaryCtxRetain(&context, handle), "cuDevicePrimaryCtxRetain")
        try d.check(d.cuCtxSetCurrent(context), "cuCtxSetCurrent")
        var s: OpaquePointer?
        try d.check(d.cuStreamCreate(&s, 0), "cuStreamCreate")
        stream = s

        let nvrtc = try NVRTC.load()
        var nvrtcMajor: Int32 = 0, nvrtcMinor: Int32 = 0
        _ = nvrtc.version(&nvrtcMajor, &nvrtcMinor)
        log("NVRTC \(nvrtcMajor).\(nvrtcMinor): \(nvrtc.path)")
        let started = Date()
        let cubin = try nvrtc.compileToCUBIN(Kernels.source, name: "mlp_kernels.cu", architecture: "sm_\(major)\(minor)")
        log("kernels compiled for sm_\(major)\(minor) in \(String(format: "%.2f", Date().timeIntervalSince(started))) s (\(cubin.count) bytes)")
        var module: OpaquePointer?
        try cubin.withUnsafeBytes { try d.check(d.cuModuleLoadData(&module, $0.baseAddress!), "cuModuleLoadData") }
        for kernel in ["gather_batch", "bias_activation", "activation_backward", "loss_rows", "optimizer_update"] {
            var function: OpaquePointer?
            try d.check(d.cuModuleGetFunction(&function, module, kernel), "cuModuleGetFunction(\(kernel))")
            functions[kernel] = function
        }

        blas = try CUBLAS.load()
        var h: OpaquePointer?
        let status = blas.create(&h)
        guard status == 0 else { throw CUDAError("cublasCreate failed with status \(status) (\(blas.path))") }
        blasHandle = h
        _ = blas.setStream(h, s)
        self.allowTF32 = allowTF32
        // CUBLAS_DEFAULT_MATH 0; CUBLAS_TF32_TENSOR_OP_MATH 3. Pedantic (strict fp32) is the default math for SGEMM.
        _ = blas.setMathMode(h, allowTF32 ? 3 : 0)
        var blasVersion: Int32 = 0
        _ = blas.version(h, &blasVersion)
        log("cuBLAS \(blasVersion): \(blas.path)")
        synchronizeEachOperation = ProcessInfo.processInfo.environment["MLP_CUDA_SYNC"] == "1"
        usesGraphs = ProcessInfo.processInfo.environment["MLP_CUDA_GRAPH"] != "0" && !synchronizeEachOperation
        // A workspace of cuBLAS's own, so that products recorded in a graph allocate nothing.
        var workspace: UInt64 = 0
        try d.check(d.cuMemAlloc(&workspace, 32 << 20), "cuMemAlloc(cuBLAS workspace)")
        _ = blas.setWorkspace(h, UnsafeMutableRawPointer(bitPattern: UInt(workspace)), 32 << 20)
        var hyper: UInt64 = 0
        try d.check(d.cuMemAlloc(&hyper, 8 * 4), "cuMemAlloc")
        hyperparameters = DevicePointer(address: UInt(hyper))
        var pinned: UnsafeMutableRawPointer?
        try d.check(d.cuMemAllocHost(&pinned, stagingSlots * stagingSlotBytes), "cuMemAllocHost")
        staging = pinned
        for _ in 0..<stagingSlots {
            var event: OpaquePointer?
            try d.check(d.cuEventCreate(&event, 2), "cuEventCreate")  // CU_EVENT_DISABLE_TIMING
            stagingEvents.append(event)
        }
        deviceDescription = "\(String(decoding: nameBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)), compute capability \(major).\(minor), driver API \(version), cuBLAS \(blasVersion), \(allowTF32 ? "tf32" : "fp32") products"
    }

    // MARK: Errors

    private func record(_ body: () throws -> Void) {
        guard pendingError == nil else { return }
        do {
            try body()
            if synchronizeEachOperation { try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize") }
        } catch let error as CUDAError {
            pendingError = error
            if synchronizeEachOperation { fatalError("\(error)") }
        } catch {
            pendingError = CUDAError("\(error)")
        }
    }

    public func synchronize() throws {
        try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
        if let error = pendingError {
            pendingError = nil
            throw error
        }
    }

    // MARK: Memory

    public func allocate<T>(_ type: T.Type, count: Int) throws -> DevicePointer<T> {
        var address: UInt64 = 0
        let bytes = max(count, 1) * MemoryLayout<T>.stride
        try driver.check(driver.cuMemAlloc(&address, bytes), "cuMemAlloc(\(bytes) bytes)")
        try driver.check(driver.cuMemsetD8(address, 0, bytes), "cuMemsetD8")
        return DevicePointer(address: UInt(address))
    }

    public func free<T>(_ pointer: DevicePointer<T>) {
        _ = driver.cuMemFree(UInt64(pointer.address))
    }

    public func upload<T>(_ source: UnsafeBufferPointer<T>, to destination: DevicePointer<T>) {
        guard let base = source.baseAddress, !source.isEmpty else { return }
        let bytes = source.count * MemoryLayout<T>.stride
        record {
            switch mode {
            case .replaying(let graph):
                // The recorded copy reads this buffer: refresh it (the previous launch of this recording is done).
                let (buffer, size) = graph.uploads[uploadIndex]
                precondition(size == bytes, "a replayed step uploads \(bytes) bytes where the recording had \(size)")
                buffer.copyMemory(from: base, byteCount: bytes)
                uploadIndex += 1
                return
            case .capturing(let graph):
                let offset = (graph.arenaUsed + 63) / 64 * 64
                guard offset + bytes <= StepGraph.arenaBytes, let arena = graph.arena else {
                    throw CUDAError("a recorded step uploads more than \(StepGraph.arenaBytes) bytes (set MLP_CUDA_GRAPH=0)")
                }
                let buffer = arena + offset
                graph.arenaUsed = offset + bytes
                buffer.copyMemory(from: base, byteCount: bytes)
                graph.uploads.append((buffer, bytes))
                try driver.check(driver.cuMemcpyHtoDAsync(UInt64(destination.address), buffer, bytes, stream), "cuMemcpyHtoDAsync (recorded)")
                return
            case .direct:
                break
            }
            if bytes <= stagingSlotBytes, let staging {
                let slot = nextSlot
                nextSlot = (nextSlot + 1) % stagingSlots
                // Wait only if the copy that last used this slot has not run yet (the GPU is 64 uploads behind).
                try driver.check(driver.cuEventSynchronize(stagingEvents[slot]), "cuEventSynchronize")
                let pinned = staging + slot * stagingSlotBytes
                pinned.copyMemory(from: base, byteCount: bytes)
                try driver.check(driver.cuMemcpyHtoDAsync(UInt64(destination.address), pinned, bytes, stream), "cuMemcpyHtoDAsync")
                try driver.check(driver.cuEventRecord(stagingEvents[slot], stream), "cuEventRecord")
            } else {
                // Large uploads (parameters, datasets) are synchronous: ordered after the stream's work (a blocking
                // stream) and finished when this returns.
                try driver.check(driver.cuMemcpyHtoD(UInt64(destination.address), base, bytes), "cuMemcpyHtoD")
            }
        }
    }

    public func download<T>(_ source: DevicePointer<T>, count: Int, into destination: UnsafeMutableBufferPointer<T>) {
        guard count > 0 else { return }
        record {
            try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
            try driver.check(driver.cuMemcpyDtoH(destination.baseAddress!, UInt64(source.address), count * MemoryLayout<T>.stride), "cuMemcpyDtoH")
        }
    }

    // MARK: Steps as graphs

    public func beginStep(_ key: StepKey) {
        guard usesGraphs, pendingError == nil, case .direct = mode else { return }
        var list = graphs[key] ?? []
        let turn = parity[key, default: 0]
        parity[key] = turn ^ 1
        uploadIndex = 0
        if turn < list.count {
            let graph = list[turn]
            record { try driver.check(driver.cuEventSynchronize(graph.done), "cuEventSynchronize") }
            mode = .replaying(graph)
        } else {
            let graph = StepGraph()
            record {
                try driver.check(driver.cuEventCreate(&graph.done, 2), "cuEventCreate")
                try driver.check(driver.cuMemAllocHost(&graph.arena, StepGraph.arenaBytes), "cuMemAllocHost")
                // CU_STREAM_CAPTURE_MODE_THREAD_LOCAL: only this thread's calls are checked for capture safety.
                try driver.check(driver.cuStreamBeginCapture(stream, 1), "cuStreamBeginCapture")
            }
            guard pendingError == nil else { return }
            list.append(graph)
            graphs[key] = list
            mode = .capturing(graph)
        }
    }

    public func endStep() {
        switch mode {
        case .direct:
            return
        case .capturing(let graph):
            mode = .direct
            var captured: OpaquePointer?
            let status = driver.cuStreamEndCapture(stream, &captured)
            record {
                try driver.check(status, "cuStreamEndCapture")
                try driver.check(driver.cuGraphInstantiate(&graph.executable, captured, 0), "cuGraphInstantiateWithFlags")
                _ = driver.cuGraphDestroy(captured)
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

    // MARK: Launching

    private func launch(_ kernel: String, grid: (UInt32, UInt32), block: UInt32, blockY: UInt32 = 1, _ arguments: [any KernelArgument]) {
        if case .replaying = mode { return }  // recorded in the graph
        record {
            var slots = [UInt64](repeating: 0, count: arguments.count)
            try slots.withUnsafeMutableBytes { raw in
                var pointers = [UnsafeMutableRawPointer?]()
                for (i, argument) in arguments.enumerated() {
                    let slot = raw.baseAddress! + 8 * i
                    argument.write(to: slot)
                    pointers.append(slot)
                }
                try pointers.withUnsafeMutableBufferPointer { p in
                    try driver.check(driver.cuLaunchKernel(functions[kernel]!, grid.0, grid.1, 1, block, blockY, 1, 0, stream, p.baseAddress, nil), "cuLaunchKernel(\(kernel))")
                }
            }
        }
    }

    private func blocks(_ count: Int, _ threads: Int = 256) -> UInt32 { UInt32(max(1, min((count + threads - 1) / threads, 65_535))) }

    // MARK: Operations

    public func gatherBatch(inputs: DevicePointer<Float>, labels: DevicePointer<Int32>, pixels: DevicePointer<UInt8>, sourceLabels: DevicePointer<UInt8>, indices: DevicePointer<Int32>, batch: Int, features: Int, normalization: Normalization) {
        launch("gather_batch", grid: (blocks(features), UInt32(batch)), block: 256,
               [inputs, labels, pixels, sourceLabels, indices, Int32(batch), Int32(features), normalization.scale, normalization.shift])
    }

    public func gemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: DevicePointer<Float>, lda: Int, b: DevicePointer<Float>, ldb: Int, beta: Float, c: DevicePointer<Float>, ldc: Int) {
        // cuBLAS is column-major: the row-major C = op(A)·op(B) is the column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, and a
        // row-major matrix read column-major is its transpose, so B and A swap places and keep their flags.
        if case .replaying = mode { return }  // recorded in the graph
        record {
            var alphaValue = alpha, betaValue = beta
            let status = blas.sgemm(
                blasHandle, transposeB ? 1 : 0, transposeA ? 1 : 0, Int32(n), Int32(m), Int32(k), &alphaValue,
                UnsafePointer(bitPattern: b.address), Int32(ldb), UnsafePointer(bitPattern: a.address), Int32(lda),
                &betaValue, UnsafeMutablePointer(bitPattern: c.address), Int32(ldc))
            guard status == 0 else { throw CUDAError("cublasSgemm(\(m)×\(n)×\(k)) failed with status \(status)") }
        }
    }

    public func biasActivationForward(values: DevicePointer<Float>, bias: DevicePointer<Float>, rows: Int, columns: Int, activation: Activation) {
        launch("bias_activation", grid: (blocks(rows * columns), 1), block: 256,
               [values, bias, Int64(rows * columns), Int32(columns), Int32(Activation.allCases.firstIndex(of: activation)!)])
    }

    public func activationBackward(gradient: DevicePointer<Float>, biasGradient: DevicePointer<Float>, outputs: DevicePointer<Float>, rows: Int, columns: Int, activation: Activation) {
        launch("activation_backward", grid: (UInt32((columns + 31) / 32), 1), block: 32, blockY: 16,
               [gradient, biasGradient, outputs, Int32(rows), Int32(columns), Int32(Activation.allCases.firstIndex(of: activation)!)])
    }

    public func lossForwardBackward(gradient: DevicePointer<Float>?, metrics: DevicePointer<Float>, predictions: DevicePointer<Int32>?, outputs: DevicePointer<Float>, labels: DevicePointer<Int32>, rows: Int, columns: Int, loss: Loss, gradientScale: Float) {
        launch("loss_rows", grid: (blocks(rows, 128), 1), block: 128,
               [gradient ?? DevicePointer(address: 0), metrics, predictions ?? DevicePointer<Int32>(address: 0), outputs, labels,
                Int32(rows), Int32(columns), Int32(loss == .softmaxCrossEntropy ? 0 : 1), gradientScale])
    }

    public func optimizerUpdate(parameters: DevicePointer<Float>, gradients: DevicePointer<Float>, state: DevicePointer<Float>, count: Int, step: OptimizerStep) {
        let (c1, c2) = step.biasCorrections
        let kind: Int32 = step.kind == .sgd ? 0 : (step.kind == .adam ? 1 : 2)
        // The step's values go through device memory (an upload, refreshed on every replay), not kernel arguments.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 8) { h in
            h[0] = step.learningRate; h[1] = step.momentum; h[2] = step.weightDecay; h[3] = step.beta1
            h[4] = step.beta2; h[5] = step.epsilon; h[6] = c1; h[7] = c2
            upload(UnsafeBufferPointer(h), to: hyperparameters)
        }
        launch("optimizer_update", grid: (blocks(count), 1), block: 256,
               [parameters, gradients, state, Int64(count), kind, Int32(step.nesterov ? 1 : 0), hyperparameters])
    }
}

/// A value passed to a kernel: written into an 8-byte slot whose address goes into the launch's parameter array.
protocol KernelArgument {
    func write(to slot: UnsafeMutableRawPointer)
}

extension DevicePointer: KernelArgument {
    func write(to slot: UnsafeMutableRawPointer) { slot.storeBytes(of: UInt64(address), as: UInt64.self) }
}
extension Int32: KernelArgument {
    func write(to slot: UnsafeMutableRawPointer) { slot.storeBytes(of: self, as: Int32.self) }
}
extension Int64: KernelArgument {
    func write(to slot: UnsafeMutableRawPointer) { slot.storeBytes(of: self, as: Int64.self) }
}
extension Float: KernelArgument {
    func write(to slot: UnsafeMutableRawPointer) { slot.storeBytes(of: self, as: Float.self) }
}
