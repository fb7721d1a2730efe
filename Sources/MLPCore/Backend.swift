import MNIST
import Synchronization

/// The operations one training step needs, implemented once per backend (naive, cpu, cuda).
///
/// Conventions, as in llm.c: outputs first, then inputs, then sizes; matrices are row-major; a comment gives each
/// buffer's shape. `B` is the number of rows of a batch. Operations are issued in order and may run
/// asynchronously (a GPU backend queues them on a stream): results are visible after `download` or `synchronize`.
///
/// Memory is addressed with `DevicePointer`; a backend reads and writes only memory it allocated.
public protocol Backend: AnyObject {
    /// Short name: "naive", "cpu", "cuda".
    var name: String { get }
    /// One line about the hardware and libraries in use, for logs and results.
    var deviceDescription: String { get }
    /// Whether memory is the host's, so that reading a value back costs nothing (the trainer then checks the
    /// loss after every step).
    var isHostMemory: Bool { get }

    // MARK: Memory

    /// Allocates `count` zero-filled elements.
    /// - Throws: when the backend is out of memory.
    func allocate<T>(_ type: T.Type, count: Int) throws -> DevicePointer<T>
    /// Releases memory from `allocate`.
    func free<T>(_ pointer: DevicePointer<T>)
    /// Copies host elements into backend memory.
    func upload<T>(_ source: UnsafeBufferPointer<T>, to destination: DevicePointer<T>)
    /// Copies backend elements to the host, after all earlier operations have finished.
    func download<T>(_ source: DevicePointer<T>, count: Int, into destination: UnsafeMutableBufferPointer<T>)
    /// Waits for every queued operation and reports an asynchronous failure.
    func synchronize() throws

    /// The start of a training step's operations (see the extension below; the default does nothing).
    func beginStep(_ key: StepKey)
    /// The end of a training step's operations.
    func endStep()
    /// Makes the choices that only whole training steps can tell apart, running `step` (which queues one training
    /// step of the shape to tune, on data whose changes the caller undoes) as often as it needs. `Network.warmUp`
    /// calls it. The default does nothing; the cuda backend chooses its products' algorithms there.
    func tuneSteps(_ step: () -> Void)

    // MARK: Batches

    /// Builds a batch from a dataset resident in backend memory.
    ///
    /// `inputs[r, f] = pixels[indices[r], f] × normalization.scale + normalization.shift`,
    /// `labels[r] = sourceLabels[indices[r]]`.
    ///
    /// The indices are in host memory: the backend decides how they reach the device (host backends read them in
    /// place; the cuda backend copies them from pinned memory, a copy that its recorded steps replay).
    /// - Parameters:
    ///   - inputs: `[B, features]`, written.
    ///   - labels: `[B]`, written.
    ///   - pixels: `[N, features]` bytes of the whole dataset.
    ///   - sourceLabels: `[N]` bytes.
    ///   - indices: the `B` sample indices into `0..<N`, in host memory (read before the call returns or, on a
    ///     device, copied by then).
    ///   - features: values per sample (784 for MNIST).
    ///   - normalization: the map from a byte to an input value.
    func gatherBatch(
        inputs: DevicePointer<Float>, labels: DevicePointer<Int32>,
        pixels: DevicePointer<UInt8>, sourceLabels: DevicePointer<UInt8>, indices: UnsafeBufferPointer<Int32>,
        features: Int, normalization: Normalization)

    // MARK: Layers

