import Foundation
import MLPCore
import MNIST

/// The cuda backend: NVIDIA GPUs through the driver API, with the kernels of `Kernels` compiled by NVRTC for the
/// device's compute capability, and the matrix products through cuBLASLt (`MatmulPlanner`: each shape's algorithm
/// chosen by timing, bias and ReLU in the forward products' epilogue). The libraries are opened with `dlopen` when the
/// backend starts, so the package builds and runs where there is no CUDA; there, starting it throws a `CUDAError` that
/// lists every library path tried.
///
/// A backend holds its context, streams, pinned buffers, product plans and recorded graphs for the life of the process:
/// make one and keep it. Its switches are `CUDAOptions`, read once when it starts. This file holds its state and
/// start-up; each concept is in a `CUDABackend+<Concept>.swift` file of its own (memory, launches, the recorded step,
/// streams, products, layers, output layer, optimizer), the CUDA C in `Kernels*.swift`.
///
/// Operations are queued on a main stream; a layer's weight-gradient product goes to a side stream and is joined before
/// anything that could read what it writes. A failure inside an operation is kept and thrown by the next
/// `synchronize()` (the `Backend` operations do not throw).
public final class CUDABackend: Backend, ComposedLayers {
    public let name = "cuda"
    public let isHostMemory = false
    public let deviceDescription: String
    /// What the products' operands are rounded to on the matrix units (`--precision`).
    public let precision: Precision

    /// The products' precision: what their operands are rounded to. Every buffer the `Backend` operations name stays
    /// fp32 (parameters, activations, gradients, optimizer state), sums are fp32, and our own kernels (the output
    /// layer's narrow product among them) compute in fp32 whatever the precision.
    public enum Precision: String, CaseIterable, Sendable {
        /// Strict fp32 products (`CUBLAS_COMPUTE_32F`).
        case fp32
        /// Operands rounded to TF32 (10-bit mantissa) on the matrix units (`CUBLAS_COMPUTE_32F_FAST_TF32`).
        case tf32
        /// Operands rounded to bf16 (8-bit mantissa) and stored so, beside their fp32 values (`CUDABackend+BF16.swift`):
        /// the products read bf16 copies, sum in fp32 (`CUBLAS_COMPUTE_32F`) and write fp32. (cuBLASLt's
        /// `CUBLAS_COMPUTE_32F_FAST_16BF` over fp32 operands ran TF32's kernels on an H100: Benchmarks/RESULTS.md.)
        case bf16

        /// cuBLASLt's compute type for its products over fp32 operands (in bf16, the narrow ones left fp32).
        var computeType: Int32 {
            switch self {
            case .fp32, .bf16: return CUBLASLt.computeFP32
            case .tf32: return CUBLASLt.computeFastTF32
            }
        }
        /// Whether the products run on the matrix units (compute capability 8.0 and later).
        var usesMatrixUnits: Bool { self != .fp32 }
    }
    /// The switches this backend was started with.
    public let options: CUDAOptions

    // MARK: The device

    let driver: CUDADriver
    /// The device's primary context (current on the thread that made the backend; other threads that call the driver
    /// make it theirs first).
    let context: OpaquePointer?
    /// The main stream.
    let stream: OpaquePointer?
    /// Our kernels, by name.
    var functions = [String: OpaquePointer?]()
    let log: (String) -> Void
    /// The first failure of an operation since the last `synchronize()`.
    var pendingError: CUDAError?
    /// Device allocations made through `allocate` since the backend started: `mlp check` trains warmed-up steps and
    /// checks that this does not move.
    public internal(set) var deviceAllocations = 0
    /// Small uploads go through a ring of pinned staging slots and an asynchronous copy, so the host does not wait for
    /// the GPU at every step; a slot's event says when the copy that last used it has run.
    let stagingSlots = 64, stagingSlotBytes = 64 * 1024
    var staging: UnsafeMutableRawPointer?
    var stagingEvents = [OpaquePointer?]()
    var nextSlot = 0

    // MARK: Recorded steps (CUDA graphs; `CUDABackend+RecordedStep.swift`)

