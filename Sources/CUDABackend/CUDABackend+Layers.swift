import MLPCore

/// The gather, the dense layers (the forward through the product's epilogue, the backward with its weight gradient on
/// the side stream) and the elementwise passes and loss they are composed from where nothing is fused.
extension CUDABackend {
    public func gatherBatch(_ gather: BatchGather) {
        let indices = gather.indices, features = gather.features, normalization = gather.normalization
        let (inputs, labels, values, sourceLabels) = (gather.inputs, gather.labels, gather.values, gather.sourceLabels)
        let floatValues = Int32(gather.valueType == .float32 ? 1 : 0)
        let batch = indices.count
        guard batch > 0 else { return }
        // A batch starts a forward pass: the copies converted for the last one are forgotten with its inputs.
        bf16Mirrors.forgetStep()
        wroteWithoutMirror(inputs, count: batch * features)
        if batch <= inlineIndexLimit {
            join()
            let grid = (gatherBlocks(features), UInt32(batch))
            let large = batch > Self.inlineIndexCapacity
            let capacity = large ? Self.largeInlineIndexCapacity : Self.inlineIndexCapacity
            if case .replaying(let graph) = mode {
                record {
                    guard let node = graph.inlineGather else {
                        throw CUDAError("a recorded step's gather node was not found: its indices cannot be set (set MLP_CUDA_OFF=inline-indices)")
                    }
                    node.setLast(InlineIndices(indices: indices, capacity: capacity))
                    try setArguments(of: node, in: graph, large ? "gather_batch_inline_large" : "gather_batch_inline")
                }
            } else {
                let kernel = large ? "gather_batch_inline_large" : "gather_batch_inline"
                let arguments: [any KernelArgument] = [inputs, labels, values, floatValues, sourceLabels, Int32(batch), Int32(features), normalization.scale, normalization.shift,
                                                       InlineIndices(indices: indices, capacity: capacity)]
                // Laid out now: the indices' buffer is the caller's, gone when the recording ends.
                if case .capturing(let graph) = mode { graph.gatherLaunch = (kernel, grid, ArgumentBlock(arguments)) }
                launch(kernel, grid: grid, block: 256, arguments)
            }
            mark("batch \(batch)×\(features) gathered, its indices among the kernel's parameters")
            return
        }
        let source = queueBatchIndices(indices)
        launch("gather_batch", grid: (gatherBlocks(features), UInt32(batch)), block: 256,
               [inputs, labels, values, floatValues, sourceLabels, source, Int32(batch), Int32(features), normalization.scale, normalization.shift])
        mark("indices copied, batch \(batch)×\(features) gathered")
    }

    /// The blocks of 256 threads that gather a row of `features` (`gather_row`: four features a thread).
    func gatherBlocks(_ features: Int) -> UInt32 { blocks((features + 3) / 4) }

    /// Queues the copy of a batch's indices to the device (after the other streams' work) and returns where the kernels
    /// that follow read them.
    func queueBatchIndices(_ indices: UnsafeBufferPointer<Int32>) -> DevicePointer<Int32> {
        let batch = indices.count
        join()
        if case .direct = mode { record { _ = try reserve(\.batchIndices, Int32.self, count: batch, minimum: 1024) } }
        var source = DevicePointer<Int32>(address: batchIndices.address)
        if case .direct = mode {
            upload(indices, to: source)
        } else if batch > batchIndices.count {
            // Inside a recording the device buffer cannot grow (the step ran unrecorded first, so it has grown then,
            // unless another step shape's batch was larger since): the kernel reads the indices straight from the
            // recording's pinned buffer, which page-locked memory maps into the device's address space.
            record { source = DevicePointer(address: UInt(bitPattern: try stageRecorded(UnsafeRawBufferPointer(indices)))) }
        } else {
            upload(indices, to: source)  // recorded: a copy from the recording's pinned buffer
        }
        return source
    }

    public func denseForward(outputs: DevicePointer<Float>, inputs: DevicePointer<Float>, weights: DevicePointer<Float>, bias: DevicePointer<Float>, rows: Int, inputSize: Int, outputSize: Int, activation: Activation) {
        join()
        guard fusesLayers, activation == .relu || activation == .identity else {
            return composedDenseForward(outputs: outputs, inputs: inputs, weights: weights, bias: bias, rows: rows, inputSize: inputSize, outputSize: outputSize, activation: activation)
        }
        if case .replaying = mode { return }  // recorded in the graph
        record {
            // A [B, out] = f(X [B, in] · W [in, out] + b), the bias and the ReLU in the product's epilogue.
            let call = MatmulCall(transposeA: false, transposeB: false, m: rows, n: outputSize, k: inputSize, alpha: 1,
                                  a: inputs.address, lda: inputSize, b: weights.address, ldb: outputSize, beta: 0,
                                  c: outputs.address, ldc: outputSize, epilogue: activation == .relu ? .reluBias : .bias,
                                  bias: bias.address)
            try matmul(call, on: stream)
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
            return composedDenseBackward(weightGradient: weightGradient, inputGradient: inputGradient, inputBiasGradient: inputBiasGradient, gradient: gradient, inputs: inputs, weights: weights, rows: rows, inputSize: inputSize, outputSize: outputSize, inputActivation: inputActivation)
        }
        enqueueWeightGradient(weightGradient, inputs: inputs, gradient: gradient, rows: rows, inputSize: inputSize, outputSize: outputSize)
        // dX [B, in] = dZ [B, out] · Wᵀ [out, in], then the activation's derivative and the bias gradient.
        enqueueGemm(transposeA: false, transposeB: true, m: rows, n: inputSize, k: outputSize, alpha: 1, a: gradient, lda: outputSize, b: weights, ldb: outputSize, beta: 0, c: inputGradient, ldc: inputSize)
        if case .replaying = mode {} else {
            record { try enqueueActivationBackward(gradient: inputGradient, biasGradient: inputBiasGradient, outputs: inputs, rows: rows, columns: inputSize, activation: Int32(Activation.allCases.firstIndex(of: inputActivation)!), dependent: true, on: stream) }
        }
        mark("backward \(rows)×\(inputSize)×\(outputSize): dX product, \(inputActivation.rawValue)' and bias gradient (dW beside)")
    }

