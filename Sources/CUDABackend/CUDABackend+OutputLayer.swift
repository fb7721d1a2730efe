import MLPCore

/// The output layer, its loss and its backward in one kernel for narrow layers (a classifier's ten outputs):
/// `output_layer_loss` (a warp per row, the weights staged in shared memory) and `output_layer_wide` (ten outputs of
/// many inputs, a block per 8 rows), their launch rules, and the composition for wider layers.
extension CUDABackend {
    /// The one-kernel output layer takes layers of at most 16 outputs whose weights fit in shared memory beside the
    /// kernel's own sums (`outputLayerStagedFloats`), and batches of any size. Wider layers are a product, the loss, a
    /// product and the activation backward.
    static let fusedOutputMaximum = 16
    /// Shared memory the kernel's own sums take (a block's per-warp sums and the last block's slices, 1.1 KB), kept out
    /// of what the weights may use.
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

    /// Warps a block of the output layer's kernel for `rows` rows: 4, or 8 where 128 blocks of 4 would give a warp more
    /// than one row (a batch of 1024: one row a warp, twice the loads in flight on each SM).
    static func outputLayerWarps(rows: Int) -> Int { rows > 4 * outputLayerMaximumBlocks ? 8 : 4 }

    /// Inputs from which `output_layer_loss` loads 16 of a row's inputs at once, not 4 (where a lane has at least one
    /// full batch of 16).
    static let outputLongRowsFrom: Int32 = 512
    /// Inputs from which a layer of ten outputs takes `output_layer_wide` (a block per 8 rows, the inputs split between
    /// its threads) instead of `output_layer_loss` (a warp per row): wide-1024's 4096×10 layer, where reading every
    /// weight from shared memory once per row bounded the warp-per-row kernel.
    static let wideOutputMinimumInputs = 2048

    /// The output layer kernel's grid, block, shared memory (the weights) and their row stride in it: the number of
    /// outputs rounded up to odd (conflict-free reads of 32 rows at once) where that still fits in `stagedFloats`.
    static func outputLayerLaunch(rows: Int, inputSize: Int, outputSize: Int, stagedFloats: Int, warps: Int) -> (blocks: UInt32, threads: UInt32, sharedBytes: UInt32, weightStride: Int32) {
        let blocks = max(1, min((rows + warps - 1) / warps, outputLayerMaximumBlocks))
        let stride = inputSize * (outputSize | 1) <= stagedFloats ? outputSize | 1 : outputSize
        return (UInt32(blocks), UInt32(32 * warps), UInt32(4 * inputSize * stride), Int32(stride))
    }

    /// `output_layer_wide`'s static shared memory (the warps' and rows' sums, the last block's slices: 3,776 bytes for
    /// sm_90), kept out of what its weights may use.
    static let wideOutputOwnSharedBytes = 4096
    /// Rows a block of `output_layer_wide` takes at once, its threads, and the outputs it takes (WIDE_ROWS,
    /// WIDE_THREADS, WIDE_OUT in the kernel).
    static let wideOutputRows = 8
    static let wideOutputThreads: UInt32 = 256
    static let wideOutputOutputs = 10
    /// Whether a layer takes `output_layer_wide`: ten outputs, an even number of inputs from `from` on (0: never),
    /// whose weights fit in `stagedFloats`, and the addresses of the inputs and of the input gradient (0: none) 8-byte
    /// aligned (the kernel loads and stores pairs). (Two addresses, not an array: a replayed step calls this and must
    /// allocate nothing.)
    static func usesWideOutputLayer(inputSize: Int, outputSize: Int, from: Int, stagedFloats: Int, inputs: UInt, inputGradient: UInt) -> Bool {
        from > 0 && outputSize == wideOutputOutputs && inputSize >= from && inputSize % 2 == 0
            && wideOutputOutputs * inputSize <= stagedFloats
            && inputs % 8 == 0 && inputGradient % 8 == 0
    }

