import MNIST

/// The operations a training step needs, implemented once per backend (naive, cpu, cuda).
///
/// Conventions, as in llm.c: outputs first, then inputs, then sizes; matrices are row-major; a comment gives each
/// buffer's shape. `B` is the number of rows of a batch. Operations are issued in order and may run
/// asynchronously (a GPU backend queues them on a stream): results are visible after `download` or `synchronize`.
///
/// Memory is addressed with `DevicePointer`; a backend reads and writes only memory it allocated.
///
/// A backend built from plain parts conforms to `ComposedLayers` as well: it implements the elementwise and loss
/// passes, and the layer operations below (`denseForward`, `denseBackward`, `outputLayerLoss`) come from them. A
/// backend that fuses a layer operation implements it itself and says so in `fusedOperations`. How a backend
/// schedules a whole step (recording it, gathering ahead, updating layer by layer) stays behind
/// `runTrainingStep`, which the core calls once per step.
public protocol Backend: AnyObject {
    /// Short name: "naive", "cpu", "cuda".
    var name: String { get }
    /// One line about the hardware and libraries in use, for logs and results.
    var deviceDescription: String { get }
    /// Whether memory is the host's, so that reading a value back costs nothing (the trainer then checks the
    /// loss after every step).
    var isHostMemory: Bool { get }
    /// The layer operations this backend runs as more than the composition of their parts (a profiler then times
    /// them whole instead of their parts). Default: none.
    var fusedOperations: FusedOperations { get }

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
    /// The copies that stream batches into this backend's memory (`StreamedDataset`): `buffers` host buffers of
    /// `bytes` each. Host-memory backends copy with `memcpy` (`HostBatchUploader`).
    /// - Throws: when the host buffers cannot be allocated (pinned memory is limited).
    func makeBatchUploader(buffers: Int, bytes: Int) throws -> any BatchUploader
    /// The backend memory free now and in all, in bytes, where the backend's memory is not the host's (a GPU's);
    /// nil otherwise. `DataPlacement` decides from it whether a dataset is copied whole or streamed. Default: nil.
    var memoryAvailable: (free: Int, total: Int)? { get }

    // MARK: Operations

    /// Builds a batch from a dataset resident in backend memory (see `BatchGather` for the definition).
    ///
    /// The indices are in host memory: the backend decides how they reach the device (host backends read them in
    /// place; the cuda backend passes them in the gather kernel's parameters).
    func gatherBatch(_ gather: BatchGather)