    /// Whether training steps are recorded and replayed as CUDA graphs (`MLP_CUDA_OFF=graphs` turns it off, and so does
    /// a driver without the calls that set a recorded node's arguments).
    public let usesGraphs: Bool
    var mode = RecordingMode.direct
    /// The uploads of the step being replayed so far.
    var uploadIndex = 0
    /// Two recordings per step, used in turn: the host fills one's upload buffers while the GPU runs the other.
    var graphs = [RecordingKey: [StepGraph]]()
    var parity = [RecordingKey: Int]()
    /// Steps seen once (they run unrecorded the first time).
    var seenSteps = Set<RecordingKey>()
    /// The products' plans of the recording in progress, and of the last one finished (for the step tuning).
    var plansInRecording: [MatmulPlan] = []
    var lastRecordedPlans: [MatmulPlan] = []
    /// Whether recordings go unlogged: while the step tuning records the step again for each candidate it tries.
    var recordsQuietly = false
    /// Seconds the host has waited, before replaying a step, for the GPU to finish that recording's previous launch:
    /// with the time spent issuing steps, it shows whether the host or the GPU sets the pace (`mlp bench`).
    public internal(set) var hostWaitSeconds = 0.0
    /// When the first (unrecorded) run of a step began, until its end (for the `-v` log).
    var firstRunStarted: UInt64?
    /// Lists each recorded step's nodes in the log (`-v`); nil where the driver lacks the calls.
    let graphDescription: GraphDescription?
    /// With `MLP_CUDA_TRACE=1`, per operation of a recorded step: seconds from the previous operation's end to its end
    /// on the main stream, summed over replays, and how many; in the order first seen.
    var traceTotals: [String: (seconds: Double, count: Int)] = [:]
    var traceOrder: [String] = []
    /// The largest batch whose indices go in the gather kernel's parameters (`gather_batch_inline`, or
    /// `gather_batch_inline_large` above `inlineIndexCapacity` rows): a recorded step then sets them in the executable
    /// graph before each launch instead of copying them to the device in a node ahead of the gather.
    /// `largeInlineIndexCapacity` with a CUDA 12.1 driver or later (which takes kernel parameters beyond 4 KB), else
    /// `inlineIndexCapacity`; 0 with `MLP_CUDA_OFF=inline-indices`.
    let inlineIndexLimit: Int
    /// `INLINE_INDICES` and `INLINE_INDICES_LARGE` of the kernels' source.
    static let inlineIndexCapacity = 960
    static let largeInlineIndexCapacity = 4096
    /// The batch's indices on the device, for a gather that does not take them in its parameters.
    var batchIndices = GrowingBuffer()

    // MARK: Streams (`CUDABackend+Streams.swift`)

    /// Whether weight gradients go to the side stream (`MLP_CUDA_OFF=streams` keeps everything on one stream).
    let usesSideStream: Bool
    /// A second stream for work off the critical path: a layer's weight gradient, which nothing reads until the
    /// optimizer runs, is computed there while the main stream carries the gradient back through the earlier layers (a
    /// small batch keeps only a fraction of the SMs busy). In a recording, fork and join become graph branches.
    var sideStream: OpaquePointer?
    /// A third stream, for a layer's optimizer update that must wait for the side stream (layer-by-layer updates): it
    /// waits for both streams' work so far, so that neither stream waits for the other, and the update runs beside what
    /// the main stream does next.
    var updateStream: OpaquePointer?
    var forkEvent: OpaquePointer?, joinEvent: OpaquePointer?
    var mainReady: OpaquePointer?, sideReady: OpaquePointer?, updateDone: OpaquePointer?
    /// Whether the side stream or the update stream has work the main stream has not yet waited for, and the memory
    /// that work reads and writes (the main stream joins both before touching it in a way that conflicts).
    var sidePending = false, updatePending = false
    var sideAccesses = StreamAccesses()
    /// Whether our kernels that follow a product on the main stream are launched with programmatic stream serialisation
    /// (Hopper and later; `MLP_CUDA_OFF=pdl`: no): they may start while the product's last blocks run, and wait for its
    /// results inside (`wait_for_previous_kernel`). Edges into cuBLASLt's kernels stay plain: its strict-fp32 kernels
    /// for sm_90 do not wait for the kernel before them (no `griddepcontrol.wait` in their SASS).
    let launchesDependents: Bool