    /// General matrix product, row-major: `C = alpha · op(A) · op(B) + beta · C`, where `op(X)` is `X` or `Xᵀ`.
    /// `op(A)` is `[m, k]`, `op(B)` is `[k, n]`, `C` is `[m, n]`; `lda`, `ldb`, `ldc` are the row strides of the
    /// matrices as stored. With `beta == 0`, `C` is not read (it may hold anything, NaN included).
    func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: DevicePointer<Float>, lda: Int, b: DevicePointer<Float>, ldb: Int,
        beta: Float, c: DevicePointer<Float>, ldc: Int)

    /// Forward of a layer's bias and activation, in place: `values[r, c] = f(values[r, c] + bias[c])`.
    /// - Parameters: values `[rows, columns]`; bias `[columns]`.
    func biasActivationForward(
        values: DevicePointer<Float>, bias: DevicePointer<Float>, rows: Int, columns: Int, activation: Activation)

    /// Backward of `biasActivationForward`, fused with the bias gradient:
    /// `gradient[r, c] *= f'(z)` (from the stored outputs), then `biasGradient[c] = Σ_r gradient[r, c]`.
    /// - Parameters: gradient `[rows, columns]`, in place; biasGradient `[columns]`, overwritten;
    ///   outputs `[rows, columns]`, the forward's `values`.
    func activationBackward(
        gradient: DevicePointer<Float>, biasGradient: DevicePointer<Float>, outputs: DevicePointer<Float>,
        rows: Int, columns: Int, activation: Activation)

    /// The loss of a batch, and optionally its gradient, in one pass.
    ///
    /// - Parameters:
    ///   - gradient: `[rows, columns]`, if given: `gradientScale × ∂loss_r/∂outputs[r, c]` (the trainer passes 1/B
    ///     so that the gradient is of the batch mean).
    ///   - metrics: `[2]`, accumulated: `metrics[0] += Σ_r loss_r`, `metrics[1] += number of rows whose largest
    ///     output is at the label` (the first maximum wins ties).
    ///   - predictions: `[rows]`, if given: the index of each row's largest output.
    ///   - outputs: `[rows, columns]`, the last layer's values (logits for cross-entropy).
    ///   - labels: `[rows]`, each in `0..<columns`.
    ///   - rows: the batch's rows.
    ///   - columns: the outputs per row (classes).
    ///   - loss: softmax cross-entropy (on logits) or squared error (against the one-hot label).
    ///   - gradientScale: the factor applied to the gradient.
    func lossForwardBackward(
        gradient: DevicePointer<Float>?, metrics: DevicePointer<Float>, predictions: DevicePointer<Int32>?,
        outputs: DevicePointer<Float>, labels: DevicePointer<Int32>, rows: Int, columns: Int,
        loss: Loss, gradientScale: Float)

    // MARK: Fused layers

    /// Whether `denseForward` and `denseBackward` do more than the default composition of the other operations
    /// (a profiler then times them whole instead of their parts). The default is `false`.
    var fusesDenseLayers: Bool { get }

    /// Whether `outputLayerLoss` and `outputLayerLossBackward` do more than their default compositions (a profiler
    /// then times them whole). The default is `fusesDenseLayers`.
    var fusesOutputLayer: Bool { get }

    /// A dense layer's forward in one call: `outputs = f(inputs · weights + bias)`.
    ///
    /// The default is `gemm` then `biasActivationForward`; a backend overrides it where the product's epilogue
    /// can add the bias and apply the activation (the cuda backend's cuBLASLt epilogues).
    /// - Parameters: outputs `[rows, outputSize]`, written; inputs `[rows, inputSize]`; weights
    ///   `[inputSize, outputSize]`; bias `[outputSize]`.
    func denseForward(
        outputs: DevicePointer<Float>, inputs: DevicePointer<Float>, weights: DevicePointer<Float>,
        bias: DevicePointer<Float>, rows: Int, inputSize: Int, outputSize: Int, activation: Activation)

    /// The backward of a dense layer that is not the first, given `gradient`, the loss's gradient with respect to
    /// the layer's pre-activation values `Z` (`[rows, outputSize]`):
    /// - `weightGradient = inputsᵀ · gradient` (`[inputSize, outputSize]`, overwritten);
    /// - `inputGradient = (gradient · weightsᵀ) ⊙ f'(inputs)`, the gradient with respect to the previous layer's
    ///   pre-activation values, where `f` is that layer's activation (`inputActivation`) and `inputs` its stored
    ///   outputs (`[rows, inputSize]`, overwritten);
    /// - `inputBiasGradient[c] = Σ_r inputGradient[r, c]`, the previous layer's bias gradient (`[inputSize]`,
    ///   overwritten).
    ///
    /// The default is two `gemm`s and `activationBackward`; the cuda backend folds the activation derivative and
    /// the column sums into the second product's epilogue.
    func denseBackward(
        weightGradient: DevicePointer<Float>, inputGradient: DevicePointer<Float>,
        inputBiasGradient: DevicePointer<Float>, gradient: DevicePointer<Float>, inputs: DevicePointer<Float>,
        weights: DevicePointer<Float>, rows: Int, inputSize: Int, outputSize: Int, inputActivation: Activation)

    /// The output layer and the loss in one call: `outputs = inputs · weights + bias` (no activation), then the
    /// loss of those outputs exactly as `lossForwardBackward` defines it (`gradient`, `metrics`, `predictions`),
    /// and, when `gradient` is given, the output layer's bias gradient `biasGradient[c] = Σ_r gradient[r, c]`.
    ///
    /// The default composes `denseForward`, `lossForwardBackward` and `activationBackward`; the cuda backend runs
    /// it as one kernel when the layer is narrow (a classifier's ten outputs).
    /// - Parameters: outputs `[rows, outputSize]`, written; gradient `[rows, outputSize]`; biasGradient
    ///   `[outputSize]` (needed with `gradient`); inputs `[rows, inputSize]`; weights `[inputSize, outputSize]`;
    ///   bias `[outputSize]`; labels `[rows]`.
    func outputLayerLoss(
        outputs: DevicePointer<Float>, gradient: DevicePointer<Float>?, biasGradient: DevicePointer<Float>?,
        metrics: DevicePointer<Float>, predictions: DevicePointer<Int32>?, inputs: DevicePointer<Float>,
        weights: DevicePointer<Float>, bias: DevicePointer<Float>, labels: DevicePointer<Int32>,
        rows: Int, inputSize: Int, outputSize: Int, loss: Loss, gradientScale: Float)

    /// The output layer, the loss and the output layer's whole backward in one call, as a training step needs them:
    /// exactly `outputLayerLoss` (with its `gradient` and `biasGradient`) followed by `denseBackward` of the same
    /// layer from that gradient (`weightGradient`, `inputGradient`, `inputBiasGradient`, through
    /// `inputActivation`, the previous layer's).
    ///
    /// The default is those two calls; the cuda backend computes the input gradient inside the output layer's
    /// kernel when the layer is narrow, and its column sums beside on a second stream, which takes a product and a
    /// pass off the step's critical path.
    /// - Parameters: as `outputLayerLoss` and `denseBackward`; `inputs` (`[rows, inputSize]`) are the previous
    ///   layer's stored outputs.
    func outputLayerLossBackward(
        outputs: DevicePointer<Float>, gradient: DevicePointer<Float>, biasGradient: DevicePointer<Float>,
        metrics: DevicePointer<Float>, inputs: DevicePointer<Float>, weights: DevicePointer<Float>,
        bias: DevicePointer<Float>, labels: DevicePointer<Int32>, rows: Int, inputSize: Int, outputSize: Int,
        loss: Loss, gradientScale: Float, weightGradient: DevicePointer<Float>, inputGradient: DevicePointer<Float>,
        inputBiasGradient: DevicePointer<Float>, inputActivation: Activation)

    // MARK: Optimizer

    /// One optimizer update over `count` parameters held in one flat buffer: every layer at once, or one layer's
    /// part of the network's buffer (see `updatesEachLayer`).
    ///
    /// - Parameters:
    ///   - parameters: `[count]`, updated in place.
    ///   - gradients: `[count]`, read.
    ///   - state: the optimizer's state slots, `stateStride` floats apart: slot `s` of parameter `i` at
    ///     `state + s·stateStride + i` (momentum for SGD; first and second moments for Adam), updated in place.
    ///   - count: the number of parameters.
    ///   - stateStride: the distance between the state's slots, at least `count` (the whole buffer's parameter
    ///     count when `parameters` is one layer's part of it).
    ///   - step: hyperparameters and the 1-based step number; see `OptimizerStep` for the formulas.
    func optimizerUpdate(
        parameters: DevicePointer<Float>, gradients: DevicePointer<Float>, state: DevicePointer<Float>,
        count: Int, stateStride: Int, step: OptimizerStep)

    /// Whether a network of `parameters` parameters should have each layer updated as soon as that layer's
    /// gradients are final (in the backward, last layer first) instead of all at once at the end of a step. The
    /// results are the same; a backend that can run one layer's update beside the backward of the layers below says
    /// yes where that pays (the cuda backend, for large networks); the others keep the one update, one pass over the
    /// buffer.
    func updatesEachLayer(parameters: Int) -> Bool

    /// Whether `optimizerUpdate(…, thenGather:)` gathers a batch of `rows` rows within the update's own work, so
    /// that a step can end by gathering the next step's batch at no cost of its own (a GPU backend saves the next
    /// step the launch it would start with). `Network` asks before each step; where the answer is false (the
    /// default) each step gathers its own batch first.
    func gathersWithUpdates(rows: Int) -> Bool

    /// `optimizerUpdate`, then the gather `gather` (into buffers that nothing else reads or writes in this step
    /// after the update: the next step's batch), in one launch where the backend can. Default: the two in turn.
    func optimizerUpdate(
        parameters: DevicePointer<Float>, gradients: DevicePointer<Float>, state: DevicePointer<Float>,
        count: Int, stateStride: Int, step: OptimizerStep, thenGather gather: BatchGather)

    // MARK: Whole steps

    /// A network's whole training step as one operation, if this backend has one for it (see `FusedTrainingStep`);
    /// nil to run steps op by op. The default is nil.
    /// - Parameters:
    ///   - buffers: the network's buffers, which the step reads and writes.
    ///   - preferred: nil lets the backend decide where its fused step pays; true asks for it wherever the backend
    ///     can run it; false is never passed (the network then does not ask).
    /// - Throws: a backend error when the step's own scratch cannot be allocated.
    func makeFusedStep(_ buffers: FusedStepBuffers, preferred: Bool?) throws -> (any FusedTrainingStep)?
}