    /// `output_layer_wide`'s grid (a block per 8 rows, at most `outputLayerMaximumBlocks`: their blocks take further
    /// rows in turn), block and shared memory (the weights).
    static func wideOutputLayerLaunch(rows: Int, inputSize: Int) -> (blocks: UInt32, threads: UInt32, sharedBytes: UInt32) {
        let blocks = max(1, min((rows + wideOutputRows - 1) / wideOutputRows, outputLayerMaximumBlocks))
        return (UInt32(blocks), wideOutputThreads, UInt32(4 * wideOutputOutputs * inputSize))
    }

    /// Whether the output layer's weights fit in the kernel's shared memory, `stagedFloats` of it.
    static func outputLayerIsStaged(inputSize: Int, outputSize: Int, stagedFloats: Int) -> Bool { inputSize * outputSize <= stagedFloats }

    private func fusesOutputLayer(rows: Int, inputSize: Int, outputSize: Int, inputs: DevicePointer<Float>, inputGradient: DevicePointer<Float>?) -> Bool {
        fusesLayers && outputSize <= Self.fusedOutputMaximum
            && (Self.outputLayerIsStaged(inputSize: inputSize, outputSize: outputSize, stagedFloats: outputLayerStagedFloats)
                || Self.usesWideOutputLayer(inputSize: inputSize, outputSize: outputSize, from: outputWideFrom,
                                            stagedFloats: wideOutputStagedFloats, inputs: inputs.address,
                                            inputGradient: inputGradient?.address ?? 0))
    }

    /// Queues the one-kernel output layer (see `fusedOutputMaximum`); `inputGradient` nil for the forward and loss
    /// only. With `defersSums` the kernel leaves its blocks' sums (the bias gradient, the metrics) in `outputPartials`
    /// for `output_layer_sums` to add on the side stream; returns the number of blocks.
    @discardableResult
    private func launchOutputLayer(outputs: DevicePointer<Float>, gradient: DevicePointer<Float>?, biasGradient: DevicePointer<Float>?, metrics: DevicePointer<Float>, predictions: DevicePointer<Int32>?, inputs: DevicePointer<Float>, weights: DevicePointer<Float>, bias: DevicePointer<Float>, labels: DevicePointer<Int32>, rows: Int, inputSize: Int, outputSize: Int, loss: Loss, gradientScale: Float, inputGradient: DevicePointer<Float>?, inputActivation: Activation, defersSums: Bool = false) -> UInt32 {
        let none = DevicePointer<Float>(address: 0)
        let activation = Int32(Activation.allCases.firstIndex(of: inputActivation)!)
        wroteWithoutMirror(outputs, count: rows * outputSize)
        if let gradient { wroteWithoutMirror(gradient, count: rows * outputSize) }
        // bf16: the input gradient's copy written beside it, for the products of the layer below.
        var inputMirror = DevicePointer<UInt16>(address: 0)
        if let inputGradient {
            if case .replaying = mode {} else {
                do { inputMirror = try gradientMirror(inputGradient, count: rows * inputSize, on: stream) } catch { record { throw error } }
            }
        }
        if Self.usesWideOutputLayer(inputSize: inputSize, outputSize: outputSize, from: outputWideFrom, stagedFloats: wideOutputStagedFloats,
                                    inputs: inputs.address, inputGradient: inputGradient?.address ?? 0) {
            let shape = Self.wideOutputLayerLaunch(rows: rows, inputSize: inputSize)
            launch("output_layer_wide", grid: (shape.blocks, 1), block: shape.threads, sharedBytes: shape.sharedBytes, dependent: true,
                   [outputs, gradient ?? none, biasGradient ?? none, metrics, predictions ?? DevicePointer<Int32>(address: 0),
                    inputs, weights, bias, labels, Int32(rows), Int32(inputSize),
                    Int32(loss == .softmaxCrossEntropy ? 0 : 1), gradientScale, outputPartials, outputCounter, inputGradient ?? none,
                    activation, Int32(defersSums ? 1 : 0), inputMirror])
            return shape.blocks
        }
        let shape = Self.outputLayerLaunch(rows: rows, inputSize: inputSize, outputSize: outputSize, stagedFloats: outputLayerStagedFloats,
                                           warps: Self.outputLayerWarps(rows: rows))
        launch("output_layer_loss", grid: (shape.blocks, 1), block: shape.threads, sharedBytes: shape.sharedBytes, dependent: true,
               [outputs, gradient ?? none, biasGradient ?? none, metrics, predictions ?? DevicePointer<Int32>(address: 0),
                inputs, weights, bias, labels, Int32(rows), Int32(inputSize), Int32(outputSize),
                Int32(loss == .softmaxCrossEntropy ? 0 : 1), gradientScale, outputPartials, outputCounter, inputGradient ?? none,
                activation, shape.weightStride, Self.outputLongRowsFrom,
                Int32(defersSums ? 1 : 0), inputMirror])
        return shape.blocks
    }

