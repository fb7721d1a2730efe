import MLPCore

/// The optimizer's update, one launch over the whole flat buffer or over one layer's part of it (beside the backward of
/// the layers below, on the update stream, when that stream still uses its memory), with the next step's gather in the
/// same launch when the schedule asks for it; and the schedule itself.
extension CUDABackend {
    /// Layer by layer from 4 million parameters, with the streams (wide-1024's 20 million gained, small-128's half a
    /// million lost to the extra launches and waits: Benchmarks/RESULTS.md); the next batch gathered in the last update
    /// for batches whose indices fit in its parameters (`inlineIndexCapacity`). A schedule the caller prefers is taken,
    /// but for a gather the backend cannot do.
    func schedule(for step: TrainingStep) -> StepSchedule {
        let eachLayer = step.preferredSchedule?.updatesEachLayer
            ?? (updateStream != nil && options.uses(.layerUpdates) && step.parameters >= Self.layerUpdatesMinimumParameters)
        let ahead = (step.preferredSchedule?.gathersNextBatch ?? options.uses(.gatherAhead))
            && step.nextRows == step.rows && step.rows <= min(inlineIndexLimit, Self.inlineIndexCapacity)
        return StepSchedule(updatesEachLayer: eachLayer, gathersNextBatch: ahead)
    }
    static let layerUpdatesMinimumParameters = 4_000_000

    /// Where `optimizer_update` and `optimizer_update_gather` take the step's values (`StepValues`) among their
    /// arguments.
    static let stepValuesArgument = 7

    /// The update and, in the same launch (`optimizer_update_gather`, on the main stream after any work beside that
    /// touches what either writes), the gather, for a batch whose indices fit in its parameters; else the two in turn.
    public func optimizerUpdate(_ update: ParameterUpdate) {
        guard let gather = update.thenGather, gather.indices.count <= min(inlineIndexLimit, Self.inlineIndexCapacity) else {
            enqueueUpdate(update, gather: nil)
            return update.gatherAfterwards(on: self)
        }
        enqueueUpdate(update, gather: gather)
    }

    /// `optimizerUpdate`, with `gather` in the same launch if given.
    private func enqueueUpdate(_ update: ParameterUpdate, gather: BatchGather?) {
        let (parameters, gradients, state) = (update.parameters, update.gradients, update.state)
        let (count, stateStride, step) = (update.count, update.stateStride, update.step)
        precondition(stateStride >= count, "state slots \(stateStride) apart for \(count) parameters")
        let slots = step.kind == .sgd ? (step.momentum > 0 ? 1 : 0) : 2
        // Where the update goes: after both streams' work (`join`) for the whole buffer; for one layer's part of it,
        // on the update stream, after both streams' work so far, when the side stream (or an earlier update) still
        // writes these gradients or touches these parameters or states, else on the main stream, without waiting.
        let wholeBuffer = count == stateStride || updateStream == nil
        var target = stream
        if wholeBuffer {
            join()
        } else if let gather, sidePending || updatePending {
            // The gather writes the batch's inputs and labels: on the main stream, after any work beside that
            // still touches them or what the update touches.
            if otherStreamsUse(parameters: parameters, gradients: gradients, state: state, count: count, stateStride: stateStride, slots: slots)
                || sideAccesses.uses(StreamAccesses.extent(gather.inputs, rows: gather.indices.count, stride: gather.features))
                || sideAccesses.uses(StreamAccesses.extent(gather.labels, rows: 1, stride: gather.indices.count)) {
                join()
            }
        } else if (sidePending || updatePending) && otherStreamsUse(parameters: parameters, gradients: gradients, state: state, count: count, stateStride: stateStride, slots: slots) {
            target = updateStream
        }
        let beside = target != stream
        let kind = Int32(Self.kernelCode(of: step.kind))
        // The step's values go as a parameter (`StepValues`): a recorded step sets them in its node before each replay.
        let updateBlocks = blocks(count, 256 * 4)  // 4: UPDATE_UNROLL
        let gatherBlocks = gather.map { self.gatherBlocks($0.features) } ?? 0
        let grid = (updateBlocks + gatherBlocks * UInt32(gather?.indices.count ?? 0), UInt32(1))
        let kernel = gather == nil ? "optimizer_update" : "optimizer_update_gather"
        // bf16: the update writes the parameters' bf16 copy too (where they have one yet).
        let mirror = updateMirror(parameters, count: count)
        if mirror.address == 0 { wroteWithoutMirror(parameters, count: count) }
        if let gather { wroteWithoutMirror(gather.inputs, count: gather.indices.count * gather.features) }
        if case .replaying(let graph) = mode {
            if beside { updatePending = true }
            record {
                guard let node = graph.updateNodes[parameters.address] else {
                    throw CUDAError("a recorded step's optimizer update of \(count) parameters was not found in its graph")
                }
                node.arguments.set(StepValues(step: step), at: Self.stepValuesArgument)
                if let gather { node.setLast(InlineIndices(indices: gather.indices)) }
                try setArguments(of: node, in: graph, gather == nil ? "optimizer_update" : "optimizer_update_gather")
            }
        } else {
            var arguments: [any KernelArgument] = [parameters, gradients, state, Int64(count), Int64(stateStride), kind, Int32(step.nesterov ? 1 : 0), StepValues(step: step), mirror]
            if let gather {
                arguments += [Int32(updateBlocks), gather.inputs, gather.labels, gather.values,
                              Int32(gather.valueType == .float32 ? 1 : 0), gather.sourceLabels, Int32(gather.features),
                              gather.normalization.scale, gather.normalization.shift, Int32(gatherBlocks), InlineIndices(indices: gather.indices)]
            }
            // Laid out now: the indices' buffer is the caller's, gone when the recording ends.
            if case .capturing(let graph) = mode { graph.updateLaunches[parameters.address] = (kernel, grid, ArgumentBlock(arguments)) }
            record {
                if beside {
                    try driver.check(driver.cuEventRecord(mainReady, stream), "cuEventRecord(main ready)")
                    try driver.check(driver.cuStreamWaitEvent(target, mainReady, 0), "cuStreamWaitEvent(main ready)")
                    if sidePending {
                        try driver.check(driver.cuEventRecord(sideReady, sideStream), "cuEventRecord(side ready)")
                        try driver.check(driver.cuStreamWaitEvent(target, sideReady, 0), "cuStreamWaitEvent(side ready)")
                    }
                }
                if !beside && wholeBuffer { mark("waits: the second stream's weight gradients") }
                try enqueueKernel(kernel, grid: grid, block: 256, on: target, arguments)
                if beside {
                    try driver.check(driver.cuEventRecord(updateDone, target), "cuEventRecord(update)")
                    updatePending = true
                }
            }
        }
        if beside {
            sideAccesses.read(StreamAccesses.extent(gradients, rows: 1, stride: count))
            sideAccesses.write(StreamAccesses.extent(parameters, rows: 1, stride: count))
            for slot in 0..<slots { sideAccesses.write(StreamAccesses.extent(state + slot * stateStride, rows: 1, stride: count)) }
        } else {
            mark("\(step.kind.rawValue) update of \(count) parameters\(gather.map { ", the next batch of \($0.indices.count) gathered" } ?? "")")
        }
    }

    /// The kernels' code for an optimizer (`optimizer_update`'s `kind`): 0 SGD, 1 Adam, 2 AdamW.
    static func kernelCode(of kind: OptimizerConfiguration.Kind) -> Int {
        switch kind {
        case .sgd: 0
        case .adam: 1
        case .adamw: 2
        }
    }
}