/// Step boundaries, for backends that record a training step once and replay it (a GPU backend's CUDA graph).
///
/// `Network.trainStep` calls `beginStep(_:)` before its operations and `endStep()` after them. Between the two,
/// the same `key` always brings the same sequence of operations on the same buffers and sizes; only the contents
/// of uploads (the batch's indices, the optimizer's step values) change. A backend may therefore record the
/// sequence the first time and afterwards only refresh the uploaded values and replay it.
extension Backend {
    /// Does nothing: a backend without recordings runs each operation as it comes.
    public func beginStep(_ key: StepKey) {}
    /// Does nothing.
    public func endStep() {}
    /// Does nothing.
    public func tuneSteps(_ step: () -> Void) {}
}

extension Backend {
    /// `optimizerUpdate` over one whole buffer, its state's slots `count` apart.
    public func optimizerUpdate(
        parameters: DevicePointer<Float>, gradients: DevicePointer<Float>, state: DevicePointer<Float>,
        count: Int, step: OptimizerStep
    ) {
        optimizerUpdate(parameters: parameters, gradients: gradients, state: state, count: count, stateStride: count, step: step)
    }

    /// `false`: one update over every layer at the end of a step.
    public func updatesEachLayer(parameters: Int) -> Bool { false }

    /// `false`: each step gathers its own batch.
    public func gathersWithUpdates(rows: Int) -> Bool { false }