    /// The output layer as one kernel where it is narrow (`fusesOutputLayer`): the forward, the loss and its gradient,
    /// the bias gradient, and with `backward` the input gradient too (the kernel's blocks' sums, the weight gradient
    /// and the input gradient's column sums then go to the side stream: nothing but the optimizer reads them). Else the
    /// composition.
    public func outputLayerLoss(outputs: DevicePointer<Float>, gradient: DevicePointer<Float>?, biasGradient: DevicePointer<Float>?, metrics: DevicePointer<Float>, predictions: DevicePointer<Int32>?, inputs: DevicePointer<Float>, weights: DevicePointer<Float>, bias: DevicePointer<Float>, labels: DevicePointer<Int32>, rows: Int, inputSize: Int, outputSize: Int, loss: Loss, gradientScale: Float, backward: LayerBackward?) {
        let inKernel = options.uses(.outputBackward) ? backward : nil
        guard fusesOutputLayer(rows: rows, inputSize: inputSize, outputSize: outputSize, inputs: inputs, inputGradient: inKernel?.inputGradient),
              gradient == nil || biasGradient != nil else {
            return composedOutputLayerLoss(outputs: outputs, gradient: gradient, biasGradient: biasGradient, metrics: metrics, predictions: predictions, inputs: inputs, weights: weights, bias: bias, labels: labels, rows: rows, inputSize: inputSize, outputSize: outputSize, loss: loss, gradientScale: gradientScale, backward: backward)
        }
        if let backward, let gradient, inKernel == nil {
            // `MLP_CUDA_OFF=output-backward`: the kernel without the input gradient, then the layer's backward.
            outputLayerLoss(outputs: outputs, gradient: gradient, biasGradient: biasGradient, metrics: metrics, predictions: predictions, inputs: inputs, weights: weights, bias: bias, labels: labels, rows: rows, inputSize: inputSize, outputSize: outputSize, loss: loss, gradientScale: gradientScale, backward: nil)
            return denseBackward(weightGradient: backward.weightGradient, inputGradient: backward.inputGradient, inputBiasGradient: backward.inputBiasGradient, gradient: gradient, inputs: inputs, weights: weights, rows: rows, inputSize: inputSize, outputSize: outputSize, inputActivation: backward.inputActivation)
        }
        guard let backward, let gradient, let biasGradient else {
            join()
            launchOutputLayer(outputs: outputs, gradient: gradient, biasGradient: biasGradient, metrics: metrics, predictions: predictions, inputs: inputs, weights: weights, bias: bias, labels: labels, rows: rows, inputSize: inputSize, outputSize: outputSize, loss: loss, gradientScale: gradientScale, inputGradient: nil, inputActivation: .relu)
            return
        }
        let (weightGradient, inputGradient, inputBiasGradient, inputActivation) = (backward.weightGradient, backward.inputGradient, backward.inputBiasGradient, backward.inputActivation)
        join()
        let defersSums = usesSideStream
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
}
