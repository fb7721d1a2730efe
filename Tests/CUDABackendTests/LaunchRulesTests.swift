@testable import CUDABackend
import Testing

/// The cuda backend's choices that need no GPU to check: the output layer kernel's launch geometry, and which
/// weight-gradient products go through a transposed copy of their input.
@Suite struct LaunchRulesTests {
    @Test(arguments: [(128, 256, 10), (1, 3, 1), (17, 127, 16), (1000, 1000, 10), (60_000, 640, 16), (300, 5120, 2), (7, 12_032, 1),
                      (5, 1093, 11), (9, 1094, 11)])
    func theOutputLayerLaunchFitsItsLimits(rows: Int, inputs: Int, outputs: Int) {
        let shape = CUDABackend.outputLayerLaunch(rows: rows, inputSize: inputs, outputSize: outputs)
        let warps = Int(CUDABackend.outputLayerThreads) / 32
        // Every row has a warp (rows beyond the grid are taken in turn), and no more blocks than the scratch holds.
        #expect(shape.blocks >= 1 && Int(shape.blocks) <= CUDABackend.outputLayerMaximumBlocks)
        #expect(Int(shape.blocks) == min((rows + warps - 1) / warps, CUDABackend.outputLayerMaximumBlocks))
        // The weights of every layer the kernel takes, at their row stride, fit beside its own sums in the 48 KB a
        // block may have without opting in.
        #expect(Int(shape.weightStride) >= outputs && Int(shape.sharedBytes) == 4 * inputs * Int(shape.weightStride))
        if CUDABackend.outputLayerIsStaged(inputSize: inputs, outputSize: outputs) { #expect(Int(shape.sharedBytes) + 1024 <= 48 * 1024) }
        // The stride is odd (32 lanes reading 32 rows hit 32 banks) whenever that fits.
        if inputs * (outputs | 1) <= CUDABackend.outputLayerStagedFloats { #expect(shape.weightStride % 2 == 1) }
    }

    @Test func onlyLayersWhoseWeightsFitTakeTheKernel() {
        // small-128's 256×10 output layer is copied to shared memory; wide-1024's 4096×10 is not.
        #expect(CUDABackend.outputLayerIsStaged(inputSize: 256, outputSize: 10))
        #expect(!CUDABackend.outputLayerIsStaged(inputSize: 4096, outputSize: 10))
        #expect(CUDABackend.outputLayerIsStaged(inputSize: 12_032, outputSize: 1) && !CUDABackend.outputLayerIsStaged(inputSize: 12_033, outputSize: 1))
    }

    static func call(transposeA: Bool, m: Int, n: Int, k: Int) -> MatmulCall {
        MatmulCall(transposeA: transposeA, transposeB: false, m: m, n: n, k: k, alpha: 1, a: 256, lda: transposeA ? m : k,
                   b: 512, ldb: n, beta: 0, c: 1024, ldc: n)
    }

    @Test func onlyLargeTF32WeightGradientsAreTransposedByDefault() {
        let wide = Self.call(transposeA: true, m: 4096, n: 4096, k: 1024)       // 34 GFLOP
        let small = Self.call(transposeA: true, m: 784, n: 512, k: 1024)        // 0.8 GFLOP
        let forward = Self.call(transposeA: false, m: 1024, n: 4096, k: 4096)
        #expect(CUDABackend.transposesInput(of: wide, tf32: true, setting: nil))
        #expect(!CUDABackend.transposesInput(of: wide, tf32: false, setting: nil))
        #expect(!CUDABackend.transposesInput(of: small, tf32: true, setting: nil))
        #expect(!CUDABackend.transposesInput(of: forward, tf32: true, setting: nil))
        // The switch: every weight gradient, or none; never a product whose A is not transposed.
        #expect(CUDABackend.transposesInput(of: small, tf32: false, setting: "1"))
        #expect(!CUDABackend.transposesInput(of: wide, tf32: true, setting: "0"))
        #expect(!CUDABackend.transposesInput(of: forward, tf32: true, setting: "1"))
    }
}
