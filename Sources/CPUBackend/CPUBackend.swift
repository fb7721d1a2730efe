import CCPUFeatures
import CPUKernels
import Foundation
import MLPCore
import MNIST

/// The optimized CPU backend: packed, cache-blocked SIMD GEMM (AVX-512, AVX2 or baseline, chosen at run time)
/// or a BLAS found at run time, fused elementwise passes, all spread over a persistent thread pool.
///
/// Memory is the host's, 64-byte aligned. After a `Network`'s first training step no operation allocates: the
/// packing buffers of every thread are made once, with the backend, and the output layer's transposed weights in
/// that first step.
///
/// Subnormal numbers are flushed to zero (x86's FTZ and DAZ, as XLA and oneDNN do) while the backend's kernels
/// run: arithmetic on them is about a hundred times slower, and late in training Adam's second moments reach them
/// (Benchmarks/RESULTS.md). Values below
/// 1.2e-38 therefore become 0 here where the naive backend keeps them. The caller's own mode is restored after
/// each operation.
///
/// The first layer's two products, whose A is the gathered batch, skip the batch's zeros where it has many (81% of
/// MNIST's pixels are 0): `sparseGEMM` steps, for each tile of 6 rows of the result, only through the pixels where
/// one of them is nonzero (under half of them for MNIST: Benchmarks/RESULTS.md). A zero term adds exactly nothing, so
/// only the order of the sums changes.
///
/// Results do not depend on the thread count: products are split between threads by rows or columns of C
/// (never along k), column sums by columns, the fused output layer by rows (each row's sums in a fixed order), and
/// the optimizer by elements, so every number is computed in the same order whatever the split. (Only the loss
/// *metric* is summed in per-thread parts.)
public final class CPUBackend: HostMemoryBackend, ComposedLayers {
    /// How matrix products are computed.
    public enum GEMMProvider: String, CaseIterable, Sendable {
        /// This package's packed SIMD GEMM (deterministic across thread counts).
        case own
        /// The BLAS found at run time (`BLASLibrary`), with its own threads.
        case blas
    }

    public let name = "cpu"
    /// How products round their operands.
    public enum Precision: String, CaseIterable, Sendable {
        /// fp32 operands and sums.
        case fp32
        /// bf16 operands, fp32 sums, on AVX-512 BF16 (`CPUBackend+BF16.swift`).
        case bf16
    }
    /// The products' precision.
    public let precision: Precision
    public let kernels: KernelSet
    public let gemmProvider: GEMMProvider
    public let blas: BLASLibrary?
    public let pool: ThreadPool
    private let workspaces: [GEMMWorkspace]

    /// Whether products with the batch's inputs as A skip the zeros of sparse batches (`SparseGEMM.swift`).
    public let skipsInputZeros: Bool
    /// The switches this backend was started with.
    public let options: CPUOptions

    /// What `deviceDescription` says when the backend skips the inputs' zeros (reports look for it).
    public static let skipsZerosDescription = "first-layer products skip the inputs' zeros"

    public var deviceDescription: String {
        let gemm = gemmProvider == .blas ? "BLAS \(blas!.name)\(blas!.configuration.map { " (\($0))" } ?? "")" : "own \(kernels.name) GEMM"
        let zeros = skipsInputZeros ? ", \(Self.skipsZerosDescription)" : ""
        let products = precision == .bf16 ? "bf16 products (AVX-512 BF16) and own \(kernels.name) fp32 GEMM" : gemm
        return "\(pool.threadCount) threads, \(products), \(kernels.name) kernels\(zeros)"
    }

