import MNIST

/// An MLP resident on a backend: its parameters, gradients, optimizer state and the activations of a batch, each
/// one allocation made up front. A training step (`trainStep`) then allocates nothing.
///
/// The step crosses to the backend once: gather the batch from the resident dataset, forward, loss and its gradient,
/// backward, optimizer update, all queued on the backend; the loss and accuracy stay in backend memory
/// (`trainingMetrics`) until somebody reads them.
public final class Network {
    /// The architecture.
    public let spec: NetworkSpec
    /// Where each layer's weights and bias sit in the flat parameter buffer.
    public let layout: ParameterLayout
    /// The optimizer whose state the network holds.
    public let optimizer: OptimizerConfiguration
    /// Where the network's memory lives and its operations run.
    public let backend: any Backend
    /// The largest batch a step or an evaluation may use.
    public let maxBatch: Int
    /// Names this network in `TrainingStep`s.
    let serialNumber = nextSerialNumber()

    /// `[layout.count]` each.
    let parameters, gradients: DevicePointer<Float>
    /// `[optimizer.stateSlots × layout.count]`.
    let optimizerState: DevicePointer<Float>
    /// `[maxBatch, inputSize]`.
    let inputs: DevicePointer<Float>
    /// Layer `l`'s output, `[maxBatch, layerSizes[l + 1]]`.
    let activations: [DevicePointer<Float>]
    /// Two `[maxBatch, maxWidth]` buffers for the gradient flowing backward, used in turn.
    let gradientScratch: (DevicePointer<Float>, DevicePointer<Float>)
    /// `[maxBatch, outputSize]`: the loss's gradient with respect to the output layer's values. Its own buffer, not
    /// one of `gradientScratch`, so that a backend computing the output layer's weight gradient beside the next
    /// layer's backward (the cuda backend's second stream) is not made to wait before that backward writes.
    let outputGradient: DevicePointer<Float>
    let labels: DevicePointer<Int32>
    let predictions: DevicePointer<Int32>
    /// `[2]`: summed loss and correct count of training steps since the last reset.
    let trainingMetrics: DevicePointer<Float>
    /// `[2]`: the same for evaluations.
    let evaluationMetrics: DevicePointer<Float>

    /// Allocates the network on `backend` with zero parameters; set them with `setParameters`.
    /// - Parameters:
    ///   - spec: the architecture.
    ///   - optimizer: the optimizer whose state the network holds.
    ///   - backend: where the network's memory lives and its operations run.
    ///   - maxBatch: the largest batch a step or an evaluation may use.
    ///   - schedule: how training steps arrange their operations (every schedule gives the same results); nil lets
    ///     the backend choose (`Backend.runTrainingStep`). Tests pass one to check each schedule on every backend.
    /// - Throws: a backend error when memory runs out; `ConfigurationError` for a `maxBatch` below 1.
    public init(spec: NetworkSpec, optimizer: OptimizerConfiguration, backend: any Backend, maxBatch: Int,
                schedule: StepSchedule? = nil) throws {
        guard maxBatch >= 1 else {
            throw ConfigurationError(flag: "--batch-size", value: "\(maxBatch)", expected: "at least 1")
        }
        self.spec = spec
        self.layout = ParameterLayout(spec)
        self.optimizer = optimizer
        self.backend = backend
        self.maxBatch = maxBatch
        self.preferredSchedule = schedule
        let n = layout.count
        parameters = try backend.allocate(Float.self, count: n)
        gradients = try backend.allocate(Float.self, count: n)
        optimizerState = try backend.allocate(Float.self, count: max(1, optimizer.stateSlots * n))
        inputs = try backend.allocate(Float.self, count: maxBatch * spec.inputSize)
        activations = try spec.layerSizes.dropFirst().map { try backend.allocate(Float.self, count: maxBatch * $0) }
        gradientScratch = (
            try backend.allocate(Float.self, count: maxBatch * spec.maxWidth),
            try backend.allocate(Float.self, count: maxBatch * spec.maxWidth)
        )
        outputGradient = try backend.allocate(Float.self, count: maxBatch * spec.outputSize)
        labels = try backend.allocate(Int32.self, count: maxBatch)
        predictions = try backend.allocate(Int32.self, count: maxBatch)
        trainingMetrics = try backend.allocate(Float.self, count: 2)
        evaluationMetrics = try backend.allocate(Float.self, count: 2)
        prefetched = .allocate(capacity: maxBatch)
    }