    /// The update, then the gather.
    public func optimizerUpdate(
        parameters: DevicePointer<Float>, gradients: DevicePointer<Float>, state: DevicePointer<Float>,
        count: Int, stateStride: Int, step: OptimizerStep, thenGather gather: BatchGather
    ) {
        optimizerUpdate(parameters: parameters, gradients: gradients, state: state, count: count, stateStride: stateStride, step: step)
        gatherBatch(inputs: gather.inputs, labels: gather.labels, pixels: gather.pixels, sourceLabels: gather.sourceLabels,
                    indices: gather.indices, features: gather.features, normalization: gather.normalization)
    }
}

/// The arguments of a `gatherBatch` that a backend may queue with other work (`optimizerUpdate(…, thenGather:)`).
public struct BatchGather {
    public var inputs: DevicePointer<Float>
    public var labels: DevicePointer<Int32>
    public var pixels: DevicePointer<UInt8>
    public var sourceLabels: DevicePointer<UInt8>
    /// In host memory, read before the call that takes the gather returns.
    public var indices: UnsafeBufferPointer<Int32>
    public var features: Int
    public var normalization: Normalization

    public init(inputs: DevicePointer<Float>, labels: DevicePointer<Int32>, pixels: DevicePointer<UInt8>, sourceLabels: DevicePointer<UInt8>,
                indices: UnsafeBufferPointer<Int32>, features: Int, normalization: Normalization) {
        self.inputs = inputs
        self.labels = labels
        self.pixels = pixels
        self.sourceLabels = sourceLabels
        self.indices = indices
        self.features = features
        self.normalization = normalization
    }
}

