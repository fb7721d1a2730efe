@testable import CUDABackend
import MLPCore
import MNIST
import Testing

/// The cuda backend's choices that need no GPU to check: the output layer kernel's launch geometry, and which
/// weight-gradient products go through a transposed copy of their input.
@Suite struct LaunchRulesTests {
    /// What a block may have without opting in, and what an H100/H200 allows a block with it.
    static let limits = [CUDABackend.defaultSharedBytesPerBlock, 232_448]

    @Test(arguments: [(128, 256, 10), (1, 3, 1), (17, 127, 16), (1000, 1000, 10), (60_000, 640, 16), (300, 5120, 2), (7, 12_032, 1),
                      (5, 1093, 11), (9, 1094, 11), (1024, 4096, 10), (513, 5236, 11), (1030, 4099, 10)])
    func theOutputLayerLaunchFitsItsLimits(rows: Int, inputs: Int, outputs: Int) {
        for sharedBytes in Self.limits {
            let staged = CUDABackend.outputLayerStagedFloats(sharedBytesPerBlock: sharedBytes)
            let warps = CUDABackend.outputLayerWarps(rows: rows)
            let shape = CUDABackend.outputLayerLaunch(rows: rows, inputSize: inputs, outputSize: outputs, stagedFloats: staged, warps: warps)
            // Every row has a warp (rows beyond the grid are taken in turn), and no more blocks than the scratch holds.
            #expect(Int(shape.threads) == 32 * warps)
            #expect(shape.blocks >= 1 && Int(shape.blocks) <= CUDABackend.outputLayerMaximumBlocks)
            #expect(Int(shape.blocks) == min((rows + warps - 1) / warps, CUDABackend.outputLayerMaximumBlocks))
            // The weights of every layer the kernel takes, at their row stride, fit beside its own sums (1.1 KB of
            // per-warp sums and the last block's slices) in what a block may have.
            #expect(Int(shape.weightStride) >= outputs && Int(shape.sharedBytes) == 4 * inputs * Int(shape.weightStride))
            if CUDABackend.outputLayerIsStaged(inputSize: inputs, outputSize: outputs, stagedFloats: staged) {
                #expect(Int(shape.sharedBytes) + 4 * (8 * 18 + 7 * 18) + 4 <= sharedBytes)
            }
            // The stride is odd (32 lanes reading 32 rows hit 32 banks) whenever that fits.
            if inputs * (outputs | 1) <= staged { #expect(shape.weightStride % 2 == 1) }
        }
    }

    @Test func batchesOfMoreThan512RowsTakeEightWarpsABlock() {
        #expect(CUDABackend.outputLayerWarps(rows: 1) == 4)
        #expect(CUDABackend.outputLayerWarps(rows: 128) == 4)
        #expect(CUDABackend.outputLayerWarps(rows: 512) == 4)
        #expect(CUDABackend.outputLayerWarps(rows: 513) == 8)
        #expect(CUDABackend.outputLayerWarps(rows: 1024) == 8)
    }

    @Test func onlyLayersWhoseWeightsFitTakeTheKernel() {
        let plain = CUDABackend.outputLayerStagedFloats(sharedBytesPerBlock: CUDABackend.defaultSharedBytesPerBlock)
        let optedIn = CUDABackend.outputLayerStagedFloats(sharedBytesPerBlock: 232_448)
        // small-128's 256×10 output layer is copied to shared memory; wide-1024's 4096×10 only with the opt-in.
        #expect(CUDABackend.outputLayerIsStaged(inputSize: 256, outputSize: 10, stagedFloats: plain))
        #expect(!CUDABackend.outputLayerIsStaged(inputSize: 4096, outputSize: 10, stagedFloats: plain))
        #expect(CUDABackend.outputLayerIsStaged(inputSize: 4096, outputSize: 10, stagedFloats: optedIn))
        #expect(!CUDABackend.outputLayerIsStaged(inputSize: 6000, outputSize: 10, stagedFloats: optedIn))
        #expect(CUDABackend.outputLayerIsStaged(inputSize: 11_904, outputSize: 1, stagedFloats: plain) && !CUDABackend.outputLayerIsStaged(inputSize: 11_905, outputSize: 1, stagedFloats: plain))
    }

    @Test(arguments: [(1024, 4096), (1027, 4096), (13, 2050), (40, 5600), (60_000, 2048), (600, 2100)])
    func theWideOutputLayerLaunchFitsItsLimits(rows: Int, inputs: Int) {
        let staged = (232_448 - CUDABackend.wideOutputOwnSharedBytes) / 4
        #expect(CUDABackend.usesWideOutputLayer(inputSize: inputs, outputSize: 10, from: 2048, stagedFloats: staged, inputs: 256, inputGradient: 1024))
        let shape = CUDABackend.wideOutputLayerLaunch(rows: rows, inputSize: inputs)
        // A block per 8 rows, at most as many as the scratch has slots for (further rows in turn).
        #expect(Int(shape.blocks) == min((rows + 7) / 8, CUDABackend.outputLayerMaximumBlocks))
        #expect(shape.threads == 256)
        // The weights, with the kernel's own sums, within what a block may have on an H100/H200.
        #expect(Int(shape.sharedBytes) == 4 * 10 * inputs)
        #expect(Int(shape.sharedBytes) + CUDABackend.wideOutputOwnSharedBytes <= 232_448)
    }

    @Test func onlyWideEvenAlignedTenOutputLayersTakeTheWideKernel() {
        let optedIn = (232_448 - CUDABackend.wideOutputOwnSharedBytes) / 4
        let plain = (CUDABackend.defaultSharedBytesPerBlock - CUDABackend.wideOutputOwnSharedBytes) / 4
        func uses(_ inputs: Int, _ outputs: Int, from: Int = 2048, staged: Int = optedIn, addresses: (UInt, UInt) = (4096, 0)) -> Bool {
            CUDABackend.usesWideOutputLayer(inputSize: inputs, outputSize: outputs, from: from, stagedFloats: staged,
                                            inputs: addresses.0, inputGradient: addresses.1)
        }
        #expect(uses(4096, 10) && uses(2048, 10) && uses(5708, 10))
        #expect(!uses(2046, 10) && !uses(4099, 10) && !uses(4096, 9) && !uses(4096, 16))
        #expect(!uses(5710, 10))   // 57,100 floats do not fit beside its sums
        #expect(!uses(4096, 10, staged: plain) && !uses(4096, 10, from: 0) && uses(1000, 10, from: 512, staged: plain))
        #expect(!uses(4096, 10, addresses: (4, 4096)) && !uses(4096, 10, addresses: (256, 4100)) && uses(4096, 10, addresses: (256, 4104)))
    }

    static func call(transposeA: Bool, m: Int, n: Int, k: Int) -> MatmulCall {
        MatmulCall(transposeA: transposeA, transposeB: false, m: m, n: n, k: k, alpha: 1, a: 256, lda: transposeA ? m : k,
                   b: 512, ldb: n, beta: 0, c: 1024, ldc: n)
    }

    @Test func onlyLargeMatrixUnitWeightGradientsAreTransposed() {
        let wide = Self.call(transposeA: true, m: 4096, n: 4096, k: 1024)       // 34 GFLOP
        let small = Self.call(transposeA: true, m: 784, n: 512, k: 1024)        // 0.8 GFLOP
        let forward = Self.call(transposeA: false, m: 1024, n: 4096, k: 4096)
        #expect(CUDABackend.transposesInput(of: wide, matrixUnits: true))
        #expect(!CUDABackend.transposesInput(of: wide, matrixUnits: false))
        #expect(!CUDABackend.transposesInput(of: small, matrixUnits: true))
        #expect(!CUDABackend.transposesInput(of: forward, matrixUnits: true))
    }

    /// A batch's indices passed by value fill the kernel's whole `InlineIndices` (or `InlineIndicesLarge`)
    /// parameter: the batch's, then zeros (a stale index past the batch would never be read, but the bytes are the
    /// launch's); the capacities are the source's, and with the other parameters the launches stay within 4 KB and
    /// within the 32,764 bytes that CUDA 12.1 drivers take.
    @Test(arguments: [(CUDABackend.inlineIndexCapacity, 4096), (CUDABackend.largeInlineIndexCapacity, 32_764)])
    func inlineIndicesFillTheirParameter(capacity: Int, parameterLimit: Int) {
        var g = SeededGenerator(seed: UInt64(capacity))
        let indices = (0..<Int.random(in: 1...capacity, using: &g)).map { _ in Int32.random(in: 0..<60_000, using: &g) }
        #expect(Kernels.source.contains("#define INLINE_INDICES \(CUDABackend.inlineIndexCapacity)\n"))
        #expect(Kernels.source.contains("#define INLINE_INDICES_LARGE \(CUDABackend.largeInlineIndexCapacity)\n"))
        let size = indices.withUnsafeBufferPointer { InlineIndices(indices: $0, capacity: capacity).size }
        #expect(size == 4 * capacity && size + 48 <= parameterLimit)
        let slot = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        defer { slot.deallocate() }
        slot.initializeMemory(as: UInt8.self, repeating: 0xAB, count: size)
        indices.withUnsafeBufferPointer { InlineIndices(indices: $0, capacity: capacity).write(to: slot) }
        let written = (0..<capacity).map { slot.load(fromByteOffset: 4 * $0, as: Int32.self) }
        #expect(Array(written.prefix(indices.count)) == indices)
        #expect(written.dropFirst(indices.count).allSatisfy { $0 == 0 })
    }

    /// An optimizer step's values as the kernel's `OptimizerArguments` parameter: the eight floats, in the order
    /// `optimizer_values` reads them, the bias corrections those of the step number.
    @Test func stepValuesFillTheirParameter() throws {
        let configuration = try OptimizerConfiguration(kind: .adam, learningRate: 0.01, weightDecay: 0.001, beta1: 0.8, beta2: 0.95, epsilon: 1e-7)
        let step = configuration.step(3, learningRate: 0.005)
        #expect(Kernels.source.contains("struct OptimizerArguments { float h[8]; };"))
        let argument = StepValues(step: step)
        #expect(argument.size == 32)
        let slot = UnsafeMutableRawPointer.allocate(byteCount: 32, alignment: 8)
        defer { slot.deallocate() }
        argument.write(to: slot)
        let written = (0..<8).map { slot.load(fromByteOffset: 4 * $0, as: Float.self) }
        #expect(written == [0.005, 0, 0.001, 0.8, 0.95, 1e-7, step.biasCorrections.first, step.biasCorrections.second])
        #expect(abs(written[6] - (1 - 0.8 * 0.8 * 0.8)) < 1e-6)
    }

    /// The optimizer codes the host passes are the ones the kernels' source documents and tests (`o.kind == 2`:
    /// AdamW's decoupled decay).
    @Test func optimizerCodesMatchTheKernels() {
        #expect(Kernels.source.contains("kind: 0 sgd, 1 adam,") && Kernels.source.contains("o.kind == 2"))
        #expect(OptimizerConfiguration.Kind.allCases.map { CUDABackend.kernelCode(of: $0) } == [0, 1, 2])
        #expect(OptimizerConfiguration.Kind.allCases == [.sgd, .adam, .adamw])
    }
}
