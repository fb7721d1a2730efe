import MLPCore

/// An experiment under measurement (issue 28; `MLP_CUDA_BACKWARD_BLOCKS=n`, off unless set): a large hidden layer's
/// backward in `n` blocks of its weights' rows, so that its update overlaps the layer's own products.
///
/// In one piece, a layer's update must wait for both of the layer's products: the weight gradient it applies and the
/// input gradient, which reads the weights it overwrites. At wide-1024 the second layer's update (16.8 million
/// parameters, 470 MB of traffic) then starts when nearly every product of the step is done, and little is left to
/// hide it behind. Block `j` of rows `[r0, r1)` of the weights W [in, out] has a weight gradient of its own,
/// dW[r0..<r1, :] = X[:, r0..<r1]ᵀ · dZ (side stream), and is the only block its input gradient's columns read,
/// dX[:, r0..<r1] = dZ · W[r0..<r1, :]ᵀ (main stream); once both are done the block's update can run, on the update
/// stream, beside the next blocks' products. The activation's backward follows the last block's input gradient.
/// Each block's products are products of their own shape (cuBLASLt may choose other algorithms, so the results may
/// round differently from the products in one piece); the update of each element is the same.
struct BlockedLayer {
    /// The layer's weights (and, after them, its bias): where its update starts.
    var weights: UInt
    var inputSize: Int, outputSize: Int
    var blocks: Int
    /// The update's count: the weights and the bias.
    var parameterCount: Int { inputSize * outputSize + outputSize }

    /// The first row of block `j` (`j == blocks`: the end). Blocks are whole multiples of 32 rows but the last, so that
    /// every block's operands keep the matrices' alignment.
    func start(ofBlock j: Int) -> Int {
        let size = ((inputSize + blocks - 1) / blocks + 31) / 32 * 32
        return Swift.min(inputSize, j * size)
    }
}

extension CUDABackend {
    /// How many blocks the backward of a layer of `inputSize` × `outputSize` weights runs in: 1 (in one piece) unless
    /// `MLP_CUDA_BACKWARD_BLOCKS` asks for more, the streams and layer-by-layer updates are on, and the layer has
    /// `layerUpdatesMinimumParameters` weights or more; blocks of at least 64 rows.
    func backwardBlocks(inputSize: Int, outputSize: Int) -> Int {
        let asked = options.backwardBlocks
        guard asked > 1, usesSideStream, updateStream != nil, options.uses(.layerUpdates),
              inputSize * outputSize >= Self.layerUpdatesMinimumParameters else { return 1 }
        return Swift.max(1, Swift.min(asked, inputSize / 64))
    }

    /// `denseBackward` in `blocks` blocks of the weights' rows (see `BlockedLayer`): every block's weight gradient on
    /// the side stream, each followed by its event; every block's input gradient on the main stream, each but the
    /// last followed by its event; then the activation's backward over the whole input gradient. The layer's update,
    /// which comes next, runs block by block (`enqueueBlockedUpdate`).
    func blockedDenseBackward(_ blocks: Int, weightGradient: DevicePointer<Float>, inputGradient: DevicePointer<Float>, inputBiasGradient: DevicePointer<Float>, gradient: DevicePointer<Float>, inputs: DevicePointer<Float>, weights: DevicePointer<Float>, rows: Int, inputSize: Int, outputSize: Int, inputActivation: Activation) {
        let layer = BlockedLayer(weights: weights.address, inputSize: inputSize, outputSize: outputSize, blocks: blocks)
        if case .replaying = mode {} else {
            record {
                while blockEvents.count < blocks {
                    var main: OpaquePointer?, side: OpaquePointer?
                    try driver.check(driver.cuEventCreate(&main, 2), "cuEventCreate(block)")  // CU_EVENT_DISABLE_TIMING
                    try driver.check(driver.cuEventCreate(&side, 2), "cuEventCreate(block)")
                    blockEvents.append((main, side))
                }
                // bf16: the whole operands' copies made current once, which each block's part of them then is.
                let weightGradientCall = MatmulCall(transposeA: true, transposeB: false, m: inputSize, n: outputSize, k: rows, alpha: 1,
                                                    a: inputs.address, lda: inputSize, b: gradient.address, ldb: outputSize, beta: 0,
                                                    c: weightGradient.address, ldc: outputSize)
                if runsInBF16(weightGradientCall) { _ = try bf16Operands(of: weightGradientCall, on: stream) }
            }
        }
        for j in 0..<blocks {
            let r0 = layer.start(ofBlock: j), r1 = layer.start(ofBlock: j + 1)
            guard r1 > r0 else { continue }
            enqueueWeightGradient(weightGradient + r0 * outputSize, inputs: inputs + r0, gradient: gradient, rows: rows,
                                  inputSize: r1 - r0, outputSize: outputSize, inputStride: inputSize) {
                try driver.check(driver.cuEventRecord(blockEvents[j].side, sideStream), "cuEventRecord(block weight gradient)")
            }
        }
        for j in 0..<blocks {
            let r0 = layer.start(ofBlock: j), r1 = layer.start(ofBlock: j + 1)
            guard r1 > r0 else { continue }
            enqueueGemm(transposeA: false, transposeB: true, m: rows, n: r1 - r0, k: outputSize, alpha: 1, a: gradient, lda: outputSize,
                        b: weights + r0 * outputSize, ldb: outputSize, beta: 0, c: inputGradient + r0, ldc: inputSize)
            // The last block's update waits for the activation's backward too (`mainReady`): no event between the
            // last product and the kernel that follows it programmatically.
            if j < blocks - 1, r1 < inputSize {
                if case .replaying = mode {} else {
                    record { try driver.check(driver.cuEventRecord(blockEvents[j].main, stream), "cuEventRecord(block input gradient)") }
                }
            }
        }
        if case .replaying = mode {} else {
            record { try enqueueActivationBackward(gradient: inputGradient, biasGradient: inputBiasGradient, outputs: inputs, rows: rows, columns: inputSize, activation: Int32(Activation.allCases.firstIndex(of: inputActivation)!), dependent: true, on: stream) }
        }
        blockedLayer = layer
        mark("backward \(rows)×\(inputSize)×\(outputSize) in \(blocks) blocks: dX products, \(inputActivation.rawValue)' and bias gradient (dW beside)")
    }