extension Backend {
    /// `false`: the fused layer operations are the compositions below.
    public var fusesDenseLayers: Bool { false }
    /// `fusesDenseLayers`.
    public var fusesOutputLayer: Bool { fusesDenseLayers }

    /// `gemm` then `biasActivationForward`: the definition of `denseForward`, for backends with nothing to fuse.
    public func denseForward(
        outputs: DevicePointer<Float>, inputs: DevicePointer<Float>, weights: DevicePointer<Float>,
        bias: DevicePointer<Float>, rows: Int, inputSize: Int, outputSize: Int, activation: Activation
    ) {
        unfusedDenseForward(outputs: outputs, inputs: inputs, weights: weights, bias: bias, rows: rows,
                            inputSize: inputSize, outputSize: outputSize, activation: activation)
    }

    /// The definition of `denseForward` in the unfused operations (also what a fusing backend falls back to).
    public func unfusedDenseForward(
        outputs: DevicePointer<Float>, inputs: DevicePointer<Float>, weights: DevicePointer<Float>,
        bias: DevicePointer<Float>, rows: Int, inputSize: Int, outputSize: Int, activation: Activation
    ) {
        // Z [B, out] = X [B, in] · W [in, out]
        gemm(transposeA: false, transposeB: false, m: rows, n: outputSize, k: inputSize,
             alpha: 1, a: inputs, lda: inputSize, b: weights, ldb: outputSize, beta: 0, c: outputs, ldc: outputSize)
        biasActivationForward(values: outputs, bias: bias, rows: rows, columns: outputSize, activation: activation)
    }

    /// `denseForward`, `lossForwardBackward` and `activationBackward`: the definition of `outputLayerLoss`.
    public func outputLayerLoss(
        outputs: DevicePointer<Float>, gradient: DevicePointer<Float>?, biasGradient: DevicePointer<Float>?,
        metrics: DevicePointer<Float>, predictions: DevicePointer<Int32>?, inputs: DevicePointer<Float>,
        weights: DevicePointer<Float>, bias: DevicePointer<Float>, labels: DevicePointer<Int32>,
        rows: Int, inputSize: Int, outputSize: Int, loss: Loss, gradientScale: Float
    ) {
        unfusedOutputLayerLoss(
            outputs: outputs, gradient: gradient, biasGradient: biasGradient, metrics: metrics,
            predictions: predictions, inputs: inputs, weights: weights, bias: bias, labels: labels, rows: rows,
            inputSize: inputSize, outputSize: outputSize, loss: loss, gradientScale: gradientScale)
    }