    /// The schedule training steps ask the backend for (`init`'s `schedule`).
    let preferredSchedule: StepSchedule?

    deinit {
        prefetched.deallocate()
        for p in [parameters, gradients, optimizerState, inputs, gradientScratch.0, gradientScratch.1, outputGradient,
                  trainingMetrics, evaluationMetrics] + activations {
            backend.free(p)
        }
        for p in [labels, predictions] { backend.free(p) }
    }

    // MARK: Parameters and state

    /// Replaces all parameters (`[layout.count]`, the flat layout of `ParameterLayout`).
    public func setParameters(_ values: [Float]) {
        precondition(values.count == layout.count, "expected \(layout.count) parameters, got \(values.count)")
        values.withUnsafeBufferPointer { backend.upload($0, to: parameters) }
    }

    /// A copy of all parameters.
    public func parameterValues() -> [Float] { backend.download(parameters, count: layout.count) }

    /// A copy of the gradients of the last step.
    public func gradientValues() -> [Float] { backend.download(gradients, count: layout.count) }

    /// The optimizer's state, `[stateSlots × layout.count]`.
    public func optimizerStateValues() -> [Float] {
        backend.download(optimizerState, count: optimizer.stateSlots * layout.count)
    }

    /// Replaces the optimizer's state (from a checkpoint).
    public func setOptimizerState(_ values: [Float]) {
        precondition(values.count == optimizer.stateSlots * layout.count, "optimizer state of the wrong size")
        if !values.isEmpty { values.withUnsafeBufferPointer { backend.upload($0, to: optimizerState) } }
    }

    // MARK: Training

    /// One optimizer step on the samples `batch` of `data`: forward, loss, backward, update.
    ///
    /// The batch's summed loss and correct count are added to the training metrics (read them with
    /// `readTrainingMetrics`). With `next`, the samples of the step that will follow, a backend may gather them at
    /// the end of this step (`StepSchedule.gathersNextBatch`), and that step then starts with its first product; the
    /// results are the same either way.
    /// - Precondition: `1 ≤ batch.count ≤ maxBatch`; indices within `data`.
    public func trainStep(_ data: ResidentDataset, batch: ArraySlice<Int32>, step: OptimizerStep, next: ArraySlice<Int32>? = nil) {
        trainStep(data, batch: batch, step: step, next: next, tunes: false)
    }

    /// `trainStep`, with `tunes` passed to the backend (`TrainingStep.tunes`).
    private func trainStep(_ data: ResidentDataset, batch: ArraySlice<Int32>, step: OptimizerStep, next: ArraySlice<Int32>?, tunes: Bool) {
        let rows = batch.count
        precondition(rows >= 1 && rows <= maxBatch, "batch of \(rows) rows for a network sized for \(maxBatch)")
        precondition(data.featureCount == spec.inputSize, "data has \(data.featureCount) features, network expects \(spec.inputSize)")
        precondition(data.isRegression == spec.loss.isRegression, "\(spec.loss.rawValue) loss on \(data.isRegression ? "regression targets" : "class labels")")
        let frame = TrainingStep(
            network: serialNumber, data: data.serialNumber, rows: rows, parameters: layout.count,
            batchGathered: holdsPrefetched(data, batch), nextRows: next?.count ?? 0, preferredSchedule: preferredSchedule,
            tunes: tunes)
        prefetchedCount = 0
        var gatheredNext = false
        backend.runTrainingStep(frame) { schedule in
            let gathersNext = schedule.gathersNextBatch && next?.count == rows
            // gather → forward → loss and the output layer's backward → the hidden layers' backward → update.
            if !frame.batchGathered { gather(data, batch) }
            forwardHidden(rows: rows)
            var gradient = outputLayerBackward(data, rows: rows, step: step, schedule: schedule)
            var l = spec.layerCount - 2
            while l > 0 {
                gradient = hiddenLayerBackward(l, rows: rows, gradient: gradient, step: step, schedule: schedule)
                l -= 1
            }
            firstLayerWeightGradient(rows: rows, gradient: gradient)
            if gathersNext, let next {
                next.withUnsafeBufferPointer { indices in
                    lastUpdate(step: step, schedule: schedule, thenGather: batchGather(data, indices))
                }
            } else {
                lastUpdate(step: step, schedule: schedule, thenGather: nil)
            }
            gatheredNext = gathersNext
        }
        if gatheredNext, let next {
            next.withUnsafeBufferPointer { indices in
                for i in 0..<indices.count { prefetched[i] = indices[i] }
            }
            prefetchedCount = rows
            prefetchedData = data.serialNumber
        }
    }

