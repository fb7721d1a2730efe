import CPUKernels
import Foundation
import MLPCore
import MNIST

/// The optimized CPU backend: packed, cache-blocked SIMD GEMM (AVX-512, AVX2 or baseline, chosen at run time)
/// or a BLAS found at run time, fused elementwise passes, all spread over a persistent thread pool.
///
/// Memory is the host's, 64-byte aligned. After the buffers of a `Network` are allocated, no operation
/// allocates: the packing buffers of every thread are made once, with the backend.
///
/// Results do not depend on the thread count: products are split between threads by rows or columns of C
/// (never along k), column sums by columns, and the optimizer by elements, so every number is computed in the
/// same order whatever the split. (Only the loss *metric* is summed in per-thread parts.)
public final class CPUBackend: Backend {
    /// How matrix products are computed.
    public enum GEMMProvider: String, CaseIterable, Sendable {
        /// This package's packed SIMD GEMM (deterministic across thread counts).
        case own
        /// The BLAS found at run time (`BLASLibrary`), with its own threads.
        case blas
    }

    public let name = "cpu"
    public let isHostMemory = true
    public let kernels: KernelSet
    public let gemmProvider: GEMMProvider
    public let blas: BLASLibrary?
    public let pool: ThreadPool
    private let workspaces: [GEMMWorkspace]

    public var deviceDescription: String {
        let gemm = gemmProvider == .blas ? "BLAS \(blas!.name)\(blas!.configuration.map { " (\($0))" } ?? "")" : "own \(kernels.name) GEMM"
        return "\(pool.threadCount) threads, \(gemm), \(kernels.name) kernels"
    }