    /// The definition of `outputLayerLoss` in the other operations.
    public func unfusedOutputLayerLoss(
        outputs: DevicePointer<Float>, gradient: DevicePointer<Float>?, biasGradient: DevicePointer<Float>?,
        metrics: DevicePointer<Float>, predictions: DevicePointer<Int32>?, inputs: DevicePointer<Float>,
        weights: DevicePointer<Float>, bias: DevicePointer<Float>, labels: DevicePointer<Int32>,
        rows: Int, inputSize: Int, outputSize: Int, loss: Loss, gradientScale: Float
    ) {
        denseForward(outputs: outputs, inputs: inputs, weights: weights, bias: bias, rows: rows,
                     inputSize: inputSize, outputSize: outputSize, activation: .identity)
        lossForwardBackward(gradient: gradient, metrics: metrics, predictions: predictions, outputs: outputs,
                            labels: labels, rows: rows, columns: outputSize, loss: loss, gradientScale: gradientScale)
        if let gradient, let biasGradient {
            // The identity's derivative is 1: this pass only sums the columns.
            activationBackward(gradient: gradient, biasGradient: biasGradient, outputs: outputs, rows: rows,
                               columns: outputSize, activation: .identity)
        }
    }

    /// `outputLayerLoss` then `denseBackward`: the definition of `outputLayerLossBackward`.
    public func outputLayerLossBackward(
        outputs: DevicePointer<Float>, gradient: DevicePointer<Float>, biasGradient: DevicePointer<Float>,
        metrics: DevicePointer<Float>, inputs: DevicePointer<Float>, weights: DevicePointer<Float>,
        bias: DevicePointer<Float>, labels: DevicePointer<Int32>, rows: Int, inputSize: Int, outputSize: Int,
        loss: Loss, gradientScale: Float, weightGradient: DevicePointer<Float>, inputGradient: DevicePointer<Float>,
        inputBiasGradient: DevicePointer<Float>, inputActivation: Activation
    ) {
        unfusedOutputLayerLossBackward(
            outputs: outputs, gradient: gradient, biasGradient: biasGradient, metrics: metrics, inputs: inputs,
            weights: weights, bias: bias, labels: labels, rows: rows, inputSize: inputSize, outputSize: outputSize,
            loss: loss, gradientScale: gradientScale, weightGradient: weightGradient, inputGradient: inputGradient,
            inputBiasGradient: inputBiasGradient, inputActivation: inputActivation)
    }

    /// The definition of `outputLayerLossBackward` in the two calls it stands for (which may themselves be fused).
    public func unfusedOutputLayerLossBackward(
        outputs: DevicePointer<Float>, gradient: DevicePointer<Float>, biasGradient: DevicePointer<Float>,
        metrics: DevicePointer<Float>, inputs: DevicePointer<Float>, weights: DevicePointer<Float>,
        bias: DevicePointer<Float>, labels: DevicePointer<Int32>, rows: Int, inputSize: Int, outputSize: Int,
        loss: Loss, gradientScale: Float, weightGradient: DevicePointer<Float>, inputGradient: DevicePointer<Float>,
        inputBiasGradient: DevicePointer<Float>, inputActivation: Activation
    ) {
        outputLayerLoss(
            outputs: outputs, gradient: gradient, biasGradient: biasGradient, metrics: metrics, predictions: nil,
            inputs: inputs, weights: weights, bias: bias, labels: labels, rows: rows, inputSize: inputSize,
            outputSize: outputSize, loss: loss, gradientScale: gradientScale)
        denseBackward(
            weightGradient: weightGradient, inputGradient: inputGradient, inputBiasGradient: inputBiasGradient,
            gradient: gradient, inputs: inputs, weights: weights, rows: rows, inputSize: inputSize,
            outputSize: outputSize, inputActivation: inputActivation)
    }