    public func biasActivationForward(values: DevicePointer<Float>, bias: DevicePointer<Float>, rows: Int, columns: Int, activation: Activation) {
        join()
        wroteWithoutMirror(values, count: rows * columns)
        launch("bias_activation", grid: (blocks(rows * columns), 1), block: 256,
               [values, bias, Int64(rows * columns), Int32(columns), Int32(Activation.allCases.firstIndex(of: activation)!)])
    }

    public func activationBackward(gradient: DevicePointer<Float>, biasGradient: DevicePointer<Float>, outputs: DevicePointer<Float>, rows: Int, columns: Int, activation: Activation) {
        join()
        if case .replaying = mode { return }
        record { try enqueueActivationBackward(gradient: gradient, biasGradient: biasGradient, outputs: outputs, rows: rows, columns: columns, activation: Int32(Activation.allCases.firstIndex(of: activation)!), on: stream) }
    }

    /// Queues `activation_backward` (activation given as its kernel code) on `target`, the main or the side stream.
    func enqueueActivationBackward(gradient: DevicePointer<Float>, biasGradient: DevicePointer<Float>, outputs: DevicePointer<Float>, rows: Int, columns: Int, activation: Int32, dependent: Bool = false, on target: OpaquePointer?) throws {
        // Chunks of at least 128 rows, at most 64 of them: a 1024-row batch of 512 columns is 16 × 8 blocks
        // instead of 16 blocks each walking all the rows. A 128-row batch stays one chunk.
        // Partial sums [chunks, columns] and per-column-group counters (zero between launches: the last chunk
        // resets its counter), one pair per stream (the two may run at once).
        var chunks = max(1, min(rows / 128, 64))
        let groups = (columns + 31) / 32
        let side = target != stream
        if chunks > 1 {
            let partials = try reserve(side ? \.reductionPartials.side : \.reductionPartials.main, Float.self, count: chunks * columns, minimum: 1 << 16)
            let counters = try reserve(side ? \.reductionCounters.side : \.reductionCounters.main, UInt32.self, count: groups, minimum: 256)
            if !partials || !counters { chunks = 1 }  // not enough scratch, and none can be allocated inside a recording
        }
        let (partials, counters) = side ? (reductionPartials.side, reductionCounters.side) : (reductionPartials.main, reductionCounters.main)
        // bf16: the new gradient's copy written beside it (on the main stream; 3, the identity, leaves the gradient).
        let mirror = activation != 3 ? try gradientMirror(gradient, count: rows * columns, on: target) : DevicePointer<UInt16>(address: 0)
        try enqueueKernel("activation_backward", grid: (UInt32(groups), UInt32(chunks)), block: 32, blockY: 16, dependent: dependent, on: target,
                          [gradient, biasGradient, outputs, Int32(rows), Int32(columns), activation,
                           DevicePointer<Float>(address: partials.address), DevicePointer<UInt32>(address: counters.address), mirror])
    }

    public func lossForwardBackward(gradient: DevicePointer<Float>?, metrics: DevicePointer<Float>, predictions: DevicePointer<Int32>?, outputs: DevicePointer<Float>, labels: DevicePointer<Int32>, rows: Int, columns: Int, loss: Loss, gradientScale: Float) {
        join()
        if let gradient { wroteWithoutMirror(gradient, count: rows * columns) }
        launch("loss_rows", grid: (blocks(rows, 128), 1), block: 128,
               [gradient ?? DevicePointer(address: 0), metrics, predictions ?? DevicePointer<Int32>(address: 0), outputs, labels,
                Int32(rows), Int32(columns), Int32(loss == .softmaxCrossEntropy ? 0 : 1), gradientScale])
    }

    public func regressionLoss(gradient: DevicePointer<Float>?, metrics: DevicePointer<Float>, outputs: DevicePointer<Float>, targets: RegressionTargets, rows: Int, columns: Int, loss: Loss, gradientScale: Float) {
        precondition(loss.isRegression, "\(loss.rawValue) is not a regression loss")
        join()
        if let gradient { wroteWithoutMirror(gradient, count: rows * columns) }
        launch("regression_loss", grid: (blocks(rows, 128), 1), block: 128,
               [gradient ?? DevicePointer(address: 0), metrics, outputs, targets.rows, targets.table,
                Int32(rows), Int32(columns), Int32(loss == .huber ? 3 : 2), gradientScale])
    }
}
