import CPUBackend
import CPUKernels
import Foundation
import MLPCore
import MNIST
import Testing
import TestSupport

/// The products that skip the zeros of a sparse batch (`sparseGEMM`): against the Double reference on awkward
/// shapes, for every kernel set and thread count; the same bits whatever the thread count; and when the backend takes
/// them.
@Suite struct SparseProductTests {
    /// (samples, features, batch, outputs): batches of 1 row, and of rows and features that are not multiples of the
    /// 6-row tile; outputs below, at and past whole tiles of 2 vectors (8, 16 or 32 columns) with leftovers.
    /// (300, 784, 127, 200): a forward the threads split by columns, sharing its tiles' lists.
    static let shapes = [(40, 17, 1, 9), (90, 130, 37, 33), (200, 784, 127, 70), (60, 45, 61, 100), (30, 7, 13, 64), (300, 784, 127, 200)]

    @Test(arguments: CPUOpTests.kernelNames, [1, 2, 3])
    func inputLayerProductsMatchTheReference(kernels: String, threads: Int) throws {
        let backend = try CPUOpTests.backend(kernels, threads: threads)
        var checks = BackendOpChecks(backend, seed: 11)
        for (samples, features, batch, outputs) in Self.shapes {
            let plain = try checks.inputLayerProducts(samples: samples, features: features, batch: batch, outputs: outputs)
            // (A batch of 1 row samples too few values to decide reliably: it may take the dense product.)
            if batch > 1 { #expect(backend.skipsZerosOfLastBatch, "\(kernels) \(features) features, batch \(batch): a sparse batch") }
            #expect(plain < 1e-5, "\(kernels) \(threads) threads \(features) features, batch \(batch), \(outputs) outputs")
            let scaled = try checks.inputLayerProducts(samples: samples, features: features, batch: batch, outputs: outputs, alpha: 0.7, beta: -1.3)
            #expect(scaled < 1e-5, "\(kernels) \(threads) threads, alpha and beta, \(features) features, batch \(batch)")
        }
    }

    /// The kernel alone, on matrices with whole zero tiles, zero rows and columns, negative zeros and one row, for
    /// both layouts of A, row strides past the rows, alpha and beta.
    @Test(arguments: CPUOpTests.kernelNames)
    func theKernelOnAwkwardMatrices(kernels: String) throws {
        let set = try #require(CPUFeatures.kernels(named: kernels))
        let workspace = GEMMWorkspace()
        var g = SeededGenerator(seed: 21)
        for (m, n, k) in [(1, 40, 9), (6, 32, 1), (7, 33, 50), (13, 17, 127), (127, 65, 3), (20, 100, 300)] {
            for transposeA in [false, true] {
                for (alpha, beta) in [(Float(1), Float(0)), (0.5, 1), (-2, 0.25)] {
                    let (aRows, aCols) = transposeA ? (k, m) : (m, k)
                    let lda = aCols + 2
                    var a = [Float](repeating: 0, count: aRows * lda)
                    for r in 0..<aRows {
                        for c in 0..<aCols where (r + c) % 5 != 0 && g.uniform(below: 10) < 2 && (r / 6) % 3 != 1 {
                            a[r * lda + c] = Float(g.gaussian())
                        }
                        if r % 4 == 1 { a[r * lda] = -0.0 }
                    }
                    let b = randomFloats(k * (n + 1), using: &g), c0 = randomFloats(m * (n + 3), using: &g)
                    var c = c0
                    a.withUnsafeBufferPointer { pa in
                        b.withUnsafeBufferPointer { pb in
                            c.withUnsafeMutableBufferPointer { pc in
                                set.sparseGEMM(GEMMArguments(transposeA: transposeA, transposeB: false, m: m, n: n, k: k, alpha: alpha,
                                                             a: pa.baseAddress!, lda: lda, b: pb.baseAddress!, ldb: n + 1, beta: beta,
                                                             c: pc.baseAddress!, ldc: n + 3), workspace, nil)
                            }
                        }
                    }
                    var out = [Double](), ref = [Double]()
                    for i in 0..<m {
                        for j in 0..<n {
                            var sum = 0.0
                            for p in 0..<k { sum += Double(transposeA ? a[p * lda + i] : a[i * lda + p]) * Double(b[p * (n + 1) + j]) }
                            ref.append(Double(alpha) * sum + Double(beta) * Double(c0[i * (n + 3) + j]))
                            out.append(Double(c[i * (n + 3) + j]))
                        }
                        for j in n..<n + 3 { #expect(c[i * (n + 3) + j] == c0[i * (n + 3) + j], "padding of row \(i) written") }
                    }
                    #expect(relativeError(out, ref) < 1e-5, "\(kernels) \(m)×\(n)×\(k) tA=\(transposeA) alpha \(alpha) beta \(beta)")
                }
            }
        }
    }

    /// Each element is its row's nonzero terms in one chain whatever the split, so two and three threads give the
    /// one-thread bits (the forward, 101 rows by 150 columns, split by columns with the tiles' lists shared); the
    /// skipped steps change nothing either (a dense product of the same batch agrees closely).
    @Test func sameBitsForEveryThreadCount() throws {
        let images = Self.sparseImages(count: 300, features: 784, seed: 3)
        var results = [[Float]]()
        for threads in [1, 2, 3] {
            results.append(try Self.products(images, backend: CPUBackend(threads: threads), batch: 101, outputs: 150))
        }
        #expect(results[0] == results[1] && results[1] == results[2])
        let dense = try Self.products(images, backend: CPUBackend(threads: 2, skipInputZeros: false), batch: 101, outputs: 150)
        #expect(relativeError(dense.map(Double.init), results[0].map(Double.init)) < 1e-6)
    }

    /// Sparse images skip zeros; a shift in the normalization (no zeros left), dense images, images whose nonzero
    /// pixels are scattered (a quarter of them, at random: tiles of 6 would step through 82% of the pixels) and the
    /// switch do not.
    @Test func theBackendSkipsZerosOnlyWhereThereAreMany() throws {
        let sparse = Self.sparseImages(count: 50, features: 100, seed: 1)
        let dense = syntheticImages(count: 50, rows: 10, columns: 10)
        var g = SeededGenerator(seed: 2)
        let scattered = try LabeledImages(pixels: (0..<5000).map { _ in g.uniform(below: 4) == 0 ? 200 : 0 },
                                          labels: [UInt8](repeating: 1, count: 50), rows: 10, columns: 10)
        #expect(try !Self.gathersSparse(scattered, backend: CPUBackend(threads: 2), normalization: .unit))
        #expect(try Self.gathersSparse(sparse, backend: CPUBackend(threads: 2), normalization: .unit))
        #expect(try !Self.gathersSparse(sparse, backend: CPUBackend(threads: 2), normalization: .standardized(mean: 0.1, standardDeviation: 0.3)))
        #expect(try !Self.gathersSparse(dense, backend: CPUBackend(threads: 2), normalization: .unit))
        #expect(try !Self.gathersSparse(sparse, backend: CPUBackend(threads: 2, skipInputZeros: false), normalization: .unit))
    }

    /// Images with about 15% of their pixels nonzero, in a centred square (as MNIST's digits are).
    static func sparseImages(count: Int, features: Int, seed: UInt64) -> LabeledImages {
        var g = SeededGenerator(seed: seed)
        let side = Int(Double(features).squareRoot())
        var pixels = [UInt8](repeating: 0, count: count * features)
        for s in 0..<count {
            for f in 0..<features {
                let (y, x) = (f / max(side, 1), f % max(side, 1))
                let central = abs(y - side / 2) < side / 3 && abs(x - side / 2) < side / 3
                if central && g.uniform(below: 100) < 35 { pixels[s * features + f] = UInt8(1 + g.uniform(below: 255)) }
            }
        }
        let labels = (0..<count).map { _ in UInt8(g.uniform(below: 10)) }
        return try! LabeledImages(pixels: pixels, labels: labels, rows: 1, columns: features, classCount: 10)
    }

    static func gathersSparse(_ images: LabeledImages, backend: CPUBackend, normalization: Normalization) throws -> Bool {
        let data = try ResidentDataset(images, on: backend)
        let inputs = try backend.allocate(Float.self, count: 20 * images.featureCount)
        let labels = try backend.allocate(Int32.self, count: 20)
        defer { backend.free(inputs); backend.free(labels) }
        let indices = (0..<20).map { Int32($0 * 2) }
        indices.withUnsafeBufferPointer {
            backend.gatherBatch(BatchGather(inputs: inputs, labels: labels, from: data, indices: $0, normalization: normalization))
        }
        return backend.skipsZerosOfLastBatch
    }

    /// The forward and weight-gradient products of one gathered batch, concatenated.
    static func products(_ images: LabeledImages, backend: CPUBackend, batch: Int, outputs: Int) throws -> [Float] {
        let features = images.featureCount
        let data = try ResidentDataset(images, on: backend)
        var g = SeededGenerator(seed: 9)
        let inputs = try backend.allocate(Float.self, count: batch * features)
        let labels = try backend.allocate(Int32.self, count: batch)
        let w = try backend.allocate(copying: randomFloats(features * outputs, using: &g))
        let dz = try backend.allocate(copying: randomFloats(batch * outputs, using: &g))
        let z = try backend.allocate(Float.self, count: batch * outputs)
        let dw = try backend.allocate(Float.self, count: features * outputs)
        defer { for p in [inputs, w, dz, z, dw] { backend.free(p) }; backend.free(labels) }
        let indices = (0..<batch).map { Int32(($0 * 37) % images.count) }
        indices.withUnsafeBufferPointer {
            backend.gatherBatch(BatchGather(inputs: inputs, labels: labels, from: data, indices: $0, normalization: .unit))
        }
        #expect(backend.skipsZerosOfLastBatch == backend.skipsInputZeros)
        backend.gemm(transposeA: false, transposeB: false, m: batch, n: outputs, k: features, alpha: 1, a: inputs, lda: features,
                     b: w, ldb: outputs, beta: 0, c: z, ldc: outputs)
        backend.gemm(transposeA: true, transposeB: false, m: features, n: outputs, k: batch, alpha: 1, a: inputs, lda: features,
                     b: dz, ldb: outputs, beta: 0, c: dw, ldc: outputs)
        return backend.download(z, count: batch * outputs) + backend.download(dw, count: features * outputs)
    }
}
