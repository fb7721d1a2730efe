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
/// (measured: an epoch of the default run slowed from 1.0 s to 1.4 s over 10 epochs without it). Values below
/// 1.2e-38 therefore become 0 here where the naive backend keeps them. The caller's own mode is restored after
/// each operation.
///
/// The first layer's two products, whose A is the gathered batch, skip the batch's zeros where it has many (81% of
/// MNIST's pixels are 0): `sparseGEMM` steps, for each tile of 6 rows of the result, only through the pixels where
/// one of them is nonzero, about 44% of them for MNIST, and the products take 42–48% of the dense ones' time. A zero
/// term adds exactly nothing, so only the order of the sums changes.
///
/// Results do not depend on the thread count: products are split between threads by rows or columns of C
/// (never along k), column sums by columns, the fused output layer by rows (each row's sums in a fixed order), and
/// the optimizer by elements, so every number is computed in the same order whatever the split. (Only the loss
/// *metric* is summed in per-thread parts.)
public final class CPUBackend: HostMemoryBackend {
    /// How matrix products are computed.
    public enum GEMMProvider: String, CaseIterable, Sendable {
        /// This package's packed SIMD GEMM (deterministic across thread counts).
        case own
        /// The BLAS found at run time (`BLASLibrary`), with its own threads.
        case blas
    }

    public let name = "cpu"
    public let kernels: KernelSet
    public let gemmProvider: GEMMProvider
    public let blas: BLASLibrary?
    public let pool: ThreadPool
    private let workspaces: [GEMMWorkspace]

    /// Whether products with the batch's inputs as A skip the zeros of sparse batches (`SparseGEMM.swift`).
    public let skipsInputZeros: Bool

    /// What `deviceDescription` says when the backend skips the inputs' zeros (reports look for it).
    public static let skipsZerosDescription = "first-layer products skip the inputs' zeros"

    public var deviceDescription: String {
        let gemm = gemmProvider == .blas ? "BLAS \(blas!.name)\(blas!.configuration.map { " (\($0))" } ?? "")" : "own \(kernels.name) GEMM"
        let zeros = skipsInputZeros ? ", \(Self.skipsZerosDescription)" : ""
        return "\(pool.threadCount) threads, \(gemm), \(kernels.name) kernels\(zeros)"
    }

    /// - Parameters:
    ///   - threads: threads in all (default: the active processor count).
    ///   - gemm: `.own` (default) or `.blas`.
    ///   - kernels: a kernel set (default: the widest the CPU supports).
    ///   - skipInputZeros: whether the first layer's products skip the zeros of a sparse batch (own GEMM only).
    ///     Default: yes, unless the environment sets `MLP_CPU_SKIP_ZEROS=0`.
    /// - Throws: `CPUBackendError.blasNotFound` when `.blas` is asked for and none loads.
    public init(threads: Int? = nil, gemm: GEMMProvider = .own, kernels: KernelSet? = nil, skipInputZeros: Bool? = nil) throws {
        let threadCount = max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount)
        self.kernels = kernels ?? CPUFeatures.bestKernels
        self.gemmProvider = gemm
        skipsInputZeros = gemm == .own && (skipInputZeros ?? (ProcessInfo.processInfo.environment["MLP_CPU_SKIP_ZEROS"] != "0"))
        if gemm == .blas {
            let library = try BLASLibrary.load()
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
        var gemm = GEMMArguments(transposeA: false, transposeB: false, m: 0, n: 0, k: 0, alpha: 0, a: UnsafePointer(bitPattern: 64)!, lda: 0, b: UnsafePointer(bitPattern: 64)!, ldb: 0, beta: 0, c: UnsafeMutablePointer(bitPattern: 64)!, ldc: 0)
        var gemmByColumns = false
        var sparseGEMM = false
        var sharesLists = false
        var gemmTile = 0, gemmExtent = 0
        var parts = 1
        var rows = 0, columns = 0, count = 0, features = 0
        /// The optimizer state's slot stride.
        var stride = 0
        var activation = Activation.relu
        var loss = Loss.softmaxCrossEntropy
        var gradientScale: Float = 1
        var normalization = Normalization.unit
        var step = OptimizerStep(kind: .sgd, learningRate: 0, momentum: 0, nesterov: false, weightDecay: 0, beta1: 0, beta2: 0, epsilon: 0, step: 1)
        var f0: UnsafeMutablePointer<Float>?, f1: UnsafeMutablePointer<Float>?, f2: UnsafeMutablePointer<Float>?
        var i0: UnsafeMutablePointer<Int32>?, i1: UnsafeMutablePointer<Int32>?, i2: UnsafeMutablePointer<Int32>?
        var b0: UnsafeMutablePointer<UInt8>?, b1: UnsafeMutablePointer<UInt8>?
        var outputLayer: OutputLayerArguments?
    }

    /// Per-part loss sums (one slot per part, at most 8 parts), added in part order.
    private let lossParts = UnsafeMutablePointer<(Float, Float)>.allocate(capacity: 8)
    private let maxLossParts = 8