    /// The output layer with the loss and its gradient, and its backward: its weight gradient, and the gradient with
    /// respect to the layer below's pre-activation values (returned) with that layer's bias gradient. A network of
    /// one layer stops at the loss's gradient (returned), the first layer's weight gradient following.
    private func outputLayerBackward(_ data: ResidentDataset, rows: Int, step: OptimizerStep, schedule: StepSchedule) -> DevicePointer<Float> {
        let last = spec.layerCount - 1, layer = layout.layers[last]
        let backward = last == 0 ? nil : LayerBackward(
            weightGradient: gradients + layer.weightOffset, inputGradient: gradientScratch.0,
            inputBiasGradient: gradients + layout.layers[last - 1].biasOffset, inputActivation: spec.activation(ofLayer: last - 1))
        if let table = data.targets {
            backend.regressionOutputLayerLoss(
                outputs: activations[last], gradient: outputGradient, biasGradient: gradients + layer.biasOffset,
                metrics: trainingMetrics, inputs: last == 0 ? inputs : activations[last - 1],
                weights: parameters + layer.weightOffset, bias: parameters + layer.biasOffset,
                targets: RegressionTargets(rows: labels, table: table), rows: rows, inputSize: layer.inputs,
                outputSize: layer.outputs, loss: spec.loss, gradientScale: 1 / Float(rows), backward: backward)
        } else {
            backend.outputLayerLoss(
                outputs: activations[last], gradient: outputGradient, biasGradient: gradients + layer.biasOffset,
                metrics: trainingMetrics, predictions: nil, inputs: last == 0 ? inputs : activations[last - 1],
                weights: parameters + layer.weightOffset, bias: parameters + layer.biasOffset, labels: labels, rows: rows,
                inputSize: layer.inputs, outputSize: layer.outputs, loss: spec.loss, gradientScale: 1 / Float(rows),
                backward: backward)
        }
        guard last > 0 else { return outputGradient }
        // The output layer's gradients are final and nothing reads its weights again this step.
        updateLayer(last, step, schedule)
        return gradientScratch.0
    }

    /// Hidden layer `l`'s backward from `gradient` (dZ_l): its weight gradient, and dZ_{l-1} (returned, in the
    /// scratch buffer `gradient` is not) with layer `l - 1`'s bias gradient.
    private func hiddenLayerBackward(_ l: Int, rows: Int, gradient: DevicePointer<Float>, step: OptimizerStep,
                                     schedule: StepSchedule) -> DevicePointer<Float> {
        let layer = layout.layers[l]
        let other = gradient == gradientScratch.0 ? gradientScratch.1 : gradientScratch.0
        backend.denseBackward(
            weightGradient: gradients + layer.weightOffset, inputGradient: other,
            inputBiasGradient: gradients + layout.layers[l - 1].biasOffset, gradient: gradient,
            inputs: activations[l - 1], weights: parameters + layer.weightOffset, rows: rows,
            inputSize: layer.inputs, outputSize: layer.outputs, inputActivation: spec.activation(ofLayer: l - 1))
        // Layer l's gradients are final (its bias gradient came with the layer above's backward) and nothing reads
        // its weights again this step.
        updateLayer(l, step, schedule)
        return other
    }

    /// The first layer's weight gradient: dW [in, out] = Xᵀ [in, B] · dZ [B, out] (no input gradient needed).
    private func firstLayerWeightGradient(rows: Int, gradient: DevicePointer<Float>) {
        let first = layout.layers[0]
        backend.gemm(
            transposeA: true, transposeB: false, m: first.inputs, n: first.outputs, k: rows,
            alpha: 1, a: inputs, lda: first.inputs, b: gradient, ldb: first.outputs,
            beta: 0, c: gradients + first.weightOffset, ldc: first.outputs)
    }

    /// The step's last update: the first layer's, or every layer's at once; with the next batch's gather after it.
    /// Every reader of the inputs and labels has been queued by then.
    private func lastUpdate(step: OptimizerStep, schedule: StepSchedule, thenGather: BatchGather?) {
        let (offset, count) = schedule.updatesEachLayer ? parameterRange(ofLayer: 0) : (0, layout.count)
        backend.optimizerUpdate(ParameterUpdate(
            parameters: parameters + offset, gradients: gradients + offset, state: optimizerState + offset,
            count: count, stateStride: layout.count, step: step, thenGather: thenGather))
    }