    /// The update of a layer whose backward ran in blocks: block by block on the update stream, each after its two
    /// products (the last after everything the main stream has queued so far, the activation's backward included).
    func enqueueBlockedUpdate(_ update: ParameterUpdate, _ layer: BlockedLayer, slots: Int) {
        let kind = Int32(Self.kernelCode(of: update.step.kind)), nesterov = Int32(update.step.nesterov ? 1 : 0)
        let cap = options.besideUpdateBlocksPerMultiprocessor * multiprocessors
        for j in 0..<layer.blocks {
            let r0 = layer.start(ofBlock: j), r1 = layer.start(ofBlock: j + 1)
            guard r1 > r0 else { continue }
            let last = r1 == layer.inputSize
            let first = r0 * layer.outputSize
            // The bias follows the weights: the last block takes it.
            let count = (last ? update.count : r1 * layer.outputSize) - first
            let (parameters, gradients, state) = (update.parameters + first, update.gradients + first, update.state + first)
            var updateBlocks = blocks(count, 256 * 4)  // 4: UPDATE_UNROLL
            if cap > 0 { updateBlocks = Swift.min(updateBlocks, UInt32(cap)) }
            let mirror = updateMirror(parameters, count: count)
            if mirror.address == 0 { wroteWithoutMirror(parameters, count: count) }
            if case .replaying(let graph) = mode {
                record {
                    guard let node = graph.updateNodes[parameters.address] else {
                        throw CUDAError("a recorded step's optimizer update of \(count) parameters was not found in its graph")
                    }
                    node.arguments.set(StepValues(step: update.step), at: Self.stepValuesArgument)
                    try setArguments(of: node, in: graph, "optimizer_update")
                }
            } else {
                let arguments: [any KernelArgument] = [parameters, gradients, state, Int64(count), Int64(update.stateStride), kind, nesterov,
                                                       StepValues(step: update.step), mirror]
                if case .capturing(let graph) = mode { graph.updateLaunches[parameters.address] = ("optimizer_update", (updateBlocks, 1), ArgumentBlock(arguments)) }
                record {
                    let mainEvent = last ? mainReady : blockEvents[j].main
                    if last { try driver.check(driver.cuEventRecord(mainReady, stream), "cuEventRecord(main ready)") }
                    try driver.check(driver.cuStreamWaitEvent(updateStream, mainEvent, 0), "cuStreamWaitEvent(block input gradient)")
                    try driver.check(driver.cuStreamWaitEvent(updateStream, blockEvents[j].side, 0), "cuStreamWaitEvent(block weight gradient)")
                    try enqueueKernel("optimizer_update", grid: (updateBlocks, 1), block: 256, on: updateStream, arguments)
                    if last { try driver.check(driver.cuEventRecord(updateDone, updateStream), "cuEventRecord(update)") }
                }
            }
        }
        updatePending = true
        sideAccesses.read(StreamAccesses.extent(update.gradients, rows: 1, stride: update.count))
        sideAccesses.write(StreamAccesses.extent(update.parameters, rows: 1, stride: update.count))
        for slot in 0..<slots { sideAccesses.write(StreamAccesses.extent(update.state + slot * update.stateStride, rows: 1, stride: update.count)) }
    }
}