    /// - Parameters:
    ///   - threads: threads in all (default: the active processor count).
    ///   - gemm: `.own` (default) or `.blas`.
    ///   - kernels: a kernel set (default: the widest the CPU supports).
    /// - Throws: `CPUBackendError.blasNotFound` when `.blas` is asked for and none loads.
    public init(threads: Int? = nil, gemm: GEMMProvider = .own, kernels: KernelSet? = nil) throws {
        let threadCount = max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount)
        self.kernels = kernels ?? CPUFeatures.bestKernels
        self.gemmProvider = gemm
        if gemm == .blas {
            let library = try BLASLibrary.load()
            library.setThreadCount(threadCount)
            blas = library
            // The BLAS runs its own threads; ours would compete with them for the same cores in the elementwise
            // passes, so those run on the calling thread.
            pool = ThreadPool(threadCount: 1)
        } else {
            blas = nil
            pool = ThreadPool(threadCount: threadCount)
        }
        workspaces = (0..<pool.threadCount).map { _ in GEMMWorkspace() }
    }

    // MARK: Memory

    public func allocate<T>(_ type: T.Type, count: Int) throws -> DevicePointer<T> {
        let bytes = max(count, 1) * MemoryLayout<T>.stride
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else { throw CPUBackendError.outOfMemory(bytes: bytes) }
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        return DevicePointer(address: UInt(bitPattern: raw))
    }

    public func free<T>(_ pointer: DevicePointer<T>) {
        Foundation.free(UnsafeMutableRawPointer(bitPattern: pointer.address))
    }

    public func upload<T>(_ source: UnsafeBufferPointer<T>, to destination: DevicePointer<T>) {
        guard let base = source.baseAddress, !source.isEmpty else { return }
        UnsafeMutableRawPointer(destination.host).copyMemory(from: base, byteCount: source.count * MemoryLayout<T>.stride)
    }

    public func download<T>(_ source: DevicePointer<T>, count: Int, into destination: UnsafeMutableBufferPointer<T>) {
        precondition(destination.count >= count)
        guard count > 0 else { return }
        UnsafeMutableRawPointer(destination.baseAddress!).copyMemory(from: source.host, byteCount: count * MemoryLayout<T>.stride)
    }

    public func synchronize() throws {}

    /// How many parts to split `work` elements into: one per thread, but none smaller than `grain`.
    @inline(__always)
    func parts(_ work: Int, grain: Int) -> Int { max(1, min(pool.threadCount, work / grain)) }

    // MARK: Batches

    public func gatherBatch(
        inputs: DevicePointer<Float>, labels: DevicePointer<Int32>,
        pixels: DevicePointer<UInt8>, sourceLabels: DevicePointer<UInt8>, indices: DevicePointer<Int32>,
        batch: Int, features: Int, normalization: Normalization
    ) {
        let n = parts(batch * features, grain: 16_384)
        pool.run(tasks: n) { t in
            kernels.gather(inputs.host, labels.host, UnsafePointer(pixels.host), UnsafePointer(sourceLabels.host),
                           UnsafePointer(indices.host), batch * t / n..<batch * (t + 1) / n, features, normalization)
        }
    }

    // MARK: Layers

    public func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: DevicePointer<Float>, lda: Int, b: DevicePointer<Float>, ldb: Int,
        beta: Float, c: DevicePointer<Float>, ldc: Int
    ) {
        if let blas, gemmProvider == .blas {
            blas.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a.host, lda: lda,
                      b: b.host, ldb: ldb, beta: beta, c: c.host, ldc: ldc)
            return
        }
        let g = GEMMArguments(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: UnsafePointer(a.host), lda: lda, b: UnsafePointer(b.host), ldb: ldb, beta: beta, c: c.host, ldc: ldc)
        // Split C between threads along the dimension whose split copies less: along n, every thread packs all of
        // A (m·k); along m, all of B (k·n). Boundaries fall on whole register tiles.
        let threads = parts(2 * m * n * k, grain: 2_000_000)
        let byColumns = m * k <= k * n
        let tile = byColumns ? 2 * kernels.vectorWidth : 48
        let extent = byColumns ? n : m
        let count = min(threads, max(1, extent / tile))
        if count <= 1 {
            kernels.gemm(g, workspaces[0])
            return
        }
        let units = (extent + tile - 1) / tile
        pool.run(tasks: count) { t in
            let lo = min(extent, units * t / count * tile), hi = min(extent, units * (t + 1) / count * tile)
            if lo < hi { kernels.gemm(byColumns ? g.columns(lo..<hi) : g.rows(lo..<hi), workspaces[t]) }
        }
    }

    public func biasActivationForward(
        values: DevicePointer<Float>, bias: DevicePointer<Float>, rows: Int, columns: Int, activation: Activation
    ) {
        let n = parts(rows * columns, grain: 32_768)
        pool.run(tasks: n) { t in
            kernels.biasActivation(values.host, UnsafePointer(bias.host), rows * t / n..<rows * (t + 1) / n, columns, activation)
        }
    }

    public func activationBackward(
        gradient: DevicePointer<Float>, biasGradient: DevicePointer<Float>, outputs: DevicePointer<Float>,
        rows: Int, columns: Int, activation: Activation
    ) {
        let w = kernels.vectorWidth
        let n = min(parts(rows * columns, grain: 32_768), max(1, columns / w))
        let units = (columns + w - 1) / w
        pool.run(tasks: n) { t in
            let lo = min(columns, units * t / n * w), hi = min(columns, units * (t + 1) / n * w)
            kernels.activationBackward(gradient.host, biasGradient.host, UnsafePointer(outputs.host), rows, columns, lo..<hi, activation)
        }
    }

    public func lossForwardBackward(
        gradient: DevicePointer<Float>?, metrics: DevicePointer<Float>, predictions: DevicePointer<Int32>?,
        outputs: DevicePointer<Float>, labels: DevicePointer<Int32>, rows: Int, columns: Int,
        loss: Loss, gradientScale: Float
    ) {
        // Each part's sums land in its own slot and are added in order, so the metric does not depend on timing.
        let n = min(parts(rows * columns, grain: 2_048), 8)
        withUnsafeTemporaryAllocation(of: (Float, Float).self, capacity: n) { partial in
            let slots = partial.baseAddress!
            pool.run(tasks: n) { t in
                slots[t] = lossRows(
                    gradient: gradient?.host, predictions: predictions?.host, outputs: UnsafePointer(outputs.host),
                    labels: UnsafePointer(labels.host), rows: rows * t / n..<rows * (t + 1) / n, columns: columns,
                    loss: loss, gradientScale: gradientScale)
            }
            for t in 0..<n {
                metrics.host[0] += slots[t].0
                metrics.host[1] += slots[t].1
            }
        }
    }

    // MARK: Optimizer

    public func optimizerUpdate(
        parameters: DevicePointer<Float>, gradients: DevicePointer<Float>, state: DevicePointer<Float>,
        count: Int, step: OptimizerStep
    ) {
        let n = parts(count, grain: 65_536)
        let w = kernels.vectorWidth
        let units = (count + w - 1) / w
        pool.run(tasks: n) { t in
            let lo = min(count, units * t / n * w), hi = min(count, units * (t + 1) / n * w)
            kernels.optimizer(parameters.host, UnsafePointer(gradients.host), state.host, count, lo..<hi, step)
        }
    }
}
