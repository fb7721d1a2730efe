import Foundation
import MLPCore
import MNIST

/// The cuda backend: NVIDIA GPUs through the driver API, with the kernels of `Kernels` compiled by NVRTC at
/// start-up for the device's compute capability, and the matrix products through cuBLASLt (`Matmul.swift`: each
/// shape's algorithm chosen by timing, bias and ReLU in the forward products' epilogue), or cuBLAS with
/// `MLP_CUDA_LT=0`. The libraries are opened with `dlopen` when the backend starts, so the package builds and
/// runs where there is no CUDA; there, starting it throws a `CUDAError` that lists every library path tried.
///
/// A backend holds its context, streams, pinned buffers, product plans and recorded graphs for the life of the
/// process: make one and keep it.
///
/// Operations are queued on a main stream; a layer's weight-gradient product goes to a side stream and is joined
/// before anything that could read what it writes. Each stream has its own product workspace (an algorithm that
/// splits `k` keeps partial sums there: shared, two products running at once corrupted each other's). `download` and `synchronize` wait for both. A failure inside
/// an operation is kept and thrown by the next `synchronize()` (the `Backend` operations do not throw); with
/// `MLP_CUDA_SYNC=1` every operation synchronises and checks at once, to find the one that fails.
///
/// A training step (between `beginStep` and `endStep`) runs uninstrumented the first time it is seen (its
/// products' algorithms are timed then), is recorded as a CUDA graph the second time, and is replayed afterwards:
/// each replay sets the arguments that change in their nodes (the batch's indices in the gather's, the optimizer's
/// step values in each update's; the few uploads left, such as a large batch's indices, refresh the pinned buffers
/// they copy from) and launches the graph once. `MLP_CUDA_GRAPH=0` launches every operation instead. The switches
/// `MLP_CUDA_TUNE=0`, `MLP_CUDA_SPLITK=0`, `MLP_CUDA_FUSE=0`, `MLP_CUDA_STREAMS=1`, `MLP_CUDA_OUTPUT_BACKWARD=0`,
/// `MLP_CUDA_OUTPUT_OPTIN=0`, `MLP_CUDA_OUTPUT_WARPS=4`, `MLP_CUDA_OUTPUT_SUMS_BESIDE=0` and `MLP_CUDA_PDL=0` turn
/// off the algorithm timing, the split-`k` variants among its candidates, the fused kernels and epilogues, the extra
/// streams, the output layer's backward inside its kernel, that kernel's shared memory beyond 48 KB, its 8-warp
/// blocks, its sums on the side stream, and programmatic launches, one at a time, to measure what each buys
/// (`MLP_CUDA_OUTPUT_LONG_ROWS=n` moves the row length from which that kernel loads 16 inputs at once, and
/// `MLP_CUDA_LAYER_UPDATES=0` or `1` updates no network, or every one, layer by layer, and `MLP_CUDA_INLINE_INDICES=0`
/// copies a batch's indices ahead of the gather instead of passing them as its parameter, `=960` only for batches
/// of up to 960 rows, and `MLP_CUDA_GATHER_WITH_UPDATE=0` has each step gather its own batch instead of the step
/// before gathering it in its last update);
/// `MLP_CUDA_TRACE=1` puts timing events between a recorded step's operations (`takeTrace`); `MLP_CUDA_TILED=1` adds
/// our own product kernels (`TiledGemm.swift`) to the timing, `MLP_CUDA_FUSED_STEP=1` runs training steps as one
/// kernel (`FusedStep.swift`; `MLP_CUDA_FUSED_TIMELINE=1` times its phases), and `MLP_CUDA_TUNE_CACHE` names the
/// file where timed choices are kept between runs (`TuningCache.swift`).
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
        /// With `MLP_CUDA_TRACE=1`: timing events recorded on the main stream inside the recording, after each
        /// operation, read after each replay (`trace`).
        var marks: [(label: String, event: OpaquePointer?)] = []
        /// When the recording began (for the `-v` log).
        var recordingStarted: UInt64 = 0
        /// With the indices in the gather's parameters (`inlineIndexLimit`): the captured graph (kept: its nodes name
        /// those of the executable one) and its gather node, whose indices each replay sets.
        var captured: OpaquePointer?
        var inlineGather: RecordedKernelNode?
        /// The optimizer updates' nodes, by the address of the parameters each updates: each replay sets the step's
        /// values in them.
        var updateNodes: [UInt: RecordedKernelNode] = [:]
        /// While recording: the launches of the gather and of the updates, from which their nodes' arguments are
        /// laid out when the recording ends.
        var gatherLaunch: (kernel: String, grid: (UInt32, UInt32), arguments: ArgumentBlock)?
        var updateLaunches: [UInt: (kernel: String, grid: (UInt32, UInt32), arguments: ArgumentBlock)] = [:]
    }
    private enum Mode { case direct, capturing(StepGraph), replaying(StepGraph) }
    private var mode = Mode.direct
    private var uploadIndex = 0
    /// Two recordings per step key, used in turn, so that the host fills one's upload buffers while the GPU still
    /// runs the other.
    private var graphs = [StepKey: [StepGraph]]()
    private var parity = [StepKey: Int]()
    /// The products' plans of the recording in progress, and of the last one finished (for `tuneSteps`).
    private var plansInRecording: [MatmulPlan] = []
    private(set) var lastRecordedPlans: [MatmulPlan] = []
    /// Whether training steps are recorded and replayed as CUDA graphs (`MLP_CUDA_GRAPH=0` turns it off, and so does a
    /// driver without the calls that set a recorded node's arguments).
    public let usesGraphs: Bool
    /// `[8]` Floats: the optimizer's values for the step, for the fused step's kernel (`optimizer_update` takes them
    /// as a parameter, `StepValues`).
    private var hyperparameters = DevicePointer<Float>(address: 0)
    /// Scratch of the one-kernel output layer: 18 floats per block (`outputLayerMaximumBlocks` of them), and the
    /// count of blocks done.
    private var outputPartials = DevicePointer<Float>(address: 0)
    private var outputCounter = DevicePointer<UInt32>(address: 0)
    private let synchronizeEachOperation: Bool
    var pendingError: CUDAError?
    /// The products through cuBLASLt, with epilogues and timed algorithms; nil with `MLP_CUDA_LT=0` (every product
    /// then goes through `cublasSgemm` and nothing is fused, the backend as it was before cuBLASLt).
    let planner: MatmulPlanner?
    /// The products' scratch, one per stream that runs products: a product that splits `k` keeps its partial sums
    /// there, so products running side by side must not share one.
    private var workspaces = (main: MatmulWorkspace(lt: 0, partials: 0, counters: 0), side: MatmulWorkspace(lt: 0, partials: 0, counters: 0))
    /// Whether dense layers use the products' epilogues (`MLP_CUDA_FUSE=0` keeps cuBLASLt's products but runs the
    /// bias, activation and their gradients as separate kernels).
    let fusesEpilogues: Bool
    /// Whether the output layer's kernel also computes the layer's input gradient and the previous layer's bias
    /// gradient in a training step (`outputLayerLossBackward`; `MLP_CUDA_OUTPUT_BACKWARD=0` runs the product and the
    /// activation backward instead).
    let fusesOutputBackward: Bool
    /// The most floats of weights the output layer's kernel stages in shared memory (`fusedOutputMaximum`): with
    /// the opt-in, what the device allows a block (227 KB on Hopper), else 48 KB; less the kernel's own sums.
    /// `MLP_CUDA_OUTPUT_OPTIN=0` keeps the 48 KB.
    let outputLayerStagedFloats: Int
    /// `MLP_CUDA_OUTPUT_WARPS` (see `outputLayerWarps`).
    private let outputWarpsSwitch: String?
    /// Whether, in a training step with the side stream, the output layer's kernel leaves its blocks' sums to
    /// `output_layer_sums` there (`MLP_CUDA_OUTPUT_SUMS_BESIDE=0` keeps them in the kernel's last block).
    private let sumsBeside: Bool
    /// Inputs from which the output layer's kernel loads 16 of a row's inputs at once, not 4: 512, where a lane has
    /// at least one full batch of 16 (`MLP_CUDA_OUTPUT_LONG_ROWS=n` sets it, to measure what the two buy).
    private let outputLongRowsFrom: Int32
    /// Inputs from which a layer of ten outputs takes `output_layer_wide` (a block per 8 rows, the inputs split
    /// between its threads) instead of `output_layer_loss` (a warp per row): 2048 (wide-1024's 4096×10 layer), where
    /// reading every weight from shared memory once per row bounded the warp-per-row kernel. `MLP_CUDA_OUTPUT_WIDE_FROM=n`
    /// sets it, 0 turns the wide kernel off.
    private let outputWideFrom: Int
    /// The most floats of weights `output_layer_wide` may stage.
    private let wideOutputStagedFloats: Int
    /// Whether a recorded step's gather reads the batch's indices from pinned host memory instead of a copy on the
    /// device (`MLP_CUDA_MAPPED_INDICES=1`; an experiment, slower where measured).
    let readsMappedIndices: Bool
    /// The largest batch whose indices go in the gather kernel's parameters (`gather_batch_inline`, or
    /// `gather_batch_inline_large` above `inlineIndexCapacity` rows): a recorded step then sets them in the
    /// executable graph before each launch (`cuGraphExecKernelNodeSetParams`) instead of copying them to the device
    /// in a node ahead of the gather. `largeInlineIndexCapacity` with a CUDA 12.1 driver or later (which takes kernel
    /// parameters beyond 4 KB), else `inlineIndexCapacity`; `MLP_CUDA_INLINE_INDICES=0` copies every batch's indices,
    /// `=960` keeps to the 4 KB kernel.
    let inlineIndexLimit: Int
    /// `INLINE_INDICES` and `INLINE_INDICES_LARGE` of the kernels' source.
    static let inlineIndexCapacity = 960
    static let largeInlineIndexCapacity = 4096
    /// Where `optimizer_update` and `optimizer_update_gather` take the step's values (`StepValues`) among their
    /// arguments.
    static let stepValuesArgument = 7
    /// Whether recorded steps carry timing events between their operations (`MLP_CUDA_TRACE=1`; see `takeTrace`).
    public let traces: Bool
    /// Per operation of a recorded step: seconds from the previous operation's end to its end on the main stream,
    /// summed over replays, and how many; in the order first seen.
    private var traceTotals: [String: (seconds: Double, count: Int)] = [:]
    private var traceOrder: [String] = []
    /// A second stream for work off the critical path: a layer's weight gradient, which nothing reads until the
    /// optimizer runs, is computed there while the main stream carries the gradient back through the earlier layers
    /// (a batch of 128 rows keeps only a fraction of the SMs busy, so the two products run side by side). Inside a
    /// recording, the fork and the join become two branches of the graph.
    private var sideStream: OpaquePointer?
    /// A third stream, for the optimizer's values in a recorded step: their copy depends only on the step's start
    /// (recorded as `stepStart`), so in the graph it runs beside the step's first kernels instead of just before
    /// the optimizer's.
    private var uploadStream: OpaquePointer?
    private var stepStart: OpaquePointer?, uploadDone: OpaquePointer?
    /// Where a recorded upload goes (nil: the main stream).
    private var uploadTarget: OpaquePointer?
    /// A fourth stream, for a layer's optimizer update that must wait for the side stream
    /// (`updatesEachLayer(parameters:)`): it waits for both streams' work so far, so that neither stream waits for
    /// the other, and the update runs beside what the main stream does next (the first layer's weight gradient and
    /// update).
    private var updateStream: OpaquePointer?
    private var mainReady: OpaquePointer?, sideReady: OpaquePointer?, updateDone: OpaquePointer?
    /// Whether the update stream has work the main stream has not yet waited for (its memory is in `sideAccesses`).
    private var updatePending = false
    /// Whether a training step is being queued (between `beginStep` and `endStep`), and whether its optimizer
    /// values have been uploaded: once a step, however many updates it makes.
    private var inStep = false, stepValuesQueued = false
    /// `MLP_CUDA_LAYER_UPDATES=1` or `0`: every network updated layer by layer, or none (see `updatesEachLayer`).
    private let layerUpdatesSwitch: Bool?
    private var forkEvent: OpaquePointer?, joinEvent: OpaquePointer?
    /// Whether the side stream has work the main stream has not yet waited for, and the memory that work and the
    /// update stream's read and write (the main stream joins both before touching it in a way that conflicts).
    private var sidePending = false
    private var sideAccesses = StreamAccesses()

    /// Whether weight gradients go to the side stream (`MLP_CUDA_STREAMS=1` keeps everything on one stream).
    let usesSideStream: Bool
    /// Whether our kernels that follow a product on the main stream (the output layer's, the ReLU backward) are
    /// launched with programmatic stream serialisation (Hopper and later; `MLP_CUDA_PDL=0` turns it off): the GPU
    /// may then start them while the product's last blocks finish, and they wait for its results inside
    /// (`wait_for_previous_kernel`), after work that does not need them (the output layer stages its weights
    /// first). In a recorded step the edge from the product becomes a programmatic one. Measured on an H200
    /// (Benchmarks/RESULTS.md): 1–3 µs of a small-128 step, 3–9 µs of a small-1024 one. Edges into cuBLASLt's
    /// kernels stay plain: a programmatic edge is safe only into a kernel that waits for the one before it, and
    /// cuBLASLt's strict-fp32 kernels do not (no `griddepcontrol.wait` in the SASS of any of its 272 fp32 FFMA
    /// kernels for sm_90 in cuBLASLt 13.4, where its sm_90 TF32 tensor-core kernels and its split-k reductions have it).
    let launchesDependents: Bool
    let log: (String) -> Void
    /// Whether `tuneSteps` chooses the products' algorithms inside whole steps (`MLP_CUDA_STEP_TUNE=0`: no).
    let tunesSteps: Bool
    /// Lists each recorded step's nodes in the log (`-v`); nil where the driver lacks the calls.
    private let graphDescription: GraphDescription?
    /// The device's SMs: `fused_train_step` launches `FusedStepKernel.blocksPerSM` blocks on each.
    let multiprocessorCount: Int
    /// Whether the device and driver launch cooperative kernels (all blocks resident at once), which the fused
    /// training step needs.
    let launchesCooperatively: Bool
    /// `MLP_CUDA_FUSED_STEP=1`: the fused training step for every network it can run (see `makeFusedStep`); `0` or
    /// unset: only where a network asks for it.
    let fusedStepSwitch: Bool?
    /// `MLP_CUDA_FUSED_TIMELINE=1`: the fused step times its phases on the device (see `CUDAFusedStep.timeline`).
    let fusedStepTimeline: Bool
    /// Compiles (or loads from the kernel cache) the fused step's module: NVRTC takes seconds over it, so only when
    /// a network first asks for the fused step (`loadFusedStepKernel`).
    private var compileFusedStep: (() throws -> OpaquePointer?)?

    /// Makes `fused_train_step` launchable, compiling its module the first time.
    func loadFusedStepKernel() throws {
        guard functions["fused_train_step"] == nil, let compileFusedStep else { return }
        functions["fused_train_step"] = try compileFusedStep()
    }

    /// `source` compiled by NVRTC for `architecture` and loaded, its machine code taken from `cache` when an earlier
    /// process saved it there (and saved there when compiled now).
    private static func loadModule(_ d: CUDADriver, nvrtc: NVRTC, source: String, program: String, architecture: String,
                                   cache: KernelCache, log: (String) -> Void, warn: (String) -> Void) throws -> OpaquePointer? {
        let inputs = [source, NVRTC.options(architecture: architecture).joined(separator: " "), "NVRTC \(nvrtc.versionString)"]
        var module: OpaquePointer?
        let started = Date()
        if let cached = cache.load(program: program, architecture: architecture, inputs: inputs) {
            let status = cached.withUnsafeBytes { d.cuModuleLoadData(&module, $0.baseAddress!) }
            if status == 0 {
                log("\(program) for \(architecture) loaded from \(cache.url(program: program, architecture: architecture, inputs: inputs)!.path) in \(String(format: "%.3f", Date().timeIntervalSince(started))) s")
                return module
            }
            module = nil
            log("the cached \(program) was refused (CUresult \(status)): compiling it again")
        }
        let compileStarted = Date()
        let cubin = try nvrtc.compileToCUBIN(source, name: "\(program).cu", architecture: architecture)
        log("\(program) compiled for \(architecture) in \(String(format: "%.2f", Date().timeIntervalSince(compileStarted))) s (\(cubin.count) bytes)")
        try cubin.withUnsafeBytes { try d.check(d.cuModuleLoadData(&module, $0.baseAddress!), "cuModuleLoadData(\(program))") }
        do {
            try cache.store(cubin, program: program, architecture: architecture, inputs: inputs)
        } catch {
            warn("the compiled kernels could not be saved for later runs in \(cache.directory?.path ?? "?") (\(error.localizedDescription)); set MLP_CUDA_KERNEL_CACHE to a writable directory, or to 0")
        }
        return module
    }

    /// Step keys seen once: a step runs uninstrumented the first time (its products' algorithms are timed then,
    /// which cannot happen inside a recording) and is recorded the second time.
    private var seenSteps = Set<StepKey>()

    /// Opens the driver, NVRTC and cuBLAS, takes device `device`'s primary context and compiles the kernels.
    /// - Throws: `CUDAError` saying which library is missing (with every path tried), or which call failed.
    /// - Parameters:
    ///   - device: the CUDA device's ordinal.
    ///   - allowTF32: whether products may use TF32 matrix units (`--precision tf32`).
    ///   - log: where the details go (libraries loaded, compile times, each product's algorithm).
    ///   - warn: where problems that do not stop the backend go (once each): a tuning cache that cannot be saved.
    public init(device: Int = 0, allowTF32: Bool = false, log: @escaping (String) -> Void = { _ in },
                warn: @escaping (String) -> Void = { _ in }) throws {
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
        log("NVRTC \(nvrtc.versionString): \(nvrtc.path)")
        let architecture = "sm_\(major)\(minor)"
        // The kernels' machine code from the cache of an earlier process, or compiled now and saved there.
        let kernelCache = KernelCache(directory: KernelCache.defaultDirectory(environment: ProcessInfo.processInfo.environment))
        let module = try Self.loadModule(d, nvrtc: nvrtc, source: Kernels.source, program: "mlp_kernels", architecture: architecture,
                                         cache: kernelCache, log: log, warn: warn)
        for kernel in ["gather_batch", "gather_batch_inline", "gather_batch_inline_large", "transpose", "bias_activation", "activation_backward", "loss_rows", "output_layer_loss", "output_layer_wide", "output_layer_sums", "optimizer_update", "optimizer_update_gather"] {
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
        let environment = ProcessInfo.processInfo.environment
        synchronizeEachOperation = environment["MLP_CUDA_SYNC"] == "1"
        // A recorded step's replays set the optimizer's values in its update nodes (`StepValues`): without the
        // driver's node calls (CUDA 12's `_v2` parameter calls) steps run op by op, unrecorded.
        usesGraphs = environment["MLP_CUDA_GRAPH"] != "0" && !synchronizeEachOperation && d.graphNodes != nil
        if d.graphNodes == nil { log("the driver lacks cuGraphExecKernelNodeSetParams_v2: training steps are not recorded as graphs") }
        // A workspace of cuBLAS's own, so that products recorded in a graph allocate nothing.
        var workspace: UInt64 = 0
        try d.check(d.cuMemAlloc(&workspace, 32 << 20), "cuMemAlloc(cuBLAS workspace)")
        _ = blas.setWorkspace(h, UnsafeMutableRawPointer(bitPattern: UInt(workspace)), 32 << 20)
        var ltDescription = "cuBLAS \(blasVersion) (cuBLASLt off)"
        if environment["MLP_CUDA_LT"] != "0" {
            let lt = try CUBLASLt.load()
            let tunes = environment["MLP_CUDA_TUNE"] != "0"
            var multiprocessors: Int32 = 0
            try d.check(d.cuDeviceGetAttribute(&multiprocessors, 16, handle), "cuDeviceGetAttribute(multiprocessor count)")
            // Our own product kernels are checked (`mlp check`) but not timed unless asked for: on an H100 they lost
            // to cuBLASLt at every shape of the workloads (Benchmarks/RESULTS.md), and compiling them takes NVRTC
            // seconds, so they are compiled (and their scratch allocated) only when asked for.
            let timesTiled = environment["MLP_CUDA_TILED"] == "1"
            workspaces.main = try Self.allocateWorkspace(d, forTiledKernels: timesTiled)
            workspaces.side = try Self.allocateWorkspace(d, forTiledKernels: timesTiled)
            // Our product kernels' module, from the kernel cache as the backend's own kernels are (NVRTC took 10.8 s
            // over them on the H200, in every `mlp check`).
            let loadTiled = { () throws -> TiledGemmKernels in
                let module = try Self.loadModule(d, nvrtc: nvrtc, source: TiledGemm.source, program: "mlp_tiled_gemm", architecture: architecture,
                                                 cache: kernelCache, log: log, warn: warn)
                return try TiledGemmKernels(driver: d, module: module, multiprocessors: Int(multiprocessors))
            }
            let tiled = timesTiled ? try loadTiled() : nil
            let deviceName = String(decoding: nameBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let cache = tunes ? TuningCache(
                url: TuningCache.defaultURL(environment: environment),
                context: "\(deviceName) cc \(major).\(minor), driver \(version), cuBLASLt \(lt.getVersion()), \(allowTF32 ? "tf32" : "fp32")\(timesTiled ? ", own kernels" : "")") : nil
            if let cache {
                log("tuning cache: \(cache.url?.path ?? "none (MLP_CUDA_TUNE_CACHE=0)")\(cache.url == nil ? "" : ", \(cache.entries.count) entries")")
            }
            planner = try MatmulPlanner(
                lt: lt, computeType: allowTF32 ? CUBLASLt.computeFastTF32 : CUBLASLt.computeFP32,
                workspaceBytes: Self.ltWorkspaceBytes, tunes: tunes, tiled: tiled, timesTiled: timesTiled, cache: cache)
            planner?.warn = warn
            for item in MatmulPlanner.malformedForcedChoices {
                warn("MLP_CUDA_CHOOSE: \"\(item)\" is not a product's label, \"=\" and a candidate's number from 1 (\"784×512×128 TN=2\"); it is ignored")
            }
            if let seconds = try planner?.warmUp() {
                log(String(format: "cuBLASLt's first heuristic query (its own set-up) at start-up: %.1f ms", seconds * 1e3))
            }
            compileTiled = loadTiled
            fusesEpilogues = environment["MLP_CUDA_FUSE"] != "0"
            log("cuBLASLt \(lt.getVersion()): \(lt.path); algorithms \(tunes ? "timed per shape\(timesTiled ? ", our tiled kernels among them" : "")" : "from the heuristic"), epilogues \(fusesEpilogues ? "on" : "off")")
            ltDescription = "cuBLASLt \(lt.getVersion()) (\(tunes ? "timed" : "heuristic") algorithms\(tunes && timesTiled ? " and own kernels" : "")\(fusesEpilogues ? ", fused epilogues" : ""))"
        } else {
            planner = nil
            fusesEpilogues = false
            compileTiled = nil
        }
        self.log = log
        graphDescription = GraphDescription(driver: d)
        tunesSteps = ProcessInfo.processInfo.environment["MLP_CUDA_STEP_TUNE"] != "0"
        fusesOutputBackward = environment["MLP_CUDA_OUTPUT_BACKWARD"] != "0"
        // CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN (97); the kernel's limit is raised to match with
        // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES (8), which only allows larger launches (a launch's own
        // size still sets how many blocks share an SM).
        var optIn: Int32 = 0
        try d.check(d.cuDeviceGetAttribute(&optIn, 97, handle), "cuDeviceGetAttribute(shared memory per block, opt-in)")
        let sharedPerBlock = environment["MLP_CUDA_OUTPUT_OPTIN"] == "0" ? Self.defaultSharedBytesPerBlock : max(Int(optIn), Self.defaultSharedBytesPerBlock)
        if sharedPerBlock > Self.defaultSharedBytesPerBlock {
            try d.check(d.cuFuncSetAttribute(functions["output_layer_loss"]!, 8, Int32(sharedPerBlock - Self.outputLayerOwnSharedBytes)),
                        "cuFuncSetAttribute(output_layer_loss, max dynamic shared memory \(sharedPerBlock - Self.outputLayerOwnSharedBytes))")
        }
        outputLayerStagedFloats = Self.outputLayerStagedFloats(sharedBytesPerBlock: sharedPerBlock)
        wideOutputStagedFloats = (sharedPerBlock - Self.wideOutputOwnSharedBytes) / 4
        if sharedPerBlock > Self.defaultSharedBytesPerBlock {
            try d.check(d.cuFuncSetAttribute(functions["output_layer_wide"]!, 8, Int32(sharedPerBlock - Self.wideOutputOwnSharedBytes)),
                        "cuFuncSetAttribute(output_layer_wide, max dynamic shared memory \(sharedPerBlock - Self.wideOutputOwnSharedBytes))")
        }
        log("output layer kernel: weights of up to \(outputLayerStagedFloats) floats in shared memory (\(sharedPerBlock / 1024) KB a block)")
        outputWarpsSwitch = environment["MLP_CUDA_OUTPUT_WARPS"]
        if let value = outputWarpsSwitch, value != "4", value != "8" {
            warn("MLP_CUDA_OUTPUT_WARPS=\(value): expected 4 or 8; the warps a block are chosen by the batch's rows")
        }
        sumsBeside = environment["MLP_CUDA_OUTPUT_SUMS_BESIDE"] != "0"
        let longRows = environment["MLP_CUDA_OUTPUT_LONG_ROWS"]
        outputLongRowsFrom = longRows.flatMap { Int32($0) }.flatMap { $0 >= 0 ? $0 : nil } ?? 512
        if let value = longRows, Int32(value).map({ $0 >= 0 }) != true {
            warn("MLP_CUDA_OUTPUT_LONG_ROWS=\(value): expected a number of inputs (0 or more); 512 is used")
        }
        let wideFrom = environment["MLP_CUDA_OUTPUT_WIDE_FROM"]
        outputWideFrom = wideFrom.flatMap { Int($0) }.flatMap { $0 >= 0 ? $0 : nil } ?? 2048
        if let value = wideFrom, Int(value).map({ $0 >= 0 }) != true {
            warn("MLP_CUDA_OUTPUT_WIDE_FROM=\(value): expected a number of inputs (0 turns the wide kernel off); 2048 is used")
        }
        log(outputWideFrom == 0 ? "output layers: output_layer_wide off" : "output layers of 10 outputs and \(outputWideFrom) inputs or more (up to \(wideOutputStagedFloats / Self.wideOutputOutputs / 2 * 2)): output_layer_wide")
        readsMappedIndices = environment["MLP_CUDA_MAPPED_INDICES"] == "1"
        let inlineSetting = environment["MLP_CUDA_INLINE_INDICES"]
        inlineIndexLimit = d.graphNodes == nil || inlineSetting == "0" || readsMappedIndices ? 0
            : inlineSetting == "960" || version < 12010 ? Self.inlineIndexCapacity : Self.largeInlineIndexCapacity
        if let value = inlineSetting, value != "0", value != "960" {
            warn("MLP_CUDA_INLINE_INDICES=\(value): expected 0 (copy every batch's indices) or 960 (only batches of up to 960 rows in the parameters); the default is used")
        }
        traces = environment["MLP_CUDA_TRACE"] == "1"
        usesSideStream = planner != nil && environment["MLP_CUDA_STREAMS"] != "1"
        launchesDependents = major >= 9 && d.cuLaunchKernelEx != nil && environment["MLP_CUDA_PDL"] != "0"
        if usesSideStream {
            try d.check(d.cuStreamCreate(&sideStream, 0), "cuStreamCreate(side)")
            try d.check(d.cuStreamCreate(&uploadStream, 0), "cuStreamCreate(uploads)")
            try d.check(d.cuEventCreate(&stepStart, 2), "cuEventCreate")
            try d.check(d.cuEventCreate(&uploadDone, 2), "cuEventCreate")
            try d.check(d.cuEventCreate(&forkEvent, 2), "cuEventCreate")
            try d.check(d.cuEventCreate(&joinEvent, 2), "cuEventCreate")
        }
        var multiprocessors: Int32 = 0, cooperative: Int32 = 0
        try d.check(d.cuDeviceGetAttribute(&multiprocessors, 16, handle), "cuDeviceGetAttribute(multiprocessor count)")
        try d.check(d.cuDeviceGetAttribute(&cooperative, 95, handle), "cuDeviceGetAttribute(cooperative launch)")
        multiprocessorCount = Int(multiprocessors)
        // The fused step's shared memory is above the 48 KB a block gets without asking.
        launchesCooperatively = cooperative != 0 && d.cuLaunchKernelEx != nil && Int(optIn) >= FusedStepKernel.sharedBytes
        compileFusedStep = {
            let module = try Self.loadModule(d, nvrtc: nvrtc, source: FusedStepKernel.moduleSource, program: "mlp_fused_step",
                                             architecture: architecture, cache: kernelCache, log: log, warn: warn)
            var function: OpaquePointer?
            try d.check(d.cuModuleGetFunction(&function, module, "fused_train_step"), "cuModuleGetFunction(fused_train_step)")
            try d.check(d.cuFuncSetAttribute(function, 8, Int32(FusedStepKernel.sharedBytes)),
                        "cuFuncSetAttribute(fused_train_step, max dynamic shared memory \(FusedStepKernel.sharedBytes))")
            return function
        }
        fusedStepSwitch = environment["MLP_CUDA_FUSED_STEP"].flatMap { $0 == "1" ? true : $0 == "0" ? false : nil }
        fusedStepTimeline = environment["MLP_CUDA_FUSED_TIMELINE"] == "1"
        if let value = environment["MLP_CUDA_FUSED_STEP"], fusedStepSwitch == nil {
            warn("MLP_CUDA_FUSED_STEP=\(value): expected 0 or 1; training steps run op by op")
        }
        layerUpdatesSwitch = environment["MLP_CUDA_LAYER_UPDATES"].flatMap { $0 == "1" ? true : $0 == "0" ? false : nil }
        if let value = environment["MLP_CUDA_LAYER_UPDATES"], layerUpdatesSwitch == nil {
            warn("MLP_CUDA_LAYER_UPDATES=\(value): expected 0 or 1; layer-by-layer updates are chosen by the network's size")
        }
        if usesSideStream {
            try d.check(d.cuStreamCreate(&updateStream, 0), "cuStreamCreate(updates)")
            try d.check(d.cuEventCreate(&mainReady, 2), "cuEventCreate")
            try d.check(d.cuEventCreate(&sideReady, 2), "cuEventCreate")
            try d.check(d.cuEventCreate(&updateDone, 2), "cuEventCreate")
        }
        var hyper: UInt64 = 0
        try d.check(d.cuMemAlloc(&hyper, 8 * 4), "cuMemAlloc")
        hyperparameters = DevicePointer(address: UInt(hyper))
        var partials: UInt64 = 0, counter: UInt64 = 0
        try d.check(d.cuMemAlloc(&partials, Self.outputLayerMaximumBlocks * 18 * 4), "cuMemAlloc")  // 18: OUT_MAX + 2
        try d.check(d.cuMemAlloc(&counter, 4), "cuMemAlloc")
        try d.check(d.cuMemsetD8(counter, 0, 4), "cuMemsetD8")
        outputPartials = DevicePointer(address: UInt(partials))
        outputCounter = DevicePointer(address: UInt(counter))
        var pinned: UnsafeMutableRawPointer?
        try d.check(d.cuMemAllocHost(&pinned, stagingSlots * stagingSlotBytes), "cuMemAllocHost")
        staging = pinned
        for _ in 0..<stagingSlots {
            var event: OpaquePointer?
            try d.check(d.cuEventCreate(&event, 2), "cuEventCreate")  // CU_EVENT_DISABLE_TIMING
            stagingEvents.append(event)
        }
        deviceDescription = "\(String(decoding: nameBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)), compute capability \(major).\(minor), driver API \(version), \(ltDescription), \(allowTF32 ? "tf32" : "fp32") products"
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
        join()
        try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
        if let error = pendingError {
            pendingError = nil
            throw error
        }
    }

    // MARK: Memory

    /// Device allocations made through `allocate` since the backend started (the scratch of the fused kernels
    /// included): `mlp check` trains warmed-up steps and checks that this does not move.
    public private(set) var deviceAllocations = 0

    public func allocate<T>(_ type: T.Type, count: Int) throws -> DevicePointer<T> {
        deviceAllocations += 1
        var address: UInt64 = 0
        let bytes = max(count, 1) * MemoryLayout<T>.stride
        try driver.check(driver.cuMemAlloc(&address, bytes), "cuMemAlloc(\(bytes) bytes)")
        try driver.check(driver.cuMemsetD8(address, 0, bytes), "cuMemsetD8")
        return DevicePointer(address: UInt(address))
    }

    public func free<T>(_ pointer: DevicePointer<T>) {
        join()
        _ = driver.cuMemFree(UInt64(pointer.address))
    }

    public func upload<T>(_ source: UnsafeBufferPointer<T>, to destination: DevicePointer<T>) {
        join()
        enqueueUpload(source, to: destination)
    }

    /// `upload` without waiting for the other streams first: for memory that only work queued after it reads.
    private func enqueueUpload<T>(_ source: UnsafeBufferPointer<T>, to destination: DevicePointer<T>) {
        guard let base = source.baseAddress, !source.isEmpty else { return }
        let bytes = source.count * MemoryLayout<T>.stride
        record {
            switch mode {
            case .replaying:
                // The recorded copy reads the recording's pinned buffer: refresh it.
                _ = try stageRecorded(UnsafeRawBufferPointer(source))
                return
            case .capturing:
                let buffer = try stageRecorded(UnsafeRawBufferPointer(source))
                try driver.check(driver.cuMemcpyHtoDAsync(UInt64(destination.address), buffer, bytes, uploadTarget ?? stream), "cuMemcpyHtoDAsync (recorded)")
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

    /// In a recorded step, the pinned buffer that the recording reads `source`'s bytes from, filled with them: while
    /// recording, the next free part of the recording's arena; while replaying, the part the recording used at
    /// this point (the previous launch of this recording has finished: `beginStep` waited for it).
    private func stageRecorded(_ source: UnsafeRawBufferPointer) throws -> UnsafeMutableRawPointer {
        let bytes = source.count
        switch mode {
        case .replaying(let graph):
            let (buffer, size) = graph.uploads[uploadIndex]
            precondition(size == bytes, "a replayed step uploads \(bytes) bytes where the recording had \(size)")
            buffer.copyMemory(from: source.baseAddress!, byteCount: bytes)
            uploadIndex += 1
            return buffer
        case .capturing(let graph):
            let offset = (graph.arenaUsed + 63) / 64 * 64
            guard offset + bytes <= StepGraph.arenaBytes, let arena = graph.arena else {
                throw CUDAError("a recorded step uploads more than \(StepGraph.arenaBytes) bytes (set MLP_CUDA_GRAPH=0)")
            }
            let buffer = arena + offset
            graph.arenaUsed = offset + bytes
            buffer.copyMemory(from: source.baseAddress!, byteCount: bytes)
            graph.uploads.append((buffer, bytes))
            return buffer
        case .direct:
            preconditionFailure("stageRecorded outside a recorded step")
        }
    }

    public func download<T>(_ source: DevicePointer<T>, count: Int, into destination: UnsafeMutableBufferPointer<T>) {
        join()
        guard count > 0 else { return }
        record {
            try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
            try driver.check(driver.cuMemcpyDtoH(destination.baseAddress!, UInt64(source.address), count * MemoryLayout<T>.stride), "cuMemcpyDtoH")
        }
    }

    // MARK: Steps as graphs

    public func beginStep(_ key: StepKey) {
        inStep = true
        stepValuesQueued = false
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
            if traces { readMarks(graph) }
            mode = .replaying(graph)
        } else {
            let graph = StepGraph()
            graph.recordingStarted = DispatchTime.now().uptimeNanoseconds
            record {
                try driver.check(driver.cuEventCreate(&graph.done, 2), "cuEventCreate")
                try driver.check(driver.cuMemAllocHost(&graph.arena, StepGraph.arenaBytes), "cuMemAllocHost")
                // CU_STREAM_CAPTURE_MODE_THREAD_LOCAL: only this thread's calls are checked for capture safety.
                try driver.check(driver.cuStreamBeginCapture(stream, 1), "cuStreamBeginCapture")
                if uploadStream != nil { try driver.check(driver.cuEventRecord(stepStart, stream), "cuEventRecord(step start)") }
            }
            guard pendingError == nil else { return }
            list.append(graph)
            graphs[key] = list
            plansInRecording = []
            mode = .capturing(graph)
            mark("step start")
        }
    }

    /// Seconds the host has spent waiting, before replaying a step, for the GPU to finish that recording's previous
    /// launch (two steps in flight): what is left of the time spent issuing steps is the host's own work, which
    /// shows whether the host or the GPU sets the pace (`mlp bench` prints both).
    public private(set) var hostWaitSeconds = 0.0
    /// When the first (unrecorded) run of a step shape began, until its end (for the `-v` log).
    private var firstRunStarted: UInt64?

    public func endStep() {
        inStep = false
        stepValuesQueued = false
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

    // MARK: The recordings, for StepTuning.swift

    /// Whether recordings go unlogged: while `tuneSteps` records the step again for each candidate it tries.
    var recordsQuietly = false

    /// Whether operations run as they are queued: no step is being recorded or replayed.
    var runsDirectly: Bool {
        if case .direct = mode { return true }
        return false
    }

    /// Destroys every recorded step (after the GPU has finished them), so that the next step of each shape is
    /// recorded again, with the products' algorithms as they now are.
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

    // MARK: Tracing

    /// While recording with `MLP_CUDA_TRACE=1`, a timing event on the main stream after what was queued so far.
    private func mark(_ label: @autoclosure () -> String) {
        guard traces, case .capturing(let graph) = mode else { return }
        record {
            var event: OpaquePointer?
            try driver.check(driver.cuEventCreate(&event, 0), "cuEventCreate(trace)")
            try driver.check(driver.cuEventRecordWithFlags(event, stream, 1), "cuEventRecordWithFlags(trace, external)")
            graph.marks.append((label(), event))
        }
    }

    /// Adds the intervals between `graph`'s marks in its last replay (finished) to the totals.
    private func readMarks(_ graph: StepGraph) {
        for i in graph.marks.indices.dropFirst() {
            var milliseconds: Float = 0
            guard driver.cuEventElapsedTime(&milliseconds, graph.marks[i - 1].event, graph.marks[i].event) == 0 else { continue }
            let label = graph.marks[i].label
            if traceTotals[label] == nil { traceOrder.append(label) }
            let old = traceTotals[label] ?? (0, 0)
            traceTotals[label] = (old.seconds + Double(milliseconds) / 1000, old.count + 1)
        }
    }

    /// With `MLP_CUDA_TRACE=1`: the mean time of each operation of the recorded steps replayed since the last call,
    /// from the end of the operation before it to its own end on the main stream (so a wait for the second stream
    /// counts with the operation that waited), in step order; then forgets them. The events are nodes of the graph
    /// themselves and lengthen the step a little.
    public func takeTrace() -> [(label: String, microseconds: Double, count: Int)] {
        defer { traceTotals = [:]; traceOrder = [] }
        return traceOrder.map { label in
            let t = traceTotals[label]!
            return (label, t.seconds / Double(t.count) * 1e6, t.count)
        }
    }

    // MARK: Launching

    /// Queues `kernel`, or does nothing while a recorded step is replayed. The arguments are an autoclosure so that a
    /// replayed step does not even build their array on the host.
    private func launch(_ kernel: String, grid: (UInt32, UInt32), block: UInt32, blockY: UInt32 = 1, sharedBytes: UInt32 = 0, dependent: Bool = false, _ makeArguments: @autoclosure () -> [any KernelArgument]) {
        if case .replaying = mode { return }  // recorded in the graph
        record { try enqueueKernel(kernel, grid: grid, block: block, blockY: blockY, sharedBytes: sharedBytes, dependent: dependent, on: stream, makeArguments()) }
    }

    /// Queues `kernel` on `target` now (recording or not). `dependent`: the kernel follows another kernel on
    /// `target` and waits for it with `wait_for_previous_kernel()`, so it may be launched before that one ends
    /// (see `launchesDependents`).
    /// `cooperative`: every block of the launch is resident at once (the launch fails where they cannot be), for a
    /// kernel whose blocks wait for each other (`fused_train_step`).
    private func enqueueKernel(_ kernel: String, grid: (UInt32, UInt32), block: UInt32, blockY: UInt32 = 1, sharedBytes: UInt32 = 0, dependent: Bool = false, cooperative: Bool = false, on target: OpaquePointer?, _ arguments: [any KernelArgument]) throws {
        if launchShapesSeen.insert(LaunchShape(kernel: kernel, gridX: grid.0, gridY: grid.1, blockX: block, blockY: blockY, sharedBytes: sharedBytes)).inserted {
            log("launch \(kernel): grid \(grid.0)×\(grid.1), block \(block)×\(blockY), \(sharedBytes) B shared")
        }
        try withParameters(arguments) { p in
            guard cooperative || dependent && launchesDependents, let launchEx = driver.cuLaunchKernelEx else {
                guard !cooperative else { throw CUDAError("\(kernel) needs cuLaunchKernelEx (a CUDA 12 driver or later)") }
                return try driver.check(driver.cuLaunchKernel(functions[kernel]!, grid.0, grid.1, 1, block, blockY, 1, sharedBytes, target, p, nil), "cuLaunchKernel(\(kernel))")
            }
            // A CUlaunchAttribute (a 4-byte id, 4 bytes of padding, a 64-byte value) asking for programmatic
            // stream serialisation (id 6, value 1) or a cooperative launch (id 2, value 1), then the
            // CUlaunchConfig that points at it (7 UInt32s, the stream at byte 32, the attributes at 40, their
            // count at 48).
            try withUnsafeTemporaryAllocation(byteCount: 72 + 56, alignment: 8) { raw in
                raw.initializeMemory(as: UInt8.self, repeating: 0)
                let attribute = raw.baseAddress!, config = raw.baseAddress! + 72
                attribute.storeBytes(of: UInt32(cooperative ? 2 : 6), as: UInt32.self)
                attribute.storeBytes(of: Int32(1), toByteOffset: 8, as: Int32.self)
                for (i, value) in [grid.0, grid.1, 1, block, blockY, 1, sharedBytes].enumerated() {
                    config.storeBytes(of: value, toByteOffset: 4 * i, as: UInt32.self)
                }
                config.storeBytes(of: target, toByteOffset: 32, as: OpaquePointer?.self)
                config.storeBytes(of: attribute, toByteOffset: 40, as: UnsafeMutableRawPointer.self)
                config.storeBytes(of: UInt32(1), toByteOffset: 48, as: UInt32.self)
                try driver.check(launchEx(UnsafeRawPointer(config), functions[kernel]!, p, nil), "cuLaunchKernelEx(\(kernel), \(cooperative ? "cooperative" : "programmatic stream serialisation"))")
            }
        }
    }

    /// Runs `body` with the parameter array of a launch of `arguments`: each written into its own slot (8-byte
    /// aligned), the array holding the slots' addresses.
    private func withParameters<T>(_ arguments: [any KernelArgument], _ body: (UnsafeMutablePointer<UnsafeMutableRawPointer?>) throws -> T) throws -> T {
        let block = ArgumentBlock(arguments)
        return try withExtendedLifetime(block) { try body(block.pointers) }
    }

    /// Each distinct launch of our kernels, logged (`-v`) the first time it is queued.
    private struct LaunchShape: Hashable {
        var kernel: String, gridX: UInt32, gridY: UInt32, blockX: UInt32, blockY: UInt32, sharedBytes: UInt32
    }
    private var launchShapesSeen = Set<LaunchShape>()

    private func blocks(_ count: Int, _ threads: Int = 256) -> UInt32 { UInt32(max(1, min((count + threads - 1) / threads, 65_535))) }

    // MARK: Operations

    public func gatherBatch(inputs: DevicePointer<Float>, labels: DevicePointer<Int32>, pixels: DevicePointer<UInt8>, sourceLabels: DevicePointer<UInt8>, indices: UnsafeBufferPointer<Int32>, features: Int, normalization: Normalization) {
        let batch = indices.count
        guard batch > 0 else { return }
        if batch <= inlineIndexLimit {
            join()
            let grid = (blocks(features), UInt32(batch))
            let large = batch > Self.inlineIndexCapacity
            let capacity = large ? Self.largeInlineIndexCapacity : Self.inlineIndexCapacity
            if case .replaying(let graph) = mode {
                record {
                    guard let node = graph.inlineGather else {
                        throw CUDAError("a recorded step's gather node was not found: its indices cannot be set (set MLP_CUDA_INLINE_INDICES=0)")
                    }
                    node.setLast(InlineIndices(indices: indices, capacity: capacity))
                    try setArguments(of: node, in: graph, large ? "gather_batch_inline_large" : "gather_batch_inline")
                }
            } else {
                let kernel = large ? "gather_batch_inline_large" : "gather_batch_inline"
                let arguments: [any KernelArgument] = [inputs, labels, pixels, sourceLabels, Int32(batch), Int32(features), normalization.scale, normalization.shift,
                                                       InlineIndices(indices: indices, capacity: capacity)]
                // Laid out now: the indices' buffer is the caller's, gone when the recording ends.
                if case .capturing(let graph) = mode { graph.gatherLaunch = (kernel, grid, ArgumentBlock(arguments)) }
                launch(kernel, grid: grid, block: 256, arguments)
            }
            mark("batch \(batch)×\(features) gathered, its indices among the kernel's parameters")
            return
        }
        let source = queueBatchIndices(indices)
        launch("gather_batch", grid: (blocks(features), UInt32(batch)), block: 256,
               [inputs, labels, pixels, sourceLabels, source, Int32(batch), Int32(features), normalization.scale, normalization.shift])
        mark("indices copied, batch \(batch)×\(features) gathered")
    }

    /// The kernel nodes of `captured` whose parameters the driver reports (library kernels, cuBLASLt's, may not):
    /// each with its function and its first argument's 8 bytes (a pointer, for ours).
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
                throw CUDAError("the recorded step's gather node was not found (set MLP_CUDA_INLINE_INDICES=0)")
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
    private func setArguments(of node: RecordedKernelNode, in graph: StepGraph, _ kernel: StaticString) throws {
        guard let calls = driver.graphNodes else { throw CUDAError("cuGraphExecKernelNodeSetParams is missing") }
        let status = calls.cuGraphExecKernelNodeSetParams(graph.executable, node.node, UnsafeRawPointer(node.parameters))
        if status != 0 { try driver.check(status, "cuGraphExecKernelNodeSetParams(\(kernel))") }
    }

    /// Queues the copy of a batch's indices to the device (after the other streams' work) and returns where the
    /// kernels that follow read them.
    func queueBatchIndices(_ indices: UnsafeBufferPointer<Int32>) -> DevicePointer<Int32> {
        let batch = indices.count
        join()
        var source = batchIndices.pointer
        if case .direct = mode, batch > batchIndices.count {
            record {
                let grown = try allocate(Int32.self, count: max(batch, 1024))
                if batchIndices.count > 0 { retiredScratch.append(batchIndices.pointer.address) }
                batchIndices = (grown, max(batch, 1024))
            }
            source = batchIndices.pointer
        }
        if case .direct = mode {
            upload(indices, to: source)
        } else if readsMappedIndices || batch > batchIndices.count {
            // The kernel reads the indices straight from the recording's pinned buffer (page-locked host memory is
            // mapped into the device's address space at the same address), refreshed before each replay: no copy
            // node ahead of the gather, but one read across the bus per block. Measured on an H200 it was slower
            // than the copy (see `readsMappedIndices`); it stays as the way out when the device buffer is too small.
            record { source = DevicePointer(address: UInt(bitPattern: try stageRecorded(UnsafeRawBufferPointer(indices)))) }
        } else {
            upload(indices, to: source)  // recorded: a copy from the recording's pinned buffer
        }
        return source
    }

    /// The batch's indices on the device, for a gather outside a recorded step (grown there, never inside one).
    private var batchIndices = (pointer: DevicePointer<Int32>(address: 0), count: 0)

    public func gemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: DevicePointer<Float>, lda: Int, b: DevicePointer<Float>, ldb: Int, beta: Float, c: DevicePointer<Float>, ldc: Int) {
        // Waits for the side stream only if it touches these matrices: the first layer's weight gradient (a plain
        // product) then runs beside the later layers' weight gradients instead of after them.
        if joinsBeforeEveryProduct || sidePending && (sideAccesses.writes(into: StreamAccesses.extent(a, rows: transposeA ? k : m, stride: lda))
                                                      || sideAccesses.writes(into: StreamAccesses.extent(b, rows: transposeB ? n : k, stride: ldb))
                                                      || sideAccesses.uses(StreamAccesses.extent(c, rows: m, stride: ldc))) {
            join()
        }
        enqueueGemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        mark("product \(m)×\(n)×\(k) \(transposeA ? "T" : "N")\(transposeB ? "T" : "N")")
    }

    /// `MLP_CUDA_GEMM_JOINS=1`: `gemm` waits for the side stream whatever it touches (as it did before the byte
    /// ranges; to measure what they buy).
    private let joinsBeforeEveryProduct = ProcessInfo.processInfo.environment["MLP_CUDA_GEMM_JOINS"] == "1"

    /// `gemm` on the main stream without joining the side stream first (for operations that know what it reads).
    private func enqueueGemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: DevicePointer<Float>, lda: Int, b: DevicePointer<Float>, ldb: Int, beta: Float, c: DevicePointer<Float>, ldc: Int) {
        if case .replaying = mode { return }  // recorded in the graph
        record {
            let call = MatmulCall(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                                  a: a.address, lda: lda, b: b.address, ldb: ldb, beta: beta, c: c.address, ldc: ldc)
            if try matmul(call, on: stream) { return }
            // cuBLAS is column-major: the row-major C = op(A)·op(B) is the column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, and a
            // row-major matrix read column-major is its transpose, so B and A swap places and keep their flags.
            var alphaValue = alpha, betaValue = beta
            let status = blas.sgemm(
                blasHandle, transposeB ? 1 : 0, transposeA ? 1 : 0, Int32(n), Int32(m), Int32(k), &alphaValue,
                UnsafePointer(bitPattern: b.address), Int32(ldb), UnsafePointer(bitPattern: a.address), Int32(lda),
                &betaValue, UnsafeMutablePointer(bitPattern: c.address), Int32(ldc))
            guard status == 0 else { throw CUDAError("cublasSgemm(\(m)×\(n)×\(k)) failed with status \(status)") }
        }
    }

    /// Runs `call` through cuBLASLt on stream `target`; false when there is no cuBLASLt or no algorithm for it (the
    /// caller then does the work another way). The first run of a shape outside a recording times the candidates
    /// (on the main stream, synchronously).
    private func matmul(_ call: MatmulCall, on target: OpaquePointer?) throws -> Bool {
        guard let planner else { return false }
        let onSide = target == sideStream
        let workspace = onSide ? workspaces.side : workspaces.main
        if let forced = forcedTiledConfig, let tiled = planner.tiled {
            try tiled.launch(forced, call, stream: target, workspace: workspace)
            return true
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
            return try run(direct, planner, on: target, workspace)
        }
        return try run(call, planner, on: target, workspace)
    }

    /// `call` with its plan's algorithm (timed first, if this is its shape's first run outside a recording).
    private func run(_ call: MatmulCall, _ planner: MatmulPlanner, on target: OpaquePointer?, _ workspace: MatmulWorkspace) throws -> Bool {
        let started = DispatchTime.now().uptimeNanoseconds
        guard let plan = try planner.plan(for: call) else { return false }
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
        return true
    }

    /// Whether the product `call`, a weight gradient's Xᵀ·dZ, first copies X transposed into scratch and then runs
    /// without a transpose: TF32 products of at least `transposedInputMinimumFlops` (`MLP_CUDA_TRANSPOSE=1` for
    /// every such product, 0 for none). TF32 tensor-core kernels read both operands along `k`; in Xᵀ·dZ neither is
    /// stored that way, and cuBLASLt's best for 4096×4096×1024 took 148 µs where the forward product of the same
    /// size took 86. Measured on an H200 (Benchmarks/RESULTS.md): with this rule wide-1024 in TF32 went from 619 to
    /// 579 µs a step; copying for every weight gradient lost 2–5 µs a step on the small workloads, and in fp32
    /// (whose kernels do not care about the layout) it lost everywhere.
    private func transposesInput(of call: MatmulCall) -> Bool {
        Self.transposesInput(of: call, tf32: allowTF32, setting: transposeSwitch)
    }

    /// The rule of `transposesInput` for a backend of that precision and `MLP_CUDA_TRANSPOSE` setting.
    static func transposesInput(of call: MatmulCall, tf32: Bool, setting: String?) -> Bool {
        guard call.transposeA, !call.transposeB else { return false }
        switch setting {
        case "1": return true
        case "0": return false
        default: return tf32 && 2.0 * Double(call.m) * Double(call.n) * Double(call.k) >= transposedInputMinimumFlops
        }
    }
    private let transposeSwitch = ProcessInfo.processInfo.environment["MLP_CUDA_TRANSPOSE"]
    static let transposedInputMinimumFlops = 2e9
    /// Per stream, the transposed copy of a weight gradient's input (grown outside recordings only; old buffers are
    /// retired, since a recorded step may use them).
    private var transposeScratches = (main: (address: UInt64(0), floats: 0), side: (address: UInt64(0), floats: 0))

    /// The stream's transpose scratch of at least `floats`, or nil if it is smaller and cannot grow here (inside a
    /// recording: the step ran once unrecorded before, so it has grown then).
    private func transposeScratch(floats: Int, side: Bool) throws -> UInt64? {
        let current = side ? transposeScratches.side : transposeScratches.main
        if current.floats >= floats { return current.address }
        guard case .direct = mode else { return nil }
        let address = UInt64(try allocate(Float.self, count: floats).address)
        if current.floats > 0 { retiredScratch.append(UInt(current.address)) }
        if side { transposeScratches.side = (address, floats) } else { transposeScratches.main = (address, floats) }
        return address
    }

    static let ltWorkspaceBytes = 32 << 20

    /// One stream's scratch for the products: cuBLASLt's workspace, and our kernels' partial sums and zeroed tile
    /// counters if they will run.
    private static func allocateWorkspace(_ d: CUDADriver, forTiledKernels: Bool) throws -> MatmulWorkspace {
        var lt: UInt64 = 0
        try d.check(d.cuMemAlloc(&lt, ltWorkspaceBytes), "cuMemAlloc(cuBLASLt workspace)")
        var workspace = MatmulWorkspace(lt: lt, partials: 0, counters: 0)
        if forTiledKernels { try addTiledScratch(d, to: &workspace) }
        return workspace
    }

    private static func addTiledScratch(_ d: CUDADriver, to workspace: inout MatmulWorkspace) throws {
        try d.check(d.cuMemAlloc(&workspace.partials, TiledGemm.partialBytes), "cuMemAlloc(partial sums)")
        try d.check(d.cuMemAlloc(&workspace.counters, TiledGemm.counterCount * 4), "cuMemAlloc(tile counters)")
        try d.check(d.cuMemsetD8(workspace.counters, 0, TiledGemm.counterCount * 4), "cuMemsetD8(tile counters)")
    }

    // MARK: The side stream

    /// Makes the main stream wait for everything queued on the side stream and the update stream.
    private func join() {
        guard sidePending || updatePending else { return }
        let side = sidePending, update = updatePending
        sidePending = false
        updatePending = false
        sideAccesses.removeAll()
        if case .replaying = mode { return }
        record {
            if side { try driver.check(driver.cuStreamWaitEvent(stream, joinEvent, 0), "cuStreamWaitEvent(join)") }
            if update { try driver.check(driver.cuStreamWaitEvent(stream, updateDone, 0), "cuStreamWaitEvent(join updates)") }
        }
    }

    /// Whether our own product kernels can run (they go through the cuBLASLt path; they are timed beside its
    /// algorithms only with `MLP_CUDA_TILED=1`).
    public var hasTiledProducts: Bool { planner != nil }

    private var forcedTiledConfig: TiledGemm.Config?
    /// Compiles our product kernels (NVRTC takes seconds over them: done only when they are first needed).
    private var compileTiled: (() throws -> TiledGemmKernels)?

    /// Runs `body` with every product going through our tiled kernel with `rowsPerTile`×`columnsPerTile` tiles and
    /// `k` cut into `splits`, whatever timing would choose: for `mlp check`, which checks each configuration against
    /// the reference (timing alone would exercise only the ones it picks). Products too large for that many splits'
    /// partial sums fail with an error at the next `synchronize()`.
    public func withTiledProducts<T>(rowsPerTile: Int, columnsPerTile: Int, splits: Int, _ body: () throws -> T) throws -> T {
        guard let planner else { throw CUDAError("our product kernels need cuBLASLt's path (MLP_CUDA_LT is 0)") }
        if planner.tiled == nil, let compileTiled { planner.tiled = try compileTiled() }
        if workspaces.main.partials == 0 {
            join()
            try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
            try Self.addTiledScratch(driver, to: &workspaces.main)
            try Self.addTiledScratch(driver, to: &workspaces.side)
        }
        forcedTiledConfig = TiledGemm.Config(rowsPerTile: rowsPerTile, columnsPerTile: columnsPerTile, splits: splits)
        defer { forcedTiledConfig = nil }
        return try body()
    }

    /// The timing of each product shape tuned so far, one line each (for `mlp bench --profile` and `-v`).
    public var matmulReport: [String] { planner?.report ?? [] }

    // MARK: Fused layers

    public var fusesDenseLayers: Bool { planner != nil && fusesEpilogues }

    public func denseForward(outputs: DevicePointer<Float>, inputs: DevicePointer<Float>, weights: DevicePointer<Float>, bias: DevicePointer<Float>, rows: Int, inputSize: Int, outputSize: Int, activation: Activation) {
        join()
        guard fusesDenseLayers, activation == .relu || activation == .identity else {
            return unfusedDenseForward(outputs: outputs, inputs: inputs, weights: weights, bias: bias, rows: rows, inputSize: inputSize, outputSize: outputSize, activation: activation)
        }
        if case .replaying = mode { return }  // recorded in the graph
        var fused = false
        record {
            // A [B, out] = f(X [B, in] · W [in, out] + b), the bias and the ReLU in the product's epilogue.
            let call = MatmulCall(transposeA: false, transposeB: false, m: rows, n: outputSize, k: inputSize, alpha: 1,
                                  a: inputs.address, lda: inputSize, b: weights.address, ldb: outputSize, beta: 0,
                                  c: outputs.address, ldc: outputSize, epilogue: activation == .relu ? .reluBias : .bias,
                                  bias: bias.address)
            fused = try matmul(call, on: stream)
        }
        if !fused && pendingError == nil {
            unfusedDenseForward(outputs: outputs, inputs: inputs, weights: weights, bias: bias, rows: rows, inputSize: inputSize, outputSize: outputSize, activation: activation)
        }
        mark("forward \(rows)×\(outputSize)×\(inputSize) +bias \(activation.rawValue)")
    }

    public func denseBackward(weightGradient: DevicePointer<Float>, inputGradient: DevicePointer<Float>, inputBiasGradient: DevicePointer<Float>, gradient: DevicePointer<Float>, inputs: DevicePointer<Float>, weights: DevicePointer<Float>, rows: Int, inputSize: Int, outputSize: Int, inputActivation: Activation) {
        // Waits for the side stream's earlier work if it writes what this reads, or touches what this writes (the
        // input gradient, which an earlier layer's weight gradient may still be reading).
        if sidePending && (sideAccesses.writes(into: StreamAccesses.extent(gradient, rows: rows, stride: outputSize))
                           || sideAccesses.writes(into: StreamAccesses.extent(inputs, rows: rows, stride: inputSize))
                           || sideAccesses.writes(into: StreamAccesses.extent(weights, rows: inputSize, stride: outputSize))
                           || sideAccesses.uses(StreamAccesses.extent(inputGradient, rows: rows, stride: inputSize))
                           || sideAccesses.uses(StreamAccesses.extent(inputBiasGradient, rows: 1, stride: inputSize))) {
            join()
        }
        guard usesSideStream else {
            join()
            return unfusedDenseBackward(weightGradient: weightGradient, inputGradient: inputGradient, inputBiasGradient: inputBiasGradient, gradient: gradient, inputs: inputs, weights: weights, rows: rows, inputSize: inputSize, outputSize: outputSize, inputActivation: inputActivation)
        }
        enqueueWeightGradient(weightGradient, inputs: inputs, gradient: gradient, rows: rows, inputSize: inputSize, outputSize: outputSize)
        // dX [B, in] = dZ [B, out] · Wᵀ [out, in], then the activation's derivative and the bias gradient.
        enqueueGemm(transposeA: false, transposeB: true, m: rows, n: inputSize, k: outputSize, alpha: 1, a: gradient, lda: outputSize, b: weights, ldb: outputSize, beta: 0, c: inputGradient, ldc: inputSize)
        if case .replaying = mode {} else {
            record { try enqueueActivationBackward(gradient: inputGradient, biasGradient: inputBiasGradient, outputs: inputs, rows: rows, columns: inputSize, activation: Int32(Activation.allCases.firstIndex(of: inputActivation)!), dependent: true, on: stream) }
        }
        mark("backward \(rows)×\(inputSize)×\(outputSize): dX product, \(inputActivation.rawValue)' and bias gradient (dW beside)")
    }

    /// dW [in, out] = Xᵀ [in, B] · dZ [B, out], on the side stream: nothing reads it before the optimizer (which
    /// joins), so it runs beside what the main stream does next.
    /// `alsoBeside` queues more work on the side stream after the product (it runs only while recording or running
    /// directly, not when a step is replayed; non-escaping, so that a replayed step allocates no closure context).
    private func enqueueWeightGradient(_ weightGradient: DevicePointer<Float>, inputs: DevicePointer<Float>, gradient: DevicePointer<Float>, rows: Int, inputSize: Int, outputSize: Int, alsoBeside: () throws -> Void = {}) {
        if case .replaying = mode {
            sidePending = true
        } else {
            var forked = false
            record {
                try driver.check(driver.cuEventRecord(forkEvent, stream), "cuEventRecord(fork)")
                try driver.check(driver.cuStreamWaitEvent(sideStream, forkEvent, 0), "cuStreamWaitEvent(fork)")
                let call = MatmulCall(transposeA: true, transposeB: false, m: inputSize, n: outputSize, k: rows, alpha: 1,
                                      a: inputs.address, lda: inputSize, b: gradient.address, ldb: outputSize, beta: 0,
                                      c: weightGradient.address, ldc: outputSize)
                forked = try matmul(call, on: sideStream)
                try alsoBeside()
                try driver.check(driver.cuEventRecord(joinEvent, sideStream), "cuEventRecord(join)")
                sidePending = true
            }
            if !forked && pendingError == nil {
                // No cuBLASLt algorithm for this product: the main stream does it.
                enqueueGemm(transposeA: true, transposeB: false, m: inputSize, n: outputSize, k: rows, alpha: 1, a: inputs, lda: inputSize, b: gradient, ldb: outputSize, beta: 0, c: weightGradient, ldc: outputSize)
            }
        }
        sideAccesses.read(StreamAccesses.extent(inputs, rows: rows, stride: inputSize))
        sideAccesses.read(StreamAccesses.extent(gradient, rows: rows, stride: outputSize))
        sideAccesses.write(StreamAccesses.extent(weightGradient, rows: inputSize, stride: outputSize))
    }

    /// The one-kernel output layer takes layers of at most 16 outputs whose weights fit in shared memory beside the
    /// kernel's own sums (`outputLayerStagedFloats`), and batches of any size. Wider layers are a product, the loss,
    /// a product and the activation backward. Before the kernel could opt in to more than 48 KB, wide-1024's 4096×10
    /// layer took that composition, about 64 µs of a TF32 step; two one-kernel versions reading a transposed copy of
    /// the weights from global memory (a warp per row; four rows a block) took 272 and 101 µs (Benchmarks/RESULTS.md).
    static let fusedOutputMaximum = 16
    /// Shared memory the kernel's own sums take (a block's per-warp sums and the last block's slices, 1.1 KB), kept
    /// out of what the weights may use.
    static let outputLayerOwnSharedBytes = 1536
    /// The most floats of weights the kernel can stage in `sharedBytesPerBlock` bytes of shared memory a block.
    static func outputLayerStagedFloats(sharedBytesPerBlock: Int) -> Int { (sharedBytesPerBlock - outputLayerOwnSharedBytes) / 4 }
    /// What a block may have without opting in.
    static let defaultSharedBytesPerBlock = 48 * 1024
    /// The output layer's kernel: 4 or 8 warps a block (see `outputLayerWarps`), one row per warp at a time, and at
    /// most `outputLayerMaximumBlocks` blocks (its scratch has one slot of 18 sums per block, and the last block adds
    /// them all: more blocks would lengthen that).
    static let outputLayerMaximumBlocks = 128
    /// The sums each block of it leaves (OUT_MAX + 2: bias gradients, loss, correct count), and the threads of
    /// `output_layer_sums`, which adds them (at least SUM_SLICES × that).
    static let outputLayerSumsPerBlock = 18
    static let outputLayerSumThreads: UInt32 = 128

    /// Warps a block of the output layer's kernel for `rows` rows: 4, or 8 where 128 blocks of 4 would give a warp
    /// more than one row (a batch of 1024: one row a warp, twice the loads in flight on each SM).
    /// `MLP_CUDA_OUTPUT_WARPS=4` or `8` (`setting`) forces one.
    static func outputLayerWarps(rows: Int, setting: String?) -> Int {
        switch setting {
        case "4": return 4
        case "8": return 8
        default: return rows > 4 * outputLayerMaximumBlocks ? 8 : 4
        }
    }

    /// The output layer kernel's grid, block, shared memory (the weights) and their row stride in it: the number of
    /// outputs rounded up to odd (conflict-free reads of 32 rows at once) where that still fits in `stagedFloats`.
    static func outputLayerLaunch(rows: Int, inputSize: Int, outputSize: Int, stagedFloats: Int, warps: Int) -> (blocks: UInt32, threads: UInt32, sharedBytes: UInt32, weightStride: Int32) {
        let blocks = max(1, min((rows + warps - 1) / warps, outputLayerMaximumBlocks))
        let stride = inputSize * (outputSize | 1) <= stagedFloats ? outputSize | 1 : outputSize
        return (UInt32(blocks), UInt32(32 * warps), UInt32(4 * inputSize * stride), Int32(stride))
    }

    /// `output_layer_wide`'s static shared memory (the warps' and rows' sums, the last block's slices: 3,776 bytes
    /// for sm_90), kept out of what its weights may use.
    static let wideOutputOwnSharedBytes = 4096
    /// Rows a block of `output_layer_wide` takes at once, its threads, and the outputs it takes (WIDE_ROWS,
    /// WIDE_THREADS, WIDE_OUT in the kernel).
    static let wideOutputRows = 8
    static let wideOutputThreads: UInt32 = 256
    static let wideOutputOutputs = 10
    /// Whether a layer takes `output_layer_wide`: ten outputs, an even number of inputs from `from` on (0: never),
    /// whose weights fit in `stagedFloats`, and the addresses of the inputs and of the input gradient (0: none)
    /// 8-byte aligned (the kernel loads and stores pairs). (Two addresses, not an array: a replayed step calls this
    /// and must allocate nothing.)
    static func usesWideOutputLayer(inputSize: Int, outputSize: Int, from: Int, stagedFloats: Int, inputs: UInt, inputGradient: UInt) -> Bool {
        from > 0 && outputSize == wideOutputOutputs && inputSize >= from && inputSize % 2 == 0
            && wideOutputOutputs * inputSize <= stagedFloats
            && inputs % 8 == 0 && inputGradient % 8 == 0
    }

    /// `output_layer_wide`'s grid (a block per 8 rows, at most `outputLayerMaximumBlocks`: their blocks take
    /// further rows in turn), block and shared memory (the weights).
    static func wideOutputLayerLaunch(rows: Int, inputSize: Int) -> (blocks: UInt32, threads: UInt32, sharedBytes: UInt32) {
        let blocks = max(1, min((rows + wideOutputRows - 1) / wideOutputRows, outputLayerMaximumBlocks))
        return (UInt32(blocks), wideOutputThreads, UInt32(4 * wideOutputOutputs * inputSize))
    }

    /// Whether the output layer's weights fit in the kernel's shared memory, `stagedFloats` of it.
    static func outputLayerIsStaged(inputSize: Int, outputSize: Int, stagedFloats: Int) -> Bool { inputSize * outputSize <= stagedFloats }

    private func fusesOutputLayer(rows: Int, inputSize: Int, outputSize: Int, inputs: DevicePointer<Float>, inputGradient: DevicePointer<Float>?) -> Bool {
        fusesDenseLayers && outputSize <= Self.fusedOutputMaximum
            && (Self.outputLayerIsStaged(inputSize: inputSize, outputSize: outputSize, stagedFloats: outputLayerStagedFloats)
                || Self.usesWideOutputLayer(inputSize: inputSize, outputSize: outputSize, from: outputWideFrom,
                                            stagedFloats: wideOutputStagedFloats, inputs: inputs.address,
                                            inputGradient: inputGradient?.address ?? 0))
    }

    /// Queues the one-kernel output layer (see `fusedOutputMaximum`); `inputGradient` nil for the forward and loss
    /// only. With `defersSums` the kernel leaves its blocks' sums (the bias gradient, the metrics) in
    /// `outputPartials` for `output_layer_sums` to add on the side stream; returns the number of blocks.
    @discardableResult
    private func launchOutputLayer(outputs: DevicePointer<Float>, gradient: DevicePointer<Float>?, biasGradient: DevicePointer<Float>?, metrics: DevicePointer<Float>, predictions: DevicePointer<Int32>?, inputs: DevicePointer<Float>, weights: DevicePointer<Float>, bias: DevicePointer<Float>, labels: DevicePointer<Int32>, rows: Int, inputSize: Int, outputSize: Int, loss: Loss, gradientScale: Float, inputGradient: DevicePointer<Float>?, inputActivation: Activation, defersSums: Bool = false) -> UInt32 {
        let none = DevicePointer<Float>(address: 0)
        let activation = Int32(Activation.allCases.firstIndex(of: inputActivation)!)
        if Self.usesWideOutputLayer(inputSize: inputSize, outputSize: outputSize, from: outputWideFrom, stagedFloats: wideOutputStagedFloats,
                                    inputs: inputs.address, inputGradient: inputGradient?.address ?? 0) {
            let shape = Self.wideOutputLayerLaunch(rows: rows, inputSize: inputSize)
            launch("output_layer_wide", grid: (shape.blocks, 1), block: shape.threads, sharedBytes: shape.sharedBytes, dependent: true,
                   [outputs, gradient ?? none, biasGradient ?? none, metrics, predictions ?? DevicePointer<Int32>(address: 0),
                    inputs, weights, bias, labels, Int32(rows), Int32(inputSize),
                    Int32(loss == .softmaxCrossEntropy ? 0 : 1), gradientScale, outputPartials, outputCounter, inputGradient ?? none,
                    activation, Int32(defersSums ? 1 : 0)])
            return shape.blocks
        }
        let shape = Self.outputLayerLaunch(rows: rows, inputSize: inputSize, outputSize: outputSize, stagedFloats: outputLayerStagedFloats,
                                           warps: Self.outputLayerWarps(rows: rows, setting: outputWarpsSwitch))
        launch("output_layer_loss", grid: (shape.blocks, 1), block: shape.threads, sharedBytes: shape.sharedBytes, dependent: true,
               [outputs, gradient ?? none, biasGradient ?? none, metrics, predictions ?? DevicePointer<Int32>(address: 0),
                inputs, weights, bias, labels, Int32(rows), Int32(inputSize), Int32(outputSize),
                Int32(loss == .softmaxCrossEntropy ? 0 : 1), gradientScale, outputPartials, outputCounter, inputGradient ?? none,
                activation, shape.weightStride, outputLongRowsFrom,
                Int32(defersSums ? 1 : 0)])
        return shape.blocks
    }

    public func outputLayerLoss(outputs: DevicePointer<Float>, gradient: DevicePointer<Float>?, biasGradient: DevicePointer<Float>?, metrics: DevicePointer<Float>, predictions: DevicePointer<Int32>?, inputs: DevicePointer<Float>, weights: DevicePointer<Float>, bias: DevicePointer<Float>, labels: DevicePointer<Int32>, rows: Int, inputSize: Int, outputSize: Int, loss: Loss, gradientScale: Float) {
        guard fusesOutputLayer(rows: rows, inputSize: inputSize, outputSize: outputSize, inputs: inputs, inputGradient: nil), gradient == nil || biasGradient != nil else {
            return unfusedOutputLayerLoss(outputs: outputs, gradient: gradient, biasGradient: biasGradient, metrics: metrics, predictions: predictions, inputs: inputs, weights: weights, bias: bias, labels: labels, rows: rows, inputSize: inputSize, outputSize: outputSize, loss: loss, gradientScale: gradientScale)
        }
        join()
        launchOutputLayer(outputs: outputs, gradient: gradient, biasGradient: biasGradient, metrics: metrics, predictions: predictions, inputs: inputs, weights: weights, bias: bias, labels: labels, rows: rows, inputSize: inputSize, outputSize: outputSize, loss: loss, gradientScale: gradientScale, inputGradient: nil, inputActivation: .relu)
    }

    public func outputLayerLossBackward(outputs: DevicePointer<Float>, gradient: DevicePointer<Float>, biasGradient: DevicePointer<Float>, metrics: DevicePointer<Float>, inputs: DevicePointer<Float>, weights: DevicePointer<Float>, bias: DevicePointer<Float>, labels: DevicePointer<Int32>, rows: Int, inputSize: Int, outputSize: Int, loss: Loss, gradientScale: Float, weightGradient: DevicePointer<Float>, inputGradient: DevicePointer<Float>, inputBiasGradient: DevicePointer<Float>, inputActivation: Activation) {
        guard fusesOutputLayer(rows: rows, inputSize: inputSize, outputSize: outputSize, inputs: inputs, inputGradient: inputGradient), fusesOutputBackward else {
            return unfusedOutputLayerLossBackward(outputs: outputs, gradient: gradient, biasGradient: biasGradient, metrics: metrics, inputs: inputs, weights: weights, bias: bias, labels: labels, rows: rows, inputSize: inputSize, outputSize: outputSize, loss: loss, gradientScale: gradientScale, weightGradient: weightGradient, inputGradient: inputGradient, inputBiasGradient: inputBiasGradient, inputActivation: inputActivation)
        }
        join()
        let defersSums = usesSideStream && sumsBeside
        let blocks = launchOutputLayer(outputs: outputs, gradient: gradient, biasGradient: biasGradient, metrics: metrics, predictions: nil, inputs: inputs, weights: weights, bias: bias, labels: labels, rows: rows, inputSize: inputSize, outputSize: outputSize, loss: loss, gradientScale: gradientScale, inputGradient: inputGradient, inputActivation: inputActivation, defersSums: defersSums)
        // Off the critical path (nothing but the optimizer reads them): the output layer's weight gradient, the
        // input gradient's column sums, the layer below's bias gradient (the activation backward's column sums,
        // with the identity: the gradient itself is left as it is), and the kernel's blocks' sums.
        let identity = Int32(Activation.allCases.firstIndex(of: .identity)!)
        if usesSideStream {
            enqueueWeightGradient(weightGradient, inputs: inputs, gradient: gradient, rows: rows, inputSize: inputSize, outputSize: outputSize) {
                if defersSums {
                    try self.enqueueKernel("output_layer_sums", grid: (1, 1), block: Self.outputLayerSumThreads, on: self.sideStream,
                                           [self.outputPartials, Int32(blocks), Int32(outputSize), biasGradient, metrics])
                }
                try self.enqueueActivationBackward(gradient: inputGradient, biasGradient: inputBiasGradient, outputs: inputs, rows: rows,
                                                   columns: inputSize, activation: identity, on: self.sideStream)
            }
            sideAccesses.read(StreamAccesses.extent(inputGradient, rows: rows, stride: inputSize))
            sideAccesses.read(StreamAccesses.extent(inputs, rows: rows, stride: inputSize))
            sideAccesses.write(StreamAccesses.extent(inputBiasGradient, rows: 1, stride: inputSize))
            if defersSums {
                sideAccesses.read(StreamAccesses.extent(outputPartials, rows: Int(blocks), stride: Self.outputLayerSumsPerBlock))
                sideAccesses.write(StreamAccesses.extent(biasGradient, rows: 1, stride: outputSize))
                sideAccesses.write(StreamAccesses.extent(metrics, rows: 1, stride: 2))
            }
        } else {
            enqueueGemm(transposeA: true, transposeB: false, m: inputSize, n: outputSize, k: rows, alpha: 1, a: inputs, lda: inputSize, b: gradient, ldb: outputSize, beta: 0, c: weightGradient, ldc: outputSize)
            if case .replaying = mode {} else {
                record { try enqueueActivationBackward(gradient: inputGradient, biasGradient: inputBiasGradient, outputs: inputs, rows: rows, columns: inputSize, activation: identity, on: stream) }
            }
        }
        mark("output layer \(rows)×\(outputSize)×\(inputSize), loss, backward (dW and bias gradient below beside)")
    }

    public func biasActivationForward(values: DevicePointer<Float>, bias: DevicePointer<Float>, rows: Int, columns: Int, activation: Activation) {
        join()
        launch("bias_activation", grid: (blocks(rows * columns), 1), block: 256,
               [values, bias, Int64(rows * columns), Int32(columns), Int32(Activation.allCases.firstIndex(of: activation)!)])
    }

    public func activationBackward(gradient: DevicePointer<Float>, biasGradient: DevicePointer<Float>, outputs: DevicePointer<Float>, rows: Int, columns: Int, activation: Activation) {
        join()
        if case .replaying = mode { return }
        record { try enqueueActivationBackward(gradient: gradient, biasGradient: biasGradient, outputs: outputs, rows: rows, columns: columns, activation: Int32(Activation.allCases.firstIndex(of: activation)!), on: stream) }
    }

    /// Queues `activation_backward` (activation given as its kernel code) on `target`, the main or the side stream.
    private func enqueueActivationBackward(gradient: DevicePointer<Float>, biasGradient: DevicePointer<Float>, outputs: DevicePointer<Float>, rows: Int, columns: Int, activation: Int32, dependent: Bool = false, on target: OpaquePointer?) throws {
        // Chunks of at least 128 rows, at most 64 of them: a 1024-row batch of 512 columns is 16 × 8 blocks
        // instead of 16 blocks each walking all the rows (measured on an H100 with 64-row chunks: small-1024 went
        // from 5.95 to 6.92 million samples/s in fp32). A 128-row batch stays one chunk.
        var chunks = max(1, min(rows / 128, 64))
        let groups = (columns + 31) / 32
        let side = target != stream
        if chunks > 1 {
            if case .direct = mode { try reserveReductionScratch(floats: chunks * columns, counters: groups, side: side) }
            let scratch = side ? reductionScratches.side : reductionScratches.main
            if scratch.floats < chunks * columns || scratch.counters < groups {
                chunks = 1  // not enough scratch, and none can be allocated inside a recording
            }
        }
        let scratch = side ? reductionScratches.side : reductionScratches.main
        try enqueueKernel("activation_backward", grid: (UInt32(groups), UInt32(chunks)), block: 32, blockY: 16, dependent: dependent, on: target,
                          [gradient, biasGradient, outputs, Int32(rows), Int32(columns), activation, scratch.partials, scratch.counterArray])
    }

    /// Scratch of `activation_backward`'s chunked column sums, one per stream (the two may run at once): partial
    /// sums and per-column-group counters (zero between launches: the last chunk resets its counter). Grown only
    /// outside recordings; old buffers are kept, since a recorded step may use them.
    private struct ReductionScratch {
        var partials = DevicePointer<Float>(address: 0), floats = 0
        var counterArray = DevicePointer<UInt32>(address: 0), counters = 0
    }
    private var reductionScratches = (main: ReductionScratch(), side: ReductionScratch())
    private var retiredScratch = [UInt]()

    private func reserveReductionScratch(floats: Int, counters: Int, side: Bool) throws {
        let old = side ? reductionScratches.side : reductionScratches.main
        guard floats > old.floats || counters > old.counters else { return }
        let f = max(floats, old.floats, 1 << 16), n = max(counters, old.counters, 256)
        let grown = ReductionScratch(partials: try allocate(Float.self, count: f), floats: f,
                                     counterArray: try allocate(UInt32.self, count: n), counters: n)  // zero-filled
        if old.floats > 0 { retiredScratch += [old.partials.address, old.counterArray.address] }
        if side { reductionScratches.side = grown } else { reductionScratches.main = grown }
    }

    public func lossForwardBackward(gradient: DevicePointer<Float>?, metrics: DevicePointer<Float>, predictions: DevicePointer<Int32>?, outputs: DevicePointer<Float>, labels: DevicePointer<Int32>, rows: Int, columns: Int, loss: Loss, gradientScale: Float) {
        join()
        launch("loss_rows", grid: (blocks(rows, 128), 1), block: 128,
               [gradient ?? DevicePointer(address: 0), metrics, predictions ?? DevicePointer<Int32>(address: 0), outputs, labels,
                Int32(rows), Int32(columns), Int32(loss == .softmaxCrossEntropy ? 0 : 1), gradientScale])
    }

    public func optimizerUpdate(parameters: DevicePointer<Float>, gradients: DevicePointer<Float>, state: DevicePointer<Float>, count: Int, stateStride: Int, step: OptimizerStep) {
        enqueueUpdate(parameters: parameters, gradients: gradients, state: state, count: count, stateStride: stateStride, step: step, gather: nil)
    }

    /// Batches of up to `inlineIndexCapacity` rows, their indices in the parameters (`MLP_CUDA_GATHER_WITH_UPDATE=0`:
    /// none, each step gathers its own batch).
    public func gathersWithUpdates(rows: Int) -> Bool {
        gathersWithUpdatesSwitch && rows <= min(inlineIndexLimit, Self.inlineIndexCapacity)
    }
    private let gathersWithUpdatesSwitch = ProcessInfo.processInfo.environment["MLP_CUDA_GATHER_WITH_UPDATE"] != "0"

    /// The update and, in the same launch (`optimizer_update_gather`, on the main stream after any work beside that
    /// touches what either writes), the gather, for a batch `gathersWithUpdates` takes; else the two in turn.
    public func optimizerUpdate(parameters: DevicePointer<Float>, gradients: DevicePointer<Float>, state: DevicePointer<Float>, count: Int, stateStride: Int, step: OptimizerStep, thenGather gather: BatchGather) {
        guard gathersWithUpdates(rows: gather.indices.count) else {
            optimizerUpdate(parameters: parameters, gradients: gradients, state: state, count: count, stateStride: stateStride, step: step)
            return gatherBatch(inputs: gather.inputs, labels: gather.labels, pixels: gather.pixels, sourceLabels: gather.sourceLabels,
                               indices: gather.indices, features: gather.features, normalization: gather.normalization)
        }
        enqueueUpdate(parameters: parameters, gradients: gradients, state: state, count: count, stateStride: stateStride, step: step, gather: gather)
    }

    /// `optimizerUpdate`, with `gather` in the same launch if given.
    private func enqueueUpdate(parameters: DevicePointer<Float>, gradients: DevicePointer<Float>, state: DevicePointer<Float>, count: Int, stateStride: Int, step: OptimizerStep, gather: BatchGather?) {
        precondition(stateStride >= count, "state slots \(stateStride) apart for \(count) parameters")
        let slots = step.kind == .sgd ? (step.momentum > 0 ? 1 : 0) : 2
        // Where the update goes: after both streams' work (`join`) for the whole buffer; for one layer's part of it,
        // on the update stream, after both streams' work so far, when the side stream (or an earlier update) still
        // writes these gradients or touches these parameters or states, else on the main stream, without waiting.
        let wholeBuffer = count == stateStride || updateStream == nil
        var target = stream
        if wholeBuffer {
            join()
        } else if let gather, sidePending || updatePending {
            // The gather writes the batch's inputs and labels: on the main stream, after any work beside that
            // still touches them or what the update touches.
            if touchedBeside(parameters: parameters, gradients: gradients, state: state, count: count, stateStride: stateStride, slots: slots)
                || sideAccesses.uses(StreamAccesses.extent(gather.inputs, rows: gather.indices.count, stride: gather.features))
                || sideAccesses.uses(StreamAccesses.extent(gather.labels, rows: 1, stride: gather.indices.count)) {
                join()
            }
        } else if (sidePending || updatePending) && touchedBeside(parameters: parameters, gradients: gradients, state: state, count: count, stateStride: stateStride, slots: slots) {
            target = updateStream
        }
        let beside = target != stream
        let kind = Int32(Self.kernelCode(of: step.kind))
        // The step's values go as a parameter (`StepValues`): a recorded step sets them in its node before each replay.
        let updateBlocks = blocks(count, 256 * 4)  // 4: UPDATE_UNROLL
        let gatherBlocks = gather.map { blocks($0.features) } ?? 0
        let grid = (updateBlocks + gatherBlocks * UInt32(gather?.indices.count ?? 0), UInt32(1))
        let kernel = gather == nil ? "optimizer_update" : "optimizer_update_gather"
        if case .replaying(let graph) = mode {
            if beside { updatePending = true }
            record {
                guard let node = graph.updateNodes[parameters.address] else {
                    throw CUDAError("a recorded step's optimizer update of \(count) parameters was not found in its graph")
                }
                node.arguments.set(StepValues(step: step), at: Self.stepValuesArgument)
                if let gather { node.setLast(InlineIndices(indices: gather.indices)) }
                try setArguments(of: node, in: graph, gather == nil ? "optimizer_update" : "optimizer_update_gather")
            }
        } else {
            var arguments: [any KernelArgument] = [parameters, gradients, state, Int64(count), Int64(stateStride), kind, Int32(step.nesterov ? 1 : 0), StepValues(step: step)]
            if let gather {
                arguments += [Int32(updateBlocks), gather.inputs, gather.labels, gather.pixels, gather.sourceLabels, Int32(gather.features),
                              gather.normalization.scale, gather.normalization.shift, Int32(gatherBlocks), InlineIndices(indices: gather.indices)]
            }
            // Laid out now: the indices' buffer is the caller's, gone when the recording ends.
            if case .capturing(let graph) = mode { graph.updateLaunches[parameters.address] = (kernel, grid, ArgumentBlock(arguments)) }
            record {
                if beside {
                    try driver.check(driver.cuEventRecord(mainReady, stream), "cuEventRecord(main ready)")
                    try driver.check(driver.cuStreamWaitEvent(target, mainReady, 0), "cuStreamWaitEvent(main ready)")
                    if sidePending {
                        try driver.check(driver.cuEventRecord(sideReady, sideStream), "cuEventRecord(side ready)")
                        try driver.check(driver.cuStreamWaitEvent(target, sideReady, 0), "cuStreamWaitEvent(side ready)")
                    }
                }
                if !beside && wholeBuffer { mark("waits: the second stream's weight gradients") }
                try enqueueKernel(kernel, grid: grid, block: 256, on: target, arguments)
                if beside {
                    try driver.check(driver.cuEventRecord(updateDone, target), "cuEventRecord(update)")
                    updatePending = true
                }
            }
        }
        if beside {
            sideAccesses.read(StreamAccesses.extent(gradients, rows: 1, stride: count))
            sideAccesses.write(StreamAccesses.extent(parameters, rows: 1, stride: count))
            for slot in 0..<slots { sideAccesses.write(StreamAccesses.extent(state + slot * stateStride, rows: 1, stride: count)) }
        } else {
            mark("\(step.kind.rawValue) update of \(count) parameters\(gather.map { ", the next batch of \($0.indices.count) gathered" } ?? "")")
        }
    }

    /// Queues a whole training step as `fused_train_step` (see `CUDAFusedStep`): the batch's indices and the step's
    /// optimizer values are uploaded (recorded copies in a recorded step), then one cooperative launch of
    /// `FusedStepKernel.blocksPerSM` blocks an SM does the rest.
    func enqueueFusedStep(descriptor: DevicePointer<UInt64>, pixels: DevicePointer<UInt8>, sourceLabels: DevicePointer<UInt8>,
                          indices: UnsafeBufferPointer<Int32>, features: Int, normalization: Normalization, step: OptimizerStep) {
        let rows = indices.count
        let source = queueBatchIndices(indices)
        queueStepValues(step)
        if case .replaying = mode { return }
        record {
            if case .capturing = mode, uploadStream != nil {
                try driver.check(driver.cuStreamWaitEvent(stream, uploadDone, 0), "cuStreamWaitEvent(upload)")
            }
            try enqueueKernel("fused_train_step", grid: (UInt32(FusedStepKernel.blocksPerSM * multiprocessorCount), 1), block: UInt32(FusedStepKernel.threads),
                              sharedBytes: UInt32(FusedStepKernel.sharedBytes), cooperative: true, on: stream,
                              [descriptor, pixels, sourceLabels, source, Int32(rows), Int32(features), normalization.scale, normalization.shift, hyperparameters])
        }
        mark("fused training step, batch \(rows)")
    }

    /// Queues the upload of the step's optimizer values to `hyperparameters`, once a training step. They go through
    /// device memory (an upload, refreshed on every replay), not kernel arguments. In a recording they are copied on
    /// their own branch from the step's start: a kernel that reads them then waits for `uploadDone`.
    func queueStepValues(_ step: OptimizerStep) {
        guard !(inStep && stepValuesQueued) else { return }
        var offPath = false
        if case .capturing = mode, let uploadStream {
            record { try driver.check(driver.cuStreamWaitEvent(uploadStream, stepStart, 0), "cuStreamWaitEvent(step start)") }
            uploadTarget = uploadStream
            offPath = true
        }
        let (c1, c2) = step.biasCorrections
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 8) { h in
            h[0] = step.learningRate; h[1] = step.momentum; h[2] = step.weightDecay; h[3] = step.beta1
            h[4] = step.beta2; h[5] = step.epsilon; h[6] = c1; h[7] = c2
            // In order on the main stream outside recordings: an update beside waits for the main stream.
            enqueueUpload(UnsafeBufferPointer(h), to: hyperparameters)
        }
        if offPath {
            uploadTarget = nil
            record { try driver.check(driver.cuEventRecord(uploadDone, uploadStream), "cuEventRecord(upload)") }
        }
        stepValuesQueued = inStep
    }

    /// Layer by layer from 4 million parameters, with the side stream (`MLP_CUDA_LAYER_UPDATES` decides instead when
    /// it is set). Measured on an H200 (Benchmarks/RESULTS.md): wide-1024's 20 million, whose update moves 560 MB,
    /// gained 81 µs of a 2.5 ms fp32 step and 11 of a 0.55 ms TF32 one (the first layer's update runs beside the
    /// second stream's weight gradient); small-128's 0.5 million lost 2–3 µs to the extra launches and waits.
    public func updatesEachLayer(parameters: Int) -> Bool {
        guard updateStream != nil else { return false }
        return layerUpdatesSwitch ?? (parameters >= 4_000_000)
    }

    /// Whether the side and update streams' queued work writes `gradients` or touches `parameters` or a state slot.
    private func touchedBeside(parameters: DevicePointer<Float>, gradients: DevicePointer<Float>, state: DevicePointer<Float>, count: Int, stateStride: Int, slots: Int) -> Bool {
        if sideAccesses.writes(into: StreamAccesses.extent(gradients, rows: 1, stride: count)) { return true }
        if sideAccesses.uses(StreamAccesses.extent(parameters, rows: 1, stride: count)) { return true }
        for slot in 0..<slots where sideAccesses.uses(StreamAccesses.extent(state + slot * stateStride, rows: 1, stride: count)) { return true }
        return false
    }
}

extension CUDABackend {
    /// The kernels' code for an optimizer (`optimizer_update`'s and the fused step's `kind`): 0 SGD, 1 Adam, 2 AdamW.
    static func kernelCode(of kind: OptimizerConfiguration.Kind) -> Int {
        switch kind {
        case .sgd: 0
        case .adam: 1
        case .adamw: 2
        }
    }
}
