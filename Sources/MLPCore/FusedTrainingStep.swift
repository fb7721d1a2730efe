import MNIST

/// A network's whole training step as one operation of its backend (the cuda backend's one kernel for small
/// networks), made once for the network by `Backend.makeFusedStep(_:preferred:)`.
///
/// `run` must do exactly what `Network.trainStep` does op by op: gather the batch (into `FusedStepBuffers.inputs`
/// and `labels`), the forward, the loss, the backward (the gradients into `gradients`), the optimizer's update of
/// the parameters and its state, and add the batch's summed loss and correct count to `trainingMetrics`. The
/// arithmetic may be ordered differently (sums in another order), as another backend's may.
public protocol FusedTrainingStep: AnyObject {
    /// One training step on the samples `batch` (host memory, read before the call returns) of `data`.
    /// - Precondition: `1 ≤ batch.count ≤` the buffers' `maxBatch`; `data.featureCount` is the network's input size.
    func run(_ data: ResidentDataset, batch: UnsafeBufferPointer<Int32>, normalization: Normalization, step: OptimizerStep)
}

/// What a fused training step reads and writes: the network's buffers (see `Network`), all allocated on the backend
/// that makes the step.
public struct FusedStepBuffers {
    public var spec: NetworkSpec
    public var layout: ParameterLayout
    public var optimizer: OptimizerConfiguration
    public var maxBatch: Int
    /// `[layout.count]` each.
    public var parameters, gradients: DevicePointer<Float>
    /// `[optimizer.stateSlots × layout.count]`, the slots `layout.count` apart.
    public var optimizerState: DevicePointer<Float>
    /// `[maxBatch, inputSize]`, written with the gathered batch.
    public var inputs: DevicePointer<Float>
    /// Layer `l`'s outputs, `[maxBatch, layerSizes[l + 1]]`, written.
    public var activations: [DevicePointer<Float>]
    /// `[maxBatch]`, written with the batch's labels.
    public var labels: DevicePointer<Int32>
    /// `[2]`: the summed loss and correct count, accumulated.
    public var trainingMetrics: DevicePointer<Float>
}

extension Backend {
    /// nil: this backend runs training steps op by op.
    public func makeFusedStep(_ buffers: FusedStepBuffers, preferred: Bool?) throws -> (any FusedTrainingStep)? { nil }
}