    /// Two `gemm`s and `activationBackward`: the definition of `denseBackward`, for backends with nothing to fuse.
    public func denseBackward(
        weightGradient: DevicePointer<Float>, inputGradient: DevicePointer<Float>,
        inputBiasGradient: DevicePointer<Float>, gradient: DevicePointer<Float>, inputs: DevicePointer<Float>,
        weights: DevicePointer<Float>, rows: Int, inputSize: Int, outputSize: Int, inputActivation: Activation
    ) {
        unfusedDenseBackward(
            weightGradient: weightGradient, inputGradient: inputGradient, inputBiasGradient: inputBiasGradient,
            gradient: gradient, inputs: inputs, weights: weights, rows: rows, inputSize: inputSize,
            outputSize: outputSize, inputActivation: inputActivation)
    }

    /// The definition of `denseBackward` in the unfused operations.
    public func unfusedDenseBackward(
        weightGradient: DevicePointer<Float>, inputGradient: DevicePointer<Float>,
        inputBiasGradient: DevicePointer<Float>, gradient: DevicePointer<Float>, inputs: DevicePointer<Float>,
        weights: DevicePointer<Float>, rows: Int, inputSize: Int, outputSize: Int, inputActivation: Activation
    ) {
        // dW [in, out] = Xᵀ [in, B] · dZ [B, out]
        gemm(transposeA: true, transposeB: false, m: inputSize, n: outputSize, k: rows,
             alpha: 1, a: inputs, lda: inputSize, b: gradient, ldb: outputSize,
             beta: 0, c: weightGradient, ldc: outputSize)
        // dX [B, in] = dZ [B, out] · Wᵀ [out, in]
        gemm(transposeA: false, transposeB: true, m: rows, n: inputSize, k: outputSize,
             alpha: 1, a: gradient, lda: outputSize, b: weights, ldb: outputSize,
             beta: 0, c: inputGradient, ldc: inputSize)
        // dZ_prev = dX ⊙ f'(X), and its column sums, in one pass.
        activationBackward(gradient: inputGradient, biasGradient: inputBiasGradient, outputs: inputs,
                           rows: rows, columns: inputSize, activation: inputActivation)
    }
}

/// What identifies a training step's sequence of operations: the network, the data it gathers from, the rows.
/// Networks and datasets are named by serial numbers, never reused in a process (an object's address can be, once
/// it is freed, and a recording of a freed network's step must never be replayed for a new one).
public struct StepKey: Hashable, Sendable {
    /// The network's serial number.
    public var network: Int
    /// The resident dataset's serial number.
    public var data: Int
    /// The batch's rows.
    public var rows: Int
    /// Whether the step gathers its batch (false: the step before gathered it, `Backend.gathersWithUpdates`).
    public var gathersBatch: Bool
    /// Whether the step ends by gathering the next step's batch, of the same size, with its update.
    public var gathersNext: Bool

    /// A key from the serial numbers of a network and a dataset, a batch's rows, and where its batch is gathered.
    public init(network: Int, data: Int, rows: Int, gathersBatch: Bool = true, gathersNext: Bool = false) {
        self.network = network
        self.data = data
        self.rows = rows
        self.gathersBatch = gathersBatch
        self.gathersNext = gathersNext
    }
}

extension Backend {
    /// Uploads an array into newly allocated memory.
    public func allocate<T>(copying values: [T]) throws -> DevicePointer<T> {
        let p = try allocate(T.self, count: Swift.max(values.count, 1))
        values.withUnsafeBufferPointer { upload($0, to: p) }
        return p
    }

    /// Downloads `count` elements into a new array.
    public func download<T>(_ source: DevicePointer<T>, count: Int) -> [T] where T: Numeric {
        var out = [T](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { download(source, count: count, into: $0) }
        return out
    }
}

/// Serial numbers for `StepKey`: each call returns a number no earlier call returned.
public func nextSerialNumber() -> Int { serialNumbers.wrappingAdd(1, ordering: .relaxed).oldValue }
private let serialNumbers = Atomic<Int>(0)