    /// - Parameters:
    ///   - threads: threads in all (default: the active processor count).
    ///   - gemm: `.own` (default) or `.blas`.
    ///   - kernels: a kernel set (default: the widest the CPU supports).
    ///   - skipInputZeros: whether the first layer's products skip the zeros of a sparse batch (own GEMM only).
    ///     Default: `options.skipsInputZeros`.
    ///   - options: the switches (by default, the environment's).
    ///   - precision: `.fp32` (default), or `.bf16`: products of at least `bf16MinimumRows` rows with bf16 operands
    ///     and fp32 sums (own products only), those that skip the inputs' zeros too.
    /// - Throws: `CPUBackendError.blasNotFound` when `.blas` is asked for and none loads; `.bf16Unsupported` for
    ///   `.bf16` on a CPU without AVX-512 BF16, or with `.blas`.
    public init(threads: Int? = nil, gemm: GEMMProvider = .own, kernels: KernelSet? = nil, skipInputZeros: Bool? = nil,
                options: CPUOptions = CPUOptions(), precision: Precision = .fp32) throws {
        let threadCount = max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount)
        if precision == .bf16 {
            guard gemm == .own else { throw CPUBackendError.bf16Unsupported("--gemm blas: the BLAS's products are fp32") }
            guard Self.supportsBF16 else { throw CPUBackendError.bf16Unsupported("this CPU lacks AVX-512 BF16 (avx512_bf16 in /proc/cpuinfo)") }
        }
        self.precision = precision
        self.kernels = kernels ?? CPUFeatures.bestKernels
        self.gemmProvider = gemm
        self.options = options
        skipsInputZeros = gemm == .own && (skipInputZeros ?? options.skipsInputZeros)
        if gemm == .blas {
            let library = try BLASLibrary.load(options.blasLibrary)
            library.setThreadCount(threadCount)
            blas = library
            // The BLAS runs its own threads; ours would compete with them for the same cores in the elementwise
            // passes, so those run on the calling thread.
            pool = ThreadPool(threadCount: 1)
        } else {
            blas = nil
            pool = ThreadPool(threadCount: threadCount, workerStart: { _ = mlp_enter_flush_to_zero() })
        }
        workspaces = (0..<pool.threadCount).map { _ in GEMMWorkspace() }
        bindJobs()
    }

    // MARK: Parallel jobs

    /// The arguments of the operation in progress. Each operation's parallel job is a closure made once (in
    /// `bindJobs`) that reads them from here: a closure made per call would allocate on every call.
    private struct Pending {
        /// How many parts the operation is split into (one task each).
        var parts = 1
        var gemm = GEMMArguments(transposeA: false, transposeB: false, m: 0, n: 0, k: 0, alpha: 0, a: UnsafePointer(bitPattern: 64)!, lda: 0, b: UnsafePointer(bitPattern: 64)!, ldb: 0, beta: 0, c: UnsafeMutablePointer(bitPattern: 64)!, ldc: 0)
        var gemmByColumns = false
        var sparseGEMM = false
        var sharesLists = false
        var gemmTile = 0, gemmExtent = 0
        var gather: BatchGather?
        var biasActivation: BiasActivationArguments?
        var activationBackward: ActivationBackwardArguments?
        var loss: LossArguments?
        var update: ParameterUpdate?
        var outputLayer: OutputLayerArguments?
        /// The rows of the output layer's batch.
        var outputRows = 0
    }

    /// `biasActivationForward`'s arguments, for its job.
    private struct BiasActivationArguments {
        var values: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>
        var rows: Int, columns: Int, activation: Activation
    }

    /// `activationBackward`'s arguments, for its job.
    private struct ActivationBackwardArguments {
        var gradient: UnsafeMutablePointer<Float>, biasGradient: UnsafeMutablePointer<Float>, outputs: UnsafePointer<Float>
        var rows: Int, columns: Int, activation: Activation
    }

    /// `lossForwardBackward`'s arguments, for its job.
    private struct LossArguments {
        var gradient: UnsafeMutablePointer<Float>?, predictions: UnsafeMutablePointer<Int32>?
        var outputs: UnsafePointer<Float>, labels: UnsafePointer<Int32>
        var rows: Int, columns: Int, loss: Loss, gradientScale: Float
    }

    /// Per-part loss sums (one slot per part, at most 8 parts), added in part order.
    private let lossParts = UnsafeMutablePointer<(Float, Float)>.allocate(capacity: 8)
    private let maxLossParts = 8

    deinit {
        lossParts.deallocate()
        transposedWeights.deallocate()
    }

    /// The output layer's weights transposed (`outputLayerLoss` with its backward): grown on its first call, which a warm-up
    /// step makes, so that later steps allocate nothing.
    private var transposedWeights = UnsafeMutableBufferPointer<Float>.allocate(capacity: 0)

    private var pending = Pending()
    /// The bf16 products' packed operands and the product in progress, split in `bf16Parts` (`CPUBackend+BF16.swift`).
    let bf16Buffers = BF16Buffers()
    var bf16Product = GEMMArguments(transposeA: false, transposeB: false, m: 0, n: 0, k: 0, alpha: 0, a: UnsafePointer(bitPattern: 64)!, lda: 0, b: UnsafePointer(bitPattern: 64)!, ldb: 0, beta: 0, c: UnsafeMutablePointer(bitPattern: 64)!, ldc: 0)
    var bf16Parts = 1
    var bf16Sparse = false
    private var gemmJob: (Int) -> Void = { _ in }
    var bf16PackJob: (Int) -> Void = { _ in }, bf16RowsJob: (Int) -> Void = { _ in }
    private var gatherJob: (Int) -> Void = { _ in }
    private var listJob: (Int) -> Void = { _ in }
    /// The forward's tiles' nonzero steps, listed once when the threads split its columns (each would otherwise
    /// list every tile: with 16 threads at batch 128, that cost more than the steps it skipped).
    private let sparseLists = SparseTileLists()
    private var biasJob: (Int) -> Void = { _ in }
    private var backwardJob: (Int) -> Void = { _ in }
    private var lossJob: (Int) -> Void = { _ in }
    private var optimizerJob: (Int) -> Void = { _ in }
    private var outputLayerJob: (Int) -> Void = { _ in }

    private func bindJobs() {
        bf16PackJob = { [unowned(unsafe) self] t in self.bf16Pack(t) }
        bf16RowsJob = { [unowned(unsafe) self] t in self.bf16Rows(t) }
        gemmJob = { [unowned(unsafe) self] t in
            let p = self.pending
            let units = (p.gemmExtent + p.gemmTile - 1) / p.gemmTile
            let lo = min(p.gemmExtent, units * t / p.parts * p.gemmTile), hi = min(p.gemmExtent, units * (t + 1) / p.parts * p.gemmTile)
            if lo < hi {
                let part = p.gemmByColumns ? p.gemm.columns(lo..<hi) : p.gemm.rows(lo..<hi)
                if p.sparseGEMM {
                    self.kernels.sparseGEMM(part, self.workspaces[t], p.sharesLists ? self.sparseLists : nil)
                } else {
                    self.kernels.gemm(part, self.workspaces[t])
                }
            }
        }
        listJob = { [unowned(unsafe) self] t in
            let p = self.pending
            let tiles = (p.gemm.m + sparseTileRows - 1) / sparseTileRows
            self.kernels.listSparseTiles(p.gemm, tiles * t / p.parts..<tiles * (t + 1) / p.parts, self.sparseLists, self.workspaces[t])
        }
        gatherJob = { [unowned(unsafe) self] t in
            let p = self.pending, g = p.gather!, rows = g.indices.count
            self.kernels.gather(g.inputs.host, g.labels.host, UnsafeRawPointer(g.values.host), g.valueType, UnsafePointer(g.sourceLabels.host),
                                g.indices.baseAddress!, rows * t / p.parts..<rows * (t + 1) / p.parts, g.features, g.normalization)
        }
        biasJob = { [unowned(unsafe) self] t in
            let p = self.pending, a = p.biasActivation!
            self.kernels.biasActivation(a.values, a.bias, a.rows * t / p.parts..<a.rows * (t + 1) / p.parts, a.columns, a.activation)
        }
        backwardJob = { [unowned(unsafe) self] t in
            let p = self.pending, a = p.activationBackward!
            let w = self.kernels.vectorWidth
            let units = (a.columns + w - 1) / w
            let lo = min(a.columns, units * t / p.parts * w), hi = min(a.columns, units * (t + 1) / p.parts * w)
            self.kernels.activationBackward(a.gradient, a.biasGradient, a.outputs, a.rows, a.columns, lo..<hi, a.activation)
        }
        lossJob = { [unowned(unsafe) self] t in
            let p = self.pending, a = p.loss!
            self.lossParts[t] = lossRows(
                gradient: a.gradient, predictions: a.predictions, outputs: a.outputs, labels: a.labels,
                rows: a.rows * t / p.parts..<a.rows * (t + 1) / p.parts, columns: a.columns, loss: a.loss,
                gradientScale: a.gradientScale)
        }
        outputLayerJob = { [unowned(unsafe) self] t in
            let p = self.pending
            self.lossParts[t] = self.kernels.outputLayer(p.outputLayer!, p.outputRows * t / p.parts..<p.outputRows * (t + 1) / p.parts)
        }
        optimizerJob = { [unowned(unsafe) self] t in
            let p = self.pending, u = p.update!
            let w = self.kernels.vectorWidth
            let units = (u.count + w - 1) / w
            let lo = min(u.count, units * t / p.parts * w), hi = min(u.count, units * (t + 1) / p.parts * w)
            self.kernels.optimizer(u.parameters.host, UnsafePointer(u.gradients.host), u.state.host, u.stateStride, lo..<hi, u.step)
        }
    }

    /// Runs `body` with subnormals flushed to zero on the calling thread, then restores its mode.
    @inline(__always)
    func flushingSubnormals(_ body: () -> Void) {
        let mode = mlp_enter_flush_to_zero()
        body()
        mlp_restore_floating_point_mode(mode)
    }

    /// How many parts to split `work` elements into: one per thread, but none smaller than `grain`.
    @inline(__always)
    func parts(_ work: Int, grain: Int) -> Int { max(1, min(pool.threadCount, work / grain)) }

    // MARK: Batches

    public func gatherBatch(_ gather: BatchGather) {
        let batch = gather.indices.count, features = gather.features, inputs = gather.inputs
        guard batch > 0 else { return }
        pending.parts = parts(batch * features, grain: 16_384)
        pending.gather = gather
        pool.run(tasks: pending.parts, gatherJob)
        pending.gather = nil  // its indices are the caller's
        // Pixels of 0 stay 0 only without a shift; a few tiles of rows tell whether the batch is sparse enough to pay.
        sparseInputs = nil
        if skipsInputZeros && gather.normalization.shift == 0
            && sparseTileShare(inputs.host, rows: batch, rowLength: features, samples: 3) <= Self.sparseShareMaximum {
            sparseInputs = inputs.host
        }
    }

    /// The largest share of the depth (`sparseTileShare`) at which the first layer's products skip zeros: the sparse
    /// tiles run about as fast per step as the dense ones, a little slower in the weight gradient, and the bar leaves
    /// room for that (MNIST's batches sit well below it: Benchmarks/RESULTS.md).
    public static let sparseShareMaximum = 0.7

    /// Whether products whose A is the last batch gathered skip its zeros (`skipsInputZeros`, no shift in its
    /// normalization, and a share of the depth to step through of at most `sparseShareMaximum`).
    public var skipsZerosOfLastBatch: Bool { sparseInputs != nil }

    /// The last batch gathered, where sparse enough for `sparseGEMM`: a product whose A starts there takes it. (Its
    /// results do not depend on this guess: the sparse product lists the nonzeros it finds in A each time.)
    private var sparseInputs: UnsafeMutablePointer<Float>?

    // MARK: Layers

    public func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: DevicePointer<Float>, lda: Int, b: DevicePointer<Float>, ldb: Int,
        beta: Float, c: DevicePointer<Float>, ldc: Int
    ) {
        if let blas, gemmProvider == .blas {
            flushingSubnormals {
                blas.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a.host, lda: lda,
                          b: b.host, ldb: ldb, beta: beta, c: c.host, ldc: ldc)
            }
            return
        }
        let g = GEMMArguments(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: UnsafePointer(a.host), lda: lda, b: UnsafePointer(b.host), ldb: ldb, beta: beta, c: c.host, ldc: ldc)
        // The first layer's products (forward and weight gradient) read the batch's inputs as A.
        let sparse = a.host == sparseInputs && !transposeB && n > kernels.vectorWidth
        // bf16: every product of enough rows, those that read a sparse batch skipping its zeros too.
        if precision == .bf16 && m >= Self.bf16MinimumRows { return bf16GEMM(g, sparse: sparse) }
        // Split C between threads along the dimension whose split copies less: along n, every thread packs all of
        // A (m·k); along m, all of B (k·n). Boundaries fall on whole register tiles.
        let threads = parts(2 * m * n * k, grain: 2_000_000)
        // A product of at most one vector of columns takes the kernels' narrow path, which must see every column:
        // it is split by rows only.
        let byColumns = m * k <= k * n && n > kernels.vectorWidth
        let tile = byColumns ? 2 * kernels.vectorWidth : sparse ? sparseTileRows : 48
        let extent = byColumns ? n : m
        let count = min(threads, max(1, extent / tile))
        if count <= 1 {
            flushingSubnormals { sparse ? kernels.sparseGEMM(g, workspaces[0], nil) : kernels.gemm(g, workspaces[0]) }
            return
        }
        pending.gemm = g
        pending.sparseGEMM = sparse
        pending.sharesLists = sparse && byColumns && !transposeA
        if pending.sharesLists {
            // First every tile's steps, split between the threads by tiles; then the columns.
            let tiles = (m + sparseTileRows - 1) / sparseTileRows
            sparseLists.reserve(tiles: tiles, depth: k)
            pending.parts = min(count, tiles)
            flushingSubnormals { pool.run(tasks: pending.parts, listJob) }
        }
        pending.gemmByColumns = byColumns
        pending.gemmTile = tile
        pending.gemmExtent = extent
        pending.parts = count
        flushingSubnormals { pool.run(tasks: count, gemmJob) }
    }

    public func biasActivationForward(
        values: DevicePointer<Float>, bias: DevicePointer<Float>, rows: Int, columns: Int, activation: Activation
    ) {
        pending.parts = parts(rows * columns, grain: 32_768)
        pending.biasActivation = BiasActivationArguments(values: values.host, bias: UnsafePointer(bias.host), rows: rows, columns: columns, activation: activation)
        flushingSubnormals { pool.run(tasks: pending.parts, biasJob) }
    }

    public func activationBackward(
        gradient: DevicePointer<Float>, biasGradient: DevicePointer<Float>, outputs: DevicePointer<Float>,
        rows: Int, columns: Int, activation: Activation
    ) {
        // Split by columns: each bias-gradient sum stays with one thread, in row order.
        pending.parts = min(parts(rows * columns, grain: 32_768), max(1, columns / kernels.vectorWidth))
        pending.activationBackward = ActivationBackwardArguments(
            gradient: gradient.host, biasGradient: biasGradient.host, outputs: UnsafePointer(outputs.host), rows: rows, columns: columns,
            activation: activation)
        flushingSubnormals { pool.run(tasks: pending.parts, backwardJob) }
    }

    public func lossForwardBackward(
        gradient: DevicePointer<Float>?, metrics: DevicePointer<Float>, predictions: DevicePointer<Int32>?,
        outputs: DevicePointer<Float>, labels: DevicePointer<Int32>, rows: Int, columns: Int,
        loss: Loss, gradientScale: Float
    ) {
        // Each part's sums land in their own slot and are added in part order, whatever the timing.
        pending.parts = min(parts(rows * columns, grain: 2_048), maxLossParts)
        pending.loss = LossArguments(
            gradient: gradient?.host, predictions: predictions?.host, outputs: UnsafePointer(outputs.host),
            labels: UnsafePointer(labels.host), rows: rows, columns: columns, loss: loss, gradientScale: gradientScale)
        flushingSubnormals { pool.run(tasks: pending.parts, lossJob) }
        for t in 0..<pending.parts {
            metrics.host[0] += lossParts[t].0
            metrics.host[1] += lossParts[t].1
        }
    }

    // MARK: The output layer

    /// The output layer's kernel takes layers of at most this many outputs (a classifier's ten); wider ones are
    /// products the GEMM runs well.
    public static let fusedOutputMaximum = 16

    public var fusedOperations: FusedOperations { .outputLayer }

    /// A narrow output layer in a training step, its loss and its backward as far as the previous layer's input
    /// gradient in one pass over the batch's rows (`outputLayerRows`), then the two bias gradients' column sums and
    /// the weight gradient's product as in the composition. Per row, the logits and the input gradient are sums in
    /// a fixed order, so results do not depend on the thread count. Without `backward` (evaluation, a network of
    /// one layer), and for wider layers: the composition.
    public func outputLayerLoss(
        outputs: DevicePointer<Float>, gradient: DevicePointer<Float>?, biasGradient: DevicePointer<Float>?,
        metrics: DevicePointer<Float>, predictions: DevicePointer<Int32>?, inputs: DevicePointer<Float>,
        weights: DevicePointer<Float>, bias: DevicePointer<Float>, labels: DevicePointer<Int32>,
        rows: Int, inputSize: Int, outputSize: Int, loss: Loss, gradientScale: Float, backward: LayerBackward?
    ) {
        guard let backward, let gradient, let biasGradient, predictions == nil,
              outputSize <= Self.fusedOutputMaximum, rows > 0, inputSize > 0, outputSize > 0 else {
            return composedOutputLayerLoss(
                outputs: outputs, gradient: gradient, biasGradient: biasGradient, metrics: metrics, predictions: predictions,
                inputs: inputs, weights: weights, bias: bias, labels: labels, rows: rows, inputSize: inputSize,
                outputSize: outputSize, loss: loss, gradientScale: gradientScale, backward: backward)
        }
        let inputGradient = backward.inputGradient
        if transposedWeights.count < inputSize * outputSize {
            transposedWeights.deallocate()
            transposedWeights = .allocate(capacity: inputSize * outputSize)
        }
        let wt = transposedWeights.baseAddress!, w = weights.host
        for k in 0..<inputSize { for c in 0..<outputSize { wt[c * inputSize + k] = w[k * outputSize + c] } }
        pending.parts = min(parts(rows * inputSize * outputSize, grain: 131_072), maxLossParts)
        pending.outputRows = rows
        pending.outputLayer = OutputLayerArguments(
            outputs: outputs.host, gradient: gradient.host, inputGradient: inputGradient.host, inputs: UnsafePointer(inputs.host),
            transposedWeights: UnsafePointer(wt), bias: UnsafePointer(bias.host), labels: UnsafePointer(labels.host),
            inputSize: inputSize, outputSize: outputSize, loss: loss, gradientScale: gradientScale, inputActivation: backward.inputActivation)
        flushingSubnormals { pool.run(tasks: pending.parts, outputLayerJob) }
        for t in 0..<pending.parts {
            metrics.host[0] += lossParts[t].0
            metrics.host[1] += lossParts[t].1
        }
        // The identity's derivative is 1: these passes only sum the columns (in row order).
        activationBackward(gradient: gradient, biasGradient: biasGradient, outputs: outputs, rows: rows, columns: outputSize, activation: .identity)
        activationBackward(gradient: inputGradient, biasGradient: backward.inputBiasGradient, outputs: inputs, rows: rows, columns: inputSize, activation: .identity)
        gemm(transposeA: true, transposeB: false, m: inputSize, n: outputSize, k: rows, alpha: 1, a: inputs, lda: inputSize,
             b: gradient, ldb: outputSize, beta: 0, c: backward.weightGradient, ldc: outputSize)
    }

    // MARK: Optimizer

    public func optimizerUpdate(_ update: ParameterUpdate) {
        precondition(update.stateStride >= update.count, "state slots \(update.stateStride) apart for \(update.count) parameters")
        pending.parts = parts(update.count, grain: 65_536)
        pending.update = update
        flushingSubnormals { pool.run(tasks: pending.parts, optimizerJob) }
        pending.update = nil
        update.gatherAfterwards(on: self)
    }
}