    /// The indices of the batch the last step gathered for the next (`prefetchedCount` of them, 0: none, of the
    /// dataset numbered `prefetchedData`), kept in `maxBatch` ints allocated once.
    private let prefetched: UnsafeMutablePointer<Int32>
    private var prefetchedCount = 0
    private var prefetchedData = -1

    /// Whether the inputs and labels hold `batch` of `data`, gathered by the step before.
    private func holdsPrefetched(_ data: ResidentDataset, _ batch: ArraySlice<Int32>) -> Bool {
        guard prefetchedCount == batch.count, prefetchedData == data.serialNumber else { return false }
        return batch.withUnsafeBufferPointer { b in
            for i in 0..<b.count where b[i] != prefetched[i] { return false }
            return true
        }
    }

    /// Layer `l`'s optimizer update, if the schedule updates layer by layer (not the first layer's: that is
    /// `lastUpdate`).
    private func updateLayer(_ l: Int, _ step: OptimizerStep, _ schedule: StepSchedule) {
        guard schedule.updatesEachLayer else { return }
        let (offset, count) = parameterRange(ofLayer: l)
        backend.optimizerUpdate(ParameterUpdate(
            parameters: parameters + offset, gradients: gradients + offset, state: optimizerState + offset,
            count: count, stateStride: layout.count, step: step))
    }

    /// Where layer `l`'s parameters sit in the flat buffers: its weights, then its bias, contiguous.
    private func parameterRange(ofLayer l: Int) -> (offset: Int, count: Int) {
        let layer = layout.layers[l]
        return (layer.weightOffset, layer.weightCount + layer.outputs)
    }

    /// Runs every step shape a training run will use (a training step of each batch size and kind, three times: the
    /// backend may plan it the first time and record it the next two, where the kinds are a step that gathers its
    /// batch or finds it gathered, and gathers the next one or not; an evaluation of each size), then puts the parameters,
    /// the optimizer state and the training metrics back as they were: the one-time costs of a backend (the cuda
    /// backend's first launches, product plans and graph recordings, and the choices it makes by timing whole steps
    /// of the first batch size, `TrainingStep.tunes`) then fall before the training instead of in its first epoch, as
    /// a benchmark's warm-up does.
    /// - Parameters:
    ///   - source: the training data; the steps take the first samples of each of its resident parts (a stream's
    ///     windows each have recordings of their own).
    ///   - batchSizes: the training batch sizes (each at most `maxBatch` and the data's count).
    ///   - evaluation: the evaluation data and its batch sizes (each at most `maxBatch` and its count), if any.
    ///   - step: the optimizer values for the warm-up steps (their effect is undone).
    public func warmUp(_ source: any BatchSource, batchSizes: [Int], evaluation: (data: any BatchSource, batchSizes: [Int])?,
                       step: OptimizerStep) {
        let savedParameters = parameterValues(), savedState = optimizerStateValues()
        for data in source.residentParts {
            warmUpSteps(data, batchSizes: batchSizes, step: step)
        }
        if let evaluation {
            for data in evaluation.data.residentParts {
                for rows in evaluation.batchSizes where rows >= 1 && rows <= min(maxBatch, data.count) {
                    // An evaluation's operations on a batch of this size (what `evaluate` runs on each batch; a
                    // stream's window keeps no host copy of a regression's targets for `evaluate` to sum errors with).
                    gather(data, (0..<Int32(rows)).map { $0 }[...])
                    forwardHidden(rows: rows)
                    outputLayer(data, rows: rows, gradient: nil, biasGradient: nil, metrics: evaluationMetrics,
                                predictions: nil, gradientScale: 1)
                }
            }
        }
        setParameters(savedParameters)
        setOptimizerState(savedState)
        resetTrainingMetrics()
    }

