import CBF16GEMM
import CPUBackend
import Foundation
import MLPCore
import MNIST
import NaiveBackend
import Testing
import TestSupport

/// The cpu backend's bf16 products (`--precision bf16`, AVX-512 BF16) against a Double product of the same operands
/// rounded to bf16: the rounding is the definition, so the only difference left is the fp32 sums' (1e-6 of the
/// terms' magnitude); and a short training run against fp32. On a CPU without AVX-512 BF16 the backend refuses
/// bf16 by name.
@Suite(.enabled(if: CPUBackend.supportsBF16, "this CPU lacks AVX-512 BF16")) struct BF16Tests {
    /// fp32 → bf16 → fp32, as vcvtne2ps2bf16 rounds: to nearest even, subnormals to signed zero.
    static func bf16(_ x: Float) -> Float {
        var u = x.bitPattern
        if u & 0x7f80_0000 == 0 { return Float(bitPattern: u & 0x8000_0000) }
        u = u &+ 0x7fff &+ ((u >> 16) & 1)
        return Float(bitPattern: u & 0xffff_0000)
    }

    @Test(arguments: [1, 3])
    func productsEqualTheRoundedOperandsProduct(threads: Int) throws {
        let backend = try CPUBackend(threads: threads, precision: .bf16)
        var g = SeededGenerator(seed: UInt64(threads))
        // Sizes past every tile edge: rows of 12 (257 and 268 leave 5 and 4), columns of 32, depth pairs (odd
        // depths), and the workloads' 784; at least 128 rows, where the backend takes bf16 (`bf16MinimumRows`).
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            for (m, n, k) in [(128, 1, 1), (131, 40, 9), (257, 33, 3), (268, 31, 2), (259, 70, 65), (262, 45, 784), (300, 32, 17)] {
                for (alpha, beta) in [(Float(1), Float(0)), (0.7, -1.3)] {
                    let (aRows, aColumns) = ta ? (k, m) : (m, k), (bRows, bColumns) = tb ? (n, k) : (k, n)
                    let (lda, ldb, ldc) = (aColumns + 3, bColumns + 1, n + 2)
                    let a = (0..<aRows * lda).map { _ in Float(g.gaussian()) }, b = (0..<bRows * ldb).map { _ in Float(g.gaussian()) }
                    var c0 = (0..<m * ldc).map { _ in Float(g.gaussian()) }
                    if beta == 0 { for i in 0..<m { for j in 0..<n { c0[i * ldc + j] = .nan } } }
                    let (pa, pb, pc) = (try backend.allocate(copying: a), try backend.allocate(copying: b), try backend.allocate(copying: c0))
                    defer { backend.free(pa); backend.free(pb); backend.free(pc) }
                    backend.gemm(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: alpha, a: pa, lda: lda, b: pb, ldb: ldb,
                                 beta: beta, c: pc, ldc: ldc)
                    let c = backend.download(pc, count: m * ldc)
                    var worst = 0.0
                    for i in 0..<m {
                        for j in 0..<n {
                            var s = 0.0, size = 0.0
                            for p in 0..<k {
                                let x = Double(Self.bf16(ta ? a[p * lda + i] : a[i * lda + p]))
                                let y = Double(Self.bf16(tb ? b[j * ldb + p] : b[p * ldb + j]))
                                s += x * y
                                size += abs(x * y)
                            }
                            let expected = Double(alpha) * s + (beta == 0 ? 0 : Double(beta) * Double(c0[i * ldc + j]))
                            let scale = abs(Double(alpha)) * size + abs(Double(beta) * (beta == 0 ? 0 : Double(c0[i * ldc + j]))) + 1e-30
                            worst = max(worst, abs(Double(c[i * ldc + j]) - expected) / scale)
                        }
                        // The columns past n are not written.
                        #expect(c[i * ldc + n].bitPattern == c0[i * ldc + n].bitPattern && c[i * ldc + n + 1].bitPattern == c0[i * ldc + n + 1].bitPattern)
                    }
                    #expect(worst < 2e-6, "tA \(ta) tB \(tb) \(m)×\(n)×\(k) alpha \(alpha) beta \(beta): \(worst)")
                }
            }
        }
    }

    /// The sparse product (the first layer's, on a sparse batch). The forward (A not transposed) against the dense one
    /// on the same operands: the same sums, term for term (a pair of depth steps it skips adds exactly zero in the
    /// dense chain). The weight gradient (A transposed), which pairs each tile's nonzero steps in order, against a
    /// Double product of the operands rounded to bf16, within 2e-6 of the terms' magnitude (the fp32 sums). op(A)
    /// mostly zeros, in runs as an image's background is, with tiles and pairs that are not whole (rows past a tile of
    /// 6, odd depths and odd counts of nonzero steps, columns past a panel of 32 and a pair of panels), alpha and beta.
    @Test func sparseProducts() {
        var g = SeededGenerator(seed: 11)
        for transposeA in [false, true] {
            for (m, n, k) in [(7, 33, 5), (13, 70, 63), (31, 97, 784), (6, 64, 1), (25, 129, 300), (20, 40, 1027)] {
                for (alpha, beta) in [(Float(1), Float(0)), (0.7, -1.3)] {
                    let (aRows, aColumns) = transposeA ? (k, m) : (m, k)
                    let (lda, ldb, ldc) = (aColumns + 2, n + 3, n + 1)
                    // Nonzero in runs: each stretch of up to 12 values is all zero with probability 0.7.
                    var a = [Float](repeating: 0, count: aRows * lda)
                    var index = 0
                    while index < a.count {
                        let run = 1 + Int(g.next() % 12), nonzero = g.next() % 10 < 3
                        for i in index..<min(a.count, index + run) where nonzero { a[i] = Float(g.gaussian()) }
                        index += run
                    }
                    let b = (0..<k * ldb).map { _ in Float(g.gaussian()) }
                    let c0 = (0..<m * ldc).map { _ in Float(g.gaussian()) }
                    let packed = UnsafeMutableRawPointer.allocate(byteCount: mlp_bf16_packed_b_bytes(Int32(k), Int32(n)), alignment: 64)
                    let tile = UnsafeMutableRawPointer.allocate(byteCount: max(mlp_bf16_packed_a_bytes(Int32(k)), mlp_bf16_sparse_workspace_bytes(Int32(k))), alignment: 64)
                    defer { packed.deallocate(); tile.deallocate() }
                    let panels = (n + Int(MLP_BF16_NR) - 1) / Int(MLP_BF16_NR)
                    let label = "tA \(transposeA) \(m)×\(n)×\(k) alpha \(alpha) beta \(beta)"
                    var sparse = c0
                    func runSparse() {
                        // In two calls, the second starting inside a tile of 6 rows: a thread's share of C starts anywhere.
                        let split = m / 2 + 1
                        for (lo, hi) in [(0, split), (split, m)] {
                            mlp_bf16_sparse_rows(transposeA ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda),
                                                 packed.assumingMemoryBound(to: UInt16.self), beta, &sparse, Int32(ldc), Int32(lo), Int32(hi),
                                                 tile.assumingMemoryBound(to: UInt32.self))
                        }
                    }
                    if transposeA {
                        // B's rows, in two parts as the threads round them.
                        for (lo, hi) in [(0, k / 3), (k / 3, k)] {
                            mlp_bf16_pack_rows(Int32(k), Int32(n), b, Int32(ldb), packed.assumingMemoryBound(to: UInt16.self), Int32(lo), Int32(hi))
                        }
                        runSparse()
                        var worst = 0.0
                        for i in 0..<m {
                            for j in 0..<n {
                                var sum = 0.0, size = 0.0
                                for p in 0..<k {
                                    let term = Double(Self.bf16(a[p * lda + i])) * Double(Self.bf16(b[p * ldb + j]))
                                    sum += term
                                    size += abs(term)
                                }
                                let old = Double(c0[i * ldc + j])
                                let expected = Double(alpha) * sum + (beta == 0 ? 0 : Double(beta) * old)
                                let scale = abs(Double(alpha)) * size + abs(Double(beta) * old) + 1e-30
                                worst = max(worst, abs(Double(sparse[i * ldc + j]) - expected) / scale)
                            }
                        }
                        #expect(worst < 2e-6, "\(label): \(worst)")
                    } else {
                        mlp_bf16_pack_b(0, Int32(k), Int32(n), b, Int32(ldb), packed.assumingMemoryBound(to: UInt16.self), 0, Int32(panels))
                        var dense = c0
                        mlp_bf16_gemm_rows(0, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), packed.assumingMemoryBound(to: UInt16.self),
                                           beta, &dense, Int32(ldc), 0, Int32(m), tile.assumingMemoryBound(to: UInt32.self))
                        runSparse()
                        let differing = zip(dense, sparse).filter { $0 != $1 }.count
                        #expect(differing == 0, "\(label): \(differing) elements differ from the dense product")
                    }
                    // The column past n is not written, and the sums are not all zero (the runs left nonzeros in A).
                    #expect((0..<m).allSatisfy { sparse[$0 * ldc + n] == c0[$0 * ldc + n] }, "\(label)")
                    #expect(sparse != c0, "\(label)")
                }
            }
        }
    }

    /// Through the backend: the first layer's products on a gathered sparse batch (a forward of 301 rows and a weight
    /// gradient of 784, both past `bf16MinimumRows`) take the sparse path, within bf16's rounding (about 4e-3 an
    /// operand, `mlp check`'s tolerance 1e-2) of the Double product of the unrounded operands.
    @Test func firstLayerProductsOnASparseBatch() throws {
        let backend = try CPUBackend(threads: 2, precision: .bf16)
        var checks = BackendOpChecks(backend, seed: 4)
        for (alpha, beta) in [(Float(1), Float(0)), (0.7, -1.3)] {
            let error = try checks.inputLayerProducts(samples: 400, features: 784, batch: 301, outputs: 70, alpha: alpha, beta: beta)
            #expect(backend.skipsZerosOfLastBatch)
            #expect(error > 1e-5 && error < 1e-2, "alpha \(alpha) beta \(beta): \(error)")
        }
    }

    /// Three epochs of a small network: bf16 losses within 2% of fp32's, and the weights apart (the products are
    /// not the fp32 ones).
    @Test func trainingFollowsFP32() throws {
        func run(_ precision: CPUBackend.Precision) throws -> (losses: [Double], weights: [Float]) {
            let backend = try CPUBackend(threads: 2, precision: precision)
            let configuration = try TrainingConfiguration(
                network: NetworkSpec(layerSizes: [784, 64, 33, 10]), optimizer: .adam(learningRate: 2e-3),
                schedule: LearningRateSchedule(base: 2e-3), epochs: 3, batchSize: 50, seed: 5)
            let images = syntheticImages(count: 350, rows: 28, columns: 28, classes: 10, seed: 3)
            let trainer = try Trainer(configuration: configuration, backend: backend, training: LabeledSamples(images))
            let history = try trainer.run()
            return (history.map(\.trainLoss), trainer.network.parameterValues())
        }
        let (fp32, bf16) = (try run(.fp32), try run(.bf16))
        for (a, b) in zip(fp32.losses, bf16.losses) { #expect(abs(a - b) / a < 0.02, "\(fp32.losses) \(bf16.losses)") }
        #expect(fp32.losses.last! < fp32.losses.first!)
        #expect(fp32.weights != bf16.weights)
    }

    @Test func theBLASPathRefusesBF16() {
        #expect(throws: CPUBackendError.bf16Unsupported("--gemm blas: the BLAS's products are fp32")) {
            try CPUBackend(gemm: .blas, precision: .bf16)
        }
    }
}