    deinit {
        lossParts.deallocate()
        transposedWeights.deallocate()
    }

    /// The output layer's weights transposed (`outputLayerLossBackward`): grown on its first call, which a warm-up
    /// step makes, so that later steps allocate nothing.
    private var transposedWeights = UnsafeMutableBufferPointer<Float>.allocate(capacity: 0)

    private var pending = Pending()
    private var gemmJob: (Int) -> Void = { _ in }
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
            let p = self.pending
            self.kernels.gather(p.f0!, p.i0!, UnsafePointer(p.b0!), UnsafePointer(p.b1!), UnsafePointer(p.i1!),
                                p.rows * t / p.parts..<p.rows * (t + 1) / p.parts, p.features, p.normalization)
        }
        biasJob = { [unowned(unsafe) self] t in
            let p = self.pending
            self.kernels.biasActivation(p.f0!, UnsafePointer(p.f1!), p.rows * t / p.parts..<p.rows * (t + 1) / p.parts, p.columns, p.activation)
        }
        backwardJob = { [unowned(unsafe) self] t in
            let p = self.pending
            let w = self.kernels.vectorWidth
            let units = (p.columns + w - 1) / w
            let lo = min(p.columns, units * t / p.parts * w), hi = min(p.columns, units * (t + 1) / p.parts * w)
            self.kernels.activationBackward(p.f0!, p.f1!, UnsafePointer(p.f2!), p.rows, p.columns, lo..<hi, p.activation)
        }
        lossJob = { [unowned(unsafe) self] t in
            let p = self.pending
            let part = lossRows(
                gradient: p.f0, predictions: p.i0, outputs: UnsafePointer(p.f1!), labels: UnsafePointer(p.i1!),
                rows: p.rows * t / p.parts..<p.rows * (t + 1) / p.parts, columns: p.columns, loss: p.loss,
                gradientScale: p.gradientScale)
            self.lossParts[t] = part
        }
        outputLayerJob = { [unowned(unsafe) self] t in
            let p = self.pending
            self.lossParts[t] = self.kernels.outputLayer(p.outputLayer!, p.rows * t / p.parts..<p.rows * (t + 1) / p.parts)
        }
        optimizerJob = { [unowned(unsafe) self] t in
            let p = self.pending
            let w = self.kernels.vectorWidth
            let units = (p.count + w - 1) / w
            let lo = min(p.count, units * t / p.parts * w), hi = min(p.count, units * (t + 1) / p.parts * w)
            self.kernels.optimizer(p.f0!, UnsafePointer(p.f1!), p.f2!, p.stride, lo..<hi, p.step)
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

    public func gatherBatch(
        inputs: DevicePointer<Float>, labels: DevicePointer<Int32>,
        pixels: DevicePointer<UInt8>, sourceLabels: DevicePointer<UInt8>, indices: UnsafeBufferPointer<Int32>,
        features: Int, normalization: Normalization
    ) {
        guard let indexBase = indices.baseAddress, !indices.isEmpty else { return }
        let batch = indices.count
        pending.parts = parts(batch * features, grain: 16_384)
        pending.f0 = inputs.host; pending.i0 = labels.host; pending.b0 = pixels.host; pending.b1 = sourceLabels.host
        pending.i1 = UnsafeMutablePointer(mutating: indexBase); pending.rows = batch; pending.features = features; pending.normalization = normalization
        pool.run(tasks: pending.parts, gatherJob)
        // Pixels of 0 stay 0 only without a shift; a few tiles of rows tell whether the batch is sparse enough to pay.
        sparseInputs = nil
        if skipsInputZeros && normalization.shift == 0
            && sparseTileShare(inputs.host, rows: batch, rowLength: features, samples: 3) <= Self.sparseShareMaximum {
            sparseInputs = inputs.host
        }
    }

    /// The largest share of the depth (`sparseTileShare`) at which the first layer's products skip zeros. MNIST's
    /// batches step through 44% of it, and their products then take 42–48% of the dense ones' time (`mlp bench
    /// --ops`, 2026-12-01): the sparse tiles run about as fast per step as the dense ones, a little slower in the
    /// weight gradient. The bar leaves room for that.
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
        pending.f0 = values.host; pending.f1 = bias.host
        pending.rows = rows; pending.columns = columns; pending.activation = activation
        flushingSubnormals { pool.run(tasks: pending.parts, biasJob) }
    }

    public func activationBackward(
        gradient: DevicePointer<Float>, biasGradient: DevicePointer<Float>, outputs: DevicePointer<Float>,
        rows: Int, columns: Int, activation: Activation
    ) {
        // Split by columns: each bias-gradient sum stays with one thread, in row order.
        pending.parts = min(parts(rows * columns, grain: 32_768), max(1, columns / kernels.vectorWidth))
        pending.f0 = gradient.host; pending.f1 = biasGradient.host; pending.f2 = outputs.host
        pending.rows = rows; pending.columns = columns; pending.activation = activation
        flushingSubnormals { pool.run(tasks: pending.parts, backwardJob) }
    }

    public func lossForwardBackward(
        gradient: DevicePointer<Float>?, metrics: DevicePointer<Float>, predictions: DevicePointer<Int32>?,
        outputs: DevicePointer<Float>, labels: DevicePointer<Int32>, rows: Int, columns: Int,
        loss: Loss, gradientScale: Float
    ) {
        // Each part's sums land in their own slot and are added in part order, whatever the timing.
        pending.parts = min(parts(rows * columns, grain: 2_048), maxLossParts)
        pending.f0 = gradient?.host; pending.i0 = predictions?.host; pending.f1 = outputs.host; pending.i1 = labels.host
        pending.rows = rows; pending.columns = columns; pending.loss = loss; pending.gradientScale = gradientScale
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

    public var fusesOutputLayer: Bool { true }

    /// A narrow output layer, its loss and its backward as far as the previous layer's input gradient in one pass
    /// over the batch's rows (`outputLayerRows`), then the two bias gradients' column sums and the weight gradient's
    /// product as in the default composition. Per row, the logits and the input gradient are sums in a fixed order,
    /// so results do not depend on the thread count.
    public func outputLayerLossBackward(
        outputs: DevicePointer<Float>, gradient: DevicePointer<Float>, biasGradient: DevicePointer<Float>,
        metrics: DevicePointer<Float>, inputs: DevicePointer<Float>, weights: DevicePointer<Float>,
        bias: DevicePointer<Float>, labels: DevicePointer<Int32>, rows: Int, inputSize: Int, outputSize: Int,
        loss: Loss, gradientScale: Float, weightGradient: DevicePointer<Float>, inputGradient: DevicePointer<Float>,
        inputBiasGradient: DevicePointer<Float>, inputActivation: Activation
    ) {
        guard outputSize <= Self.fusedOutputMaximum, rows > 0, inputSize > 0, outputSize > 0 else {
            return unfusedOutputLayerLossBackward(
                outputs: outputs, gradient: gradient, biasGradient: biasGradient, metrics: metrics, inputs: inputs,
                weights: weights, bias: bias, labels: labels, rows: rows, inputSize: inputSize, outputSize: outputSize,
                loss: loss, gradientScale: gradientScale, weightGradient: weightGradient, inputGradient: inputGradient,
                inputBiasGradient: inputBiasGradient, inputActivation: inputActivation)
        }
        if transposedWeights.count < inputSize * outputSize {
            transposedWeights.deallocate()
            transposedWeights = .allocate(capacity: inputSize * outputSize)
        }
        let wt = transposedWeights.baseAddress!, w = weights.host
        for k in 0..<inputSize { for c in 0..<outputSize { wt[c * inputSize + k] = w[k * outputSize + c] } }
        pending.parts = min(parts(rows * inputSize * outputSize, grain: 131_072), maxLossParts)
        pending.rows = rows
        pending.outputLayer = OutputLayerArguments(
            outputs: outputs.host, gradient: gradient.host, inputGradient: inputGradient.host, inputs: UnsafePointer(inputs.host),
            transposedWeights: UnsafePointer(wt), bias: UnsafePointer(bias.host), labels: UnsafePointer(labels.host),
            inputSize: inputSize, outputSize: outputSize, loss: loss, gradientScale: gradientScale, inputActivation: inputActivation)
        flushingSubnormals { pool.run(tasks: pending.parts, outputLayerJob) }
        for t in 0..<pending.parts {
            metrics.host[0] += lossParts[t].0
            metrics.host[1] += lossParts[t].1
        }
        // The identity's derivative is 1: these passes only sum the columns (in row order).
        activationBackward(gradient: gradient, biasGradient: biasGradient, outputs: outputs, rows: rows, columns: outputSize, activation: .identity)
        activationBackward(gradient: inputGradient, biasGradient: inputBiasGradient, outputs: inputs, rows: rows, columns: inputSize, activation: .identity)
        gemm(transposeA: true, transposeB: false, m: inputSize, n: outputSize, k: rows, alpha: 1, a: inputs, lda: inputSize,
             b: gradient, ldb: outputSize, beta: 0, c: weightGradient, ldc: outputSize)
    }

    // MARK: Optimizer

    public func optimizerUpdate(
        parameters: DevicePointer<Float>, gradients: DevicePointer<Float>, state: DevicePointer<Float>,
        count: Int, stateStride: Int, step: OptimizerStep
    ) {
        precondition(stateStride >= count, "state slots \(stateStride) apart for \(count) parameters")
        pending.parts = parts(count, grain: 65_536)
        pending.f0 = parameters.host; pending.f1 = gradients.host; pending.f2 = state.host
        pending.count = count; pending.stride = stateStride; pending.step = step
        flushingSubnormals { pool.run(tasks: pending.parts, optimizerJob) }
    }
}