    /// `warmUp`'s training steps on one resident dataset.
    private func warmUpSteps(_ data: ResidentDataset, batchSizes: [Int], step: OptimizerStep) {
        for rows in batchSizes where rows >= 1 && rows <= min(maxBatch, data.count) {
            let batch = (0..<Int32(rows)).map { $0 }
            // The step an epoch repeats (the full batch, gathered by the step before, gathering the next one): the
            // backend's choices for it first, so that the recordings below are made with them. The step before it
            // gathers its batch.
            if rows == batchSizes.first {
                trainStep(data, batch: batch[...], step: step, next: batch[...])
                trainStep(data, batch: batch[...], step: step, next: batch[...], tunes: true)
            }
            // Each kind of step a training run takes (see `trainStep`'s `next`): gathering its batch or not, and
            // the next one or not; three times, for a backend that runs a step shape once and then records it twice.
            for _ in 0..<3 {
                trainStep(data, batch: batch[...], step: step, next: batch[...])
                trainStep(data, batch: batch[...], step: step, next: batch[...])
                trainStep(data, batch: batch[...], step: step)
                trainStep(data, batch: batch[...], step: step)
            }
        }
    }

    /// The summed loss and the number of correct predictions of the training steps since the last reset.
    /// The trainer calls this after every step on host-memory backends, so it reads into stack memory, not an array.
    public func readTrainingMetrics() -> (lossSum: Float, correct: Float) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2) { m in
            backend.download(trainingMetrics, count: 2, into: m)
            return (m[0], m[1])
        }
    }

    /// Sets the training metrics back to zero.
    public func resetTrainingMetrics() {
        [Float(0), 0].withUnsafeBufferPointer { backend.upload($0, to: trainingMetrics) }
    }

    // MARK: Inference

    /// The result of an evaluation.
    public struct Evaluation: Sendable {
        /// Mean loss per sample.
        public var loss: Double
        /// Fraction of samples whose largest output is at the label.
        public var accuracy: Double
        /// Samples evaluated.
        public var count: Int
        /// The predicted class of each sample, in the order evaluated (when asked for).
        public var predictions: [Int32]
        /// A regression's errors, in the units of the stored targets; nil for classification (whose `accuracy` this
        /// replaces: a regression's is 0).
        public var regression: RegressionErrors?
    }

    /// Loss and accuracy (or a regression's errors) over the samples `indices` of `data`, in batches of at most
    /// `maxBatch`.
    public func evaluate(_ data: ResidentDataset, indices: [Int32], keepPredictions: Bool = false) -> Evaluation {
        // A resident dataset's pass has nothing that can fail.
        try! evaluate(source: data, indices: indices, keepPredictions: keepPredictions)
    }

    /// `evaluate` on any source of batches (a streamed dataset's can fail: a copy, the producer).
    /// - Throws: a backend failure.
    public func evaluate(source data: any BatchSource, indices: [Int32], keepPredictions: Bool = false) throws -> Evaluation {
        precondition(data.isRegression == spec.loss.isRegression, "\(spec.loss.rawValue) loss on \(data.isRegression ? "regression targets" : "class labels")")
        [Float(0), 0].withUnsafeBufferPointer { backend.upload($0, to: evaluationMetrics) }
        var predicted = [Int32]()
        if keepPredictions { predicted.reserveCapacity(indices.count) }
        var buffer = [Int32](repeating: 0, count: maxBatch)
        // A regression's errors are summed on the host, from the outputs and the targets, per output.
        let k = spec.outputSize
        var errors = data.isRegression ? RegressionErrors(outputs: k) : nil
        let table = data.hostTargets
        let pass = try data.pass(stride(from: 0, to: indices.count, by: maxBatch).map { indices[$0..<min($0 + maxBatch, indices.count)] })
        defer { pass.end() }
        while let batch = try pass.next() {
            let rows = batch.rows.count
            gather(batch.data, batch.rows)
            forwardHidden(rows: rows)
            outputLayer(batch.data, rows: rows, gradient: nil, biasGradient: nil, metrics: evaluationMetrics,
                        predictions: keepPredictions && !data.isRegression ? predictions : nil, gradientScale: 1)
            if errors != nil {
                let outputs = backend.download(activations[spec.layerCount - 1], count: rows * k)
                for (r, sample) in batch.samples.enumerated() {
                    let s = Int(sample)
                    errors!.add(outputs: outputs[r * k..<(r + 1) * k], targets: table[s * k..<(s + 1) * k])
                }
            } else if keepPredictions {
                buffer.withUnsafeMutableBufferPointer { backend.download(predictions, count: rows, into: $0) }
                predicted += buffer[0..<rows]
            }
        }
        let m = backend.download(evaluationMetrics, count: 2)
        let n = max(indices.count, 1)
        return Evaluation(loss: Double(m[0]) / Double(n), accuracy: errors == nil ? Double(m[1]) / Double(n) : 0,
                          count: indices.count, predictions: predicted, regression: errors)
    }

    /// The outputs (logits for cross-entropy) for `count` inputs given as a `[count, inputSize]` Float matrix.
    public func outputs(for inputValues: [Float], count: Int) -> [Float] {
        precondition(inputValues.count == count * spec.inputSize, "expected \(count) × \(spec.inputSize) inputs")
        var out = [Float]()
        out.reserveCapacity(count * spec.outputSize)
        var start = 0
        while start < count {
            let rows = min(maxBatch, count - start)
            inputValues.withUnsafeBufferPointer {
                backend.upload(UnsafeBufferPointer(rebasing: $0[start * spec.inputSize..<(start + rows) * spec.inputSize]), to: inputs)
            }
            forward(rows: rows)
            out += backend.download(activations[spec.layerCount - 1], count: rows * spec.outputSize)
            start += rows
        }
        return out
    }

    // MARK: Steps of a pass

    private func gather(_ data: ResidentDataset, _ batch: ArraySlice<Int32>) {
        prefetchedCount = 0
        precondition(data.featureCount == spec.inputSize, "data has \(data.featureCount) features, network expects \(spec.inputSize)")
        batch.withUnsafeBufferPointer { backend.gatherBatch(batchGather(data, $0)) }
    }

    /// The gather of `indices` of `data` into the network's inputs and labels.
    private func batchGather(_ data: ResidentDataset, _ indices: UnsafeBufferPointer<Int32>) -> BatchGather {
        BatchGather(inputs: inputs, labels: labels, from: data, indices: indices,
                    normalization: data.valueType == .uint8 ? normalization : .identity)
    }

    /// The map from pixel bytes to inputs applied while gathering (set it before training: `[0, 1]` by default).
    /// Float samples are gathered as they are (standardise them beforehand: `Standardization`).
    public var normalization = Normalization.unit

    /// Every layer's forward.
    private func forward(rows: Int) {
        forwardHidden(rows: rows)
        let l = layout.layers.count - 1, layer = layout.layers[l]
        backend.denseForward(
            outputs: activations[l], inputs: l == 0 ? inputs : activations[l - 1], weights: parameters + layer.weightOffset,
            bias: parameters + layer.biasOffset, rows: rows, inputSize: layer.inputs, outputSize: layer.outputs,
            activation: spec.activation(ofLayer: l))
    }

    /// The output layer with the loss (see `Backend.outputLayerLoss`), after `forwardHidden`.
    private func outputLayer(_ data: ResidentDataset, rows: Int, gradient: DevicePointer<Float>?, biasGradient: DevicePointer<Float>?,
                             metrics: DevicePointer<Float>, predictions: DevicePointer<Int32>?, gradientScale: Float) {
        let l = layout.layers.count - 1, layer = layout.layers[l]
        if let table = data.targets {
            return backend.regressionOutputLayerLoss(
                outputs: activations[l], gradient: gradient, biasGradient: biasGradient, metrics: metrics,
                inputs: l == 0 ? inputs : activations[l - 1], weights: parameters + layer.weightOffset,
                bias: parameters + layer.biasOffset, targets: RegressionTargets(rows: labels, table: table), rows: rows,
                inputSize: layer.inputs, outputSize: layer.outputs, loss: spec.loss, gradientScale: gradientScale, backward: nil)
        }
        backend.outputLayerLoss(
            outputs: activations[l], gradient: gradient, biasGradient: biasGradient, metrics: metrics,
            predictions: predictions, inputs: l == 0 ? inputs : activations[l - 1],
            weights: parameters + layer.weightOffset, bias: parameters + layer.biasOffset, labels: labels,
            rows: rows, inputSize: layer.inputs, outputSize: layer.outputs, loss: spec.loss, gradientScale: gradientScale,
            backward: nil)
    }

    /// The forward of every layer but the output layer.
    private func forwardHidden(rows: Int) {
        // Plain index loops here and in `trainStep`: generic sequence wrappers (enumerated, stride) allocate in
        // debug builds, and the allocation test runs in one.
        for l in 0..<layout.layers.count - 1 {
            let layer = layout.layers[l]
            let x = l == 0 ? inputs : activations[l - 1]
            // A [B, out] = f(X [B, in] · W [in, out] + b)
            backend.denseForward(
                outputs: activations[l], inputs: x, weights: parameters + layer.weightOffset,
                bias: parameters + layer.biasOffset, rows: rows, inputSize: layer.inputs, outputSize: layer.outputs,
                activation: spec.activation(ofLayer: l))
        }
    }
}