    /// General matrix product, row-major: `C = alpha · op(A) · op(B) + beta · C`, where `op(X)` is `X` or `Xᵀ`.
    /// `op(A)` is `[m, k]`, `op(B)` is `[k, n]`, `C` is `[m, n]`; `lda`, `ldb`, `ldc` are the row strides of the
    /// matrices as stored. With `beta == 0`, `C` is not read (it may hold anything, NaN included).
    func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: DevicePointer<Float>, lda: Int, b: DevicePointer<Float>, ldb: Int,
        beta: Float, c: DevicePointer<Float>, ldc: Int)

    /// A dense layer's forward: `outputs = f(inputs · weights + bias)`.
    ///
    /// `ComposedLayers` gives `gemm` then `biasActivationForward`; the cuda backend adds the bias and applies the
    /// ReLU in the product's epilogue.
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
    /// `ComposedLayers` gives two `gemm`s and `activationBackward`; the cuda backend computes the weight gradient on
    /// a second stream beside the rest.
    func denseBackward(
        weightGradient: DevicePointer<Float>, inputGradient: DevicePointer<Float>,
        inputBiasGradient: DevicePointer<Float>, gradient: DevicePointer<Float>, inputs: DevicePointer<Float>,
        weights: DevicePointer<Float>, rows: Int, inputSize: Int, outputSize: Int, inputActivation: Activation)

    /// The output layer and the loss: `outputs = inputs · weights + bias` (no activation), then the loss of those
    /// outputs exactly as `ComposedLayers.lossForwardBackward` defines it (`gradient`, `metrics`, `predictions`),
    /// and, when `gradient` is given, the output layer's bias gradient `biasGradient[c] = Σ_r gradient[r, c]`.
    /// With `backward` (which needs `gradient` and `biasGradient`), then the layer's backward from that gradient,
    /// exactly as `denseBackward` defines it.
    ///
    /// `ComposedLayers` gives `denseForward`, the loss, the column sums and `denseBackward`; the cpu and cuda
    /// backends run the narrow layer of a classifier (ten outputs) as one pass or kernel, with the input gradient
    /// inside it.
    /// - Parameters: outputs `[rows, outputSize]`, written; gradient `[rows, outputSize]`; biasGradient
    ///   `[outputSize]`; metrics `[2]`, accumulated; predictions `[rows]`; inputs `[rows, inputSize]`; weights
    ///   `[inputSize, outputSize]`; bias `[outputSize]`; labels `[rows]`, each in `0..<outputSize`.
    func outputLayerLoss(
        outputs: DevicePointer<Float>, gradient: DevicePointer<Float>?, biasGradient: DevicePointer<Float>?,
        metrics: DevicePointer<Float>, predictions: DevicePointer<Int32>?, inputs: DevicePointer<Float>,
        weights: DevicePointer<Float>, bias: DevicePointer<Float>, labels: DevicePointer<Int32>,
        rows: Int, inputSize: Int, outputSize: Int, loss: Loss, gradientScale: Float, backward: LayerBackward?)

    /// The output layer of a regression and its loss: `outputs = inputs · weights + bias` (no activation), then the
    /// loss of those outputs against real-valued targets exactly as `ComposedLayers.regressionLoss` defines it, and,
    /// when `gradient` is given, the bias gradient `biasGradient[c] = Σ_r gradient[r, c]`; with `backward`, then the
    /// layer's backward from that gradient, as `denseBackward` defines it.
    ///
    /// `ComposedLayers` gives the composition (`denseForward`, `regressionLoss`, the column sums, `denseBackward`):
    /// a regression's output layer is narrow and its loss elementwise, so no backend fuses it yet.
    /// - Parameters: as `outputLayerLoss`, with `targets` in place of the labels and no predictions; metrics `[2]`,
    ///   accumulated: the summed loss and the summed squared error (see `regressionLoss`).
    func regressionOutputLayerLoss(
        outputs: DevicePointer<Float>, gradient: DevicePointer<Float>?, biasGradient: DevicePointer<Float>?,
        metrics: DevicePointer<Float>, inputs: DevicePointer<Float>, weights: DevicePointer<Float>,
        bias: DevicePointer<Float>, targets: RegressionTargets, rows: Int, inputSize: Int, outputSize: Int,
        loss: Loss, gradientScale: Float, backward: LayerBackward?)

    /// One optimizer update over one flat buffer of parameters (see `ParameterUpdate`), then, if the update carries
    /// one, the gather of the next step's batch (`ParameterUpdate.thenGather`; the cuda backend does both in one
    /// launch).
    func optimizerUpdate(_ update: ParameterUpdate)

    // MARK: The step

    /// Queues one training step: `queue` queues its operations (gather, forward, loss and backward, updates) in the
    /// order `schedule` asks for; the backend calls it once, inside whatever frame it keeps around a step (the cuda
    /// backend records the step as a CUDA graph the first times and replays it afterwards).
    ///
    /// With `step.tunes`, the backend may call `queue` as often as it needs to make the choices only whole steps
    /// tell apart (the cuda backend times its products' algorithms inside replayed steps); the caller undoes the
    /// steps' effects. Default: `queue(step.preferredSchedule ?? .plain)`.
    func runTrainingStep(_ step: TrainingStep, _ queue: (StepSchedule) -> Void)
}

/// Layer operations a backend may run as more than the composition of their parts (`Backend.fusedOperations`).
public struct FusedOperations: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// `denseForward` and `denseBackward`.
    public static let denseLayers = FusedOperations(rawValue: 1)
    /// `outputLayerLoss`.
    public static let outputLayer = FusedOperations(rawValue: 2)
}

/// The layer below's part of an output layer's backward (`Backend.outputLayerLoss`'s `backward`).
public struct LayerBackward {
    /// `[inputSize, outputSize]`, overwritten: `inputsᵀ · gradient`.
    public var weightGradient: DevicePointer<Float>
    /// `[rows, inputSize]`, overwritten: `(gradient · weightsᵀ) ⊙ f'(inputs)`.
    public var inputGradient: DevicePointer<Float>
    /// `[inputSize]`, overwritten: the column sums of `inputGradient`.
    public var inputBiasGradient: DevicePointer<Float>
    /// `f`, the layer below's activation.
    public var inputActivation: Activation

    public init(weightGradient: DevicePointer<Float>, inputGradient: DevicePointer<Float>,
                inputBiasGradient: DevicePointer<Float>, inputActivation: Activation) {
        self.weightGradient = weightGradient
        self.inputGradient = inputGradient
        self.inputBiasGradient = inputBiasGradient
        self.inputActivation = inputActivation
    }
}