    // MARK: Products (`CUDABackend+Products.swift`)

    let planner: MatmulPlanner
    /// The products' scratch, one per stream that runs products: a product that splits `k` keeps its partial sums
    /// there, so products running side by side must not share one.
    var workspaces = (main: UInt64(0), side: UInt64(0))
    static let ltWorkspaceBytes = 32 << 20
    /// Whether dense layers use the products' epilogues and the output layer its kernel (`MLP_CUDA_OFF=fusion` keeps
    /// cuBLASLt's products but runs the bias, activation, loss and their gradients as separate kernels).
    let fusesLayers: Bool
    /// Per stream, the transposed copy of a weight gradient's input, and `activation_backward`'s partial column sums
    /// and counters.
    var transposeScratches = (main: GrowingBuffer(), side: GrowingBuffer())
    var reductionPartials = (main: GrowingBuffer(), side: GrowingBuffer())
    var reductionCounters = (main: GrowingBuffer(), side: GrowingBuffer())
    /// Scratch that was outgrown: kept, since a recorded step may still use it.
    var retiredScratch = [UInt]()
    /// In bf16, the operands' bf16 copies and which are current (`CUDABackend+BF16.swift`).
    var bf16Mirrors = BF16Mirrors()
    /// Whether bf16 copies stay in use while current (the default). Off, every bf16 product converts its operands
    /// first and no kernel writes a copy beside its fp32 output: slower, but free of the bookkeeping, so `mlp check`
    /// compares training steps with it on and off, bit for bit.
    package var bf16KeepsCopies = true

    // MARK: The output layer (`CUDABackend+OutputLayer.swift`)

    /// The most floats of weights `output_layer_loss` stages in shared memory: what the device allows a block with the
    /// opt-in (227 KB on Hopper), less the kernel's own sums.
    let outputLayerStagedFloats: Int
    /// The most floats of weights `output_layer_wide` may stage.
    let wideOutputStagedFloats: Int
    /// Inputs from which a layer of ten outputs takes `output_layer_wide` (0 with `MLP_CUDA_OFF=wide-output`).
    let outputWideFrom: Int
    /// Scratch of the output layer's kernels: `outputLayerSumsPerBlock` floats per block, and the count of blocks done.
    var outputPartials = DevicePointer<Float>(address: 0)
    var outputCounter = DevicePointer<UInt32>(address: 0)