/// Where a batch's regression targets are: row `r` of the batch has targets `table[rows[r] · k + c]` for its `k`
/// outputs.
///
/// The batch's `rows` are its gathered labels: a regression dataset's labels are each sample's own row in the table
/// (`ResidentDataset`), so the gather, the gather-ahead and a recorded step need nothing new, and the targets stay
/// in backend memory, one copy for the whole dataset.
public struct RegressionTargets {
    /// `[B]`: each batch row's row of `table`.
    public var rows: DevicePointer<Int32>
    /// `[N, k]`: every sample's targets.
    public var table: DevicePointer<Float>

    public init(rows: DevicePointer<Int32>, table: DevicePointer<Float>) {
        self.rows = rows
        self.table = table
    }
}

/// The arguments of `Backend.gatherBatch`:
/// `inputs[r, f] = values[indices[r], f] × normalization.scale + normalization.shift` (multiplied, then added: two
/// roundings, no fused multiply-add, so that every backend gives the same inputs bit for bit),
/// `labels[r] = sourceLabels[indices[r]]`.
public struct BatchGather {
    /// `[B, features]`, written.
    public var inputs: DevicePointer<Float>
    /// `[B]`, written.
    public var labels: DevicePointer<Int32>
    /// `[N, features]` values of `valueType` (the whole dataset), as raw bytes.
    public var values: DevicePointer<UInt8>
    /// The type of `values`: bytes (pictures) or 32-bit floats (tables, arrays).
    public var valueType: SampleValueType
    /// `[N]` labels.
    public var sourceLabels: DevicePointer<Int32>
    /// The `B` sample indices into `0..<N`, in host memory, read before the call that takes the gather returns.
    public var indices: UnsafeBufferPointer<Int32>
    /// Values per sample (784 for MNIST).
    public var features: Int
    /// The map from a stored value to an input value.
    public var normalization: Normalization

    public init(inputs: DevicePointer<Float>, labels: DevicePointer<Int32>, values: DevicePointer<UInt8>, valueType: SampleValueType,
                sourceLabels: DevicePointer<Int32>, indices: UnsafeBufferPointer<Int32>, features: Int, normalization: Normalization) {
        self.inputs = inputs
        self.labels = labels
        self.values = values
        self.valueType = valueType
        self.sourceLabels = sourceLabels
        self.indices = indices
        self.features = features
        self.normalization = normalization
    }

    /// A gather from `data`, resident on the backend.
    public init(inputs: DevicePointer<Float>, labels: DevicePointer<Int32>, from data: ResidentDataset,
                indices: UnsafeBufferPointer<Int32>, normalization: Normalization) {
        self.init(inputs: inputs, labels: labels, values: data.values, valueType: data.valueType, sourceLabels: data.labels,
                  indices: indices, features: data.featureCount, normalization: normalization)
    }
}

/// The arguments of `Backend.optimizerUpdate`: one update over `count` parameters held in one flat buffer (every
/// layer at once, or one layer's part of the network's buffer).
public struct ParameterUpdate {
    /// `[count]`, updated in place.
    public var parameters: DevicePointer<Float>
    /// `[count]`, read.
    public var gradients: DevicePointer<Float>
    /// The optimizer's state slots, `stateStride` floats apart: slot `s` of parameter `i` at
    /// `state + s·stateStride + i` (momentum for SGD; first and second moments for Adam), updated in place.
    public var state: DevicePointer<Float>
    /// The number of parameters.
    public var count: Int
    /// The distance between the state's slots, at least `count` (the whole buffer's parameter count when
    /// `parameters` is one layer's part of it).
    public var stateStride: Int
    /// Hyperparameters and the 1-based step number; see `OptimizerStep` for the formulas.
    public var step: OptimizerStep
    /// The gather to run after the update (the next step's batch, into buffers that nothing reads or writes in
    /// this step after the update), or nil.
    public var thenGather: BatchGather?

    public init(parameters: DevicePointer<Float>, gradients: DevicePointer<Float>, state: DevicePointer<Float>,
                count: Int, stateStride: Int? = nil, step: OptimizerStep, thenGather: BatchGather? = nil) {
        self.parameters = parameters
        self.gradients = gradients
        self.state = state
        self.count = count
        self.stateStride = stateStride ?? count
        self.step = step
        self.thenGather = thenGather
    }
}

extension Backend {
    public var memoryAvailable: (free: Int, total: Int)? { nil }

    /// None: every layer operation is the composition of its parts.
    public var fusedOperations: FusedOperations { [] }

    /// Runs `queue` once, as the caller prefers or else plainly: one update at the end, each step gathering its own
    /// batch.
    public func runTrainingStep(_ step: TrainingStep, _ queue: (StepSchedule) -> Void) {
        queue(step.preferredSchedule ?? .plain)
    }

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