    /// Opens the driver, NVRTC and cuBLASLt, takes device `device`'s primary context and compiles the kernels.
    /// - Throws: `CUDAError` saying which library is missing (with every path tried), or which call failed.
    /// - Parameters:
    ///   - device: the CUDA device's ordinal.
    ///   - precision: the products' precision; tf32 needs compute capability 8.0 or later.
    ///   - options: the switches (by default, the environment's).
    ///   - log: where the details go (libraries loaded, compile times, each product's algorithm).
    ///   - warn: where problems that do not stop the backend go (once each): a tuning cache that cannot be saved,
    ///     a switch that cannot be read.
    public init(device: Int = 0, precision: Precision = .fp32, options: CUDAOptions = CUDAOptions(),
                log: @escaping (String) -> Void = { _ in }, warn: @escaping (String) -> Void = { _ in }) throws {
        self.options = options
        self.precision = precision
        self.log = log
        options.problems.forEach(warn)
        log("options: \(options)")
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
        let deviceName = String(decoding: nameBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        func attribute(_ code: Int32, _ what: String) throws -> Int {
            var value: Int32 = 0
            try d.check(d.cuDeviceGetAttribute(&value, code, handle), "cuDeviceGetAttribute(\(what))")
            return Int(value)
        }
        let major = try attribute(75, "compute capability major"), minor = try attribute(76, "compute capability minor")
        if precision.usesMatrixUnits && major < 8 {
            throw CUDAError("--precision \(precision.rawValue) needs a GPU of compute capability 8.0 or later (\(precision.rawValue) matrix units); \(deviceName) is \(major).\(minor): use --precision fp32")
        }
        // CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: the most shared memory a block may ask for.
        let sharedPerBlock = max(try attribute(97, "shared memory per block, opt-in"), Self.defaultSharedBytesPerBlock)
        var context: OpaquePointer?
        try d.check(d.cuDevicePrimaryCtxRetain(&context, handle), "cuDevicePrimaryCtxRetain")
        try d.check(d.cuCtxSetCurrent(context), "cuCtxSetCurrent")
        self.context = context
        var s: OpaquePointer?
        try d.check(d.cuStreamCreate(&s, 0), "cuStreamCreate")
        stream = s

        // Our kernels: their machine code from the cache of an earlier process, or compiled now and saved there.
        let nvrtc = try NVRTC.load()
        log("NVRTC \(nvrtc.versionString): \(nvrtc.path)")
        let module = try Self.loadModule(d, nvrtc: nvrtc, source: Kernels.source, program: "mlp_kernels", architecture: "sm_\(major)\(minor)",
                                         cache: KernelCache(directory: options.kernelCache), log: log, warn: warn)
        for kernel in Self.kernelNames {
            var function: OpaquePointer?
            try d.check(d.cuModuleGetFunction(&function, module, kernel), "cuModuleGetFunction(\(kernel))")
            functions[kernel] = function
        }
        // The output layer's kernels may stage more than 48 KB of weights (CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
        // 8): this only allows larger launches; a launch's own size still sets how many blocks share an SM.
        for (kernel, own) in [("output_layer_loss", Self.outputLayerOwnSharedBytes), ("output_layer_wide", Self.wideOutputOwnSharedBytes)]
        where sharedPerBlock > Self.defaultSharedBytesPerBlock {
            try d.check(d.cuFuncSetAttribute(functions[kernel]!, 8, Int32(sharedPerBlock - own)),
                        "cuFuncSetAttribute(\(kernel), max dynamic shared memory \(sharedPerBlock - own))")
        }
        outputLayerStagedFloats = Self.outputLayerStagedFloats(sharedBytesPerBlock: sharedPerBlock)
        wideOutputStagedFloats = (sharedPerBlock - Self.wideOutputOwnSharedBytes) / 4
        outputWideFrom = options.uses(.wideOutput) ? Self.wideOutputMinimumInputs : 0
        log("output layer kernel: weights of up to \(outputLayerStagedFloats) floats in shared memory (\(sharedPerBlock / 1024) KB a block); "
            + (outputWideFrom == 0 ? "output_layer_wide off" : "output_layer_wide from \(outputWideFrom) inputs"))

        // The products.
        let lt = try CUBLASLt.load()
        let cache = options.timesAlgorithms ? TuningCache(
            url: options.tuningCache,
            context: "\(deviceName) cc \(major).\(minor), driver \(version), cuBLASLt \(lt.getVersion()), \(precision.rawValue)") : nil
        if let cache { log("tuning cache: \(cache.url?.path ?? "none")\(cache.url == nil ? "" : ", \(cache.entries.count) entries")") }
        planner = try MatmulPlanner(
            lt: lt, computeType: precision.computeType, workspaceBytes: Self.ltWorkspaceBytes,
            tunes: options.timesAlgorithms, offersSplitVariants: options.uses(.splitK), cache: cache)
        planner.warn = warn
        log(String(format: "cuBLASLt's first heuristic query (its own set-up) at start-up: %.1f ms", try planner.warmUp() * 1e3))
        fusesLayers = options.uses(.fusion)
        for side in [false, true] {
            var workspace: UInt64 = 0
            try d.check(d.cuMemAlloc(&workspace, Self.ltWorkspaceBytes), "cuMemAlloc(cuBLASLt workspace)")
            if side { workspaces.side = workspace } else { workspaces.main = workspace }
        }
        let algorithms = options.timesAlgorithms ? "timed" : "heuristic"
        log("cuBLASLt \(lt.getVersion()): \(lt.path); algorithms \(algorithms), epilogues \(fusesLayers ? "on" : "off")")

        // Recorded steps: their replays set the optimizer's values and the batch's indices in kernel nodes, which
        // needs the driver's node calls (CUDA 12's `_v2` parameter calls).
        usesGraphs = options.uses(.graphs) && !options.synchronizesEachOperation && d.graphNodes != nil
        if d.graphNodes == nil { log("the driver lacks cuGraphExecKernelNodeSetParams_v2: training steps are not recorded as graphs") }
        graphDescription = GraphDescription(driver: d)
        inlineIndexLimit = d.graphNodes == nil || !options.uses(.inlineIndices) ? 0
            : version < 12010 ? Self.inlineIndexCapacity : Self.largeInlineIndexCapacity

        // Streams.
        usesSideStream = options.uses(.streams)
        launchesDependents = major >= 9 && d.cuLaunchKernelEx != nil && options.uses(.pdl)
        if usesSideStream {
            try d.check(d.cuStreamCreate(&sideStream, 0), "cuStreamCreate(side)")
            try d.check(d.cuStreamCreate(&updateStream, 0), "cuStreamCreate(updates)")
            func event() throws -> OpaquePointer? {
                var created: OpaquePointer?
                try d.check(d.cuEventCreate(&created, 2), "cuEventCreate")  // CU_EVENT_DISABLE_TIMING
                return created
            }
            (forkEvent, joinEvent) = (try event(), try event())
            (mainReady, sideReady, updateDone) = (try event(), try event(), try event())
        }

        // Scratch and staging.
        var partials: UInt64 = 0, counter: UInt64 = 0
        try d.check(d.cuMemAlloc(&partials, Self.outputLayerMaximumBlocks * Self.outputLayerSumsPerBlock * 4), "cuMemAlloc")
        try d.check(d.cuMemAlloc(&counter, 4), "cuMemAlloc")
        try d.check(d.cuMemsetD8(counter, 0, 4), "cuMemsetD8")
        outputPartials = DevicePointer(address: UInt(partials))
        outputCounter = DevicePointer(address: UInt(counter))
        var pinned: UnsafeMutableRawPointer?
        try d.check(d.cuMemAllocHost(&pinned, stagingSlots * stagingSlotBytes), "cuMemAllocHost")
        staging = pinned
        for _ in 0..<stagingSlots {
            var event: OpaquePointer?
            try d.check(d.cuEventCreate(&event, 2), "cuEventCreate")
            stagingEvents.append(event)
        }
        deviceDescription = "\(deviceName), compute capability \(major).\(minor), driver API \(version), cuBLASLt \(lt.getVersion()) "
            + "(\(algorithms) algorithms\(fusesLayers ? ", fused epilogues" : "")), \(precision.rawValue) products"
    }

    /// The kernels of `Kernels.source` the backend launches.
    static let kernelNames = [
        "gather_batch", "gather_batch_inline", "gather_batch_inline_large", "transpose", "to_bf16", "bias_activation",
        "activation_backward", "loss_rows", "regression_loss", "output_layer_loss", "output_layer_wide", "output_layer_sums",
        "optimizer_update", "optimizer_update_gather",
    ]

    public var fusedOperations: FusedOperations { fusesLayers ? [.denseLayers, .outputLayer] : [] }

    // MARK: Errors

    /// Runs `body`, keeping its first error for the next `synchronize()`; with `MLP_CUDA_SYNC=1`, waits for the stream
    /// after it and stops the process at the first failure.
    func record(_ body: () throws -> Void) {
        guard pendingError == nil else { return }
        do {
            try body()
            if options.synchronizesEachOperation { try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize") }
        } catch let error as CUDAError {
            pendingError = error
            if options.synchronizesEachOperation { fatalError("\(error)") }
        } catch {
            pendingError = CUDAError("\(error)")
        }
    }

    public func synchronize() throws {
        join()
        try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
        if let error = pendingError {
            pendingError = nil
            throw error
        }
    }

    /// The timing of each product shape tuned so far, one line each (for `mlp bench --profile` and `-v`).
    public var matmulReport: [String] { planner.report }
}

/// Device scratch that grows with the largest use seen (`CUDABackend.reserve`): its address and its elements.
struct GrowingBuffer {
    var address: UInt = 0
    var count = 0
}
