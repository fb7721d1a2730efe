import Synchronization

/// What a backend is told of a training step before its operations are queued (`Backend.runTrainingStep`).
///
/// The same value always brings the same sequence of operations on the same buffers and sizes; only the contents
/// of the batch's indices and the optimizer's step values change. A backend may therefore record the sequence the
/// first time and afterwards only refresh those values and replay it. Networks and datasets are named by serial
/// numbers, never reused in a process (an object's address can be, once it is freed, and a recording of a freed
/// network's step must never be replayed for a new one).
public struct TrainingStep: Hashable, Sendable {
    /// The network's serial number (`nextSerialNumber`).
    public var network: Int
    /// The resident dataset's serial number.
    public var data: Int
    /// The batch's rows.
    public var rows: Int
    /// The network's parameter count.
    public var parameters: Int
    /// Whether the step before gathered this step's batch (the step then starts with its first product).
    public var batchGathered: Bool
    /// The rows of the next step's batch, when the caller knows them (0: not known): a backend may gather it at
    /// the end of this step (`StepSchedule.gathersNextBatch`).
    public var nextRows: Int
    /// The schedule the caller asks for (tests that check every schedule on every backend); nil lets the backend
    /// choose.
    public var preferredSchedule: StepSchedule?
    /// Whether the backend may run the step as often as it needs to make its choices (see `Backend.runTrainingStep`).
    public var tunes: Bool

    public init(network: Int, data: Int, rows: Int, parameters: Int, batchGathered: Bool = false, nextRows: Int = 0,
                preferredSchedule: StepSchedule? = nil, tunes: Bool = false) {
        self.network = network
        self.data = data
        self.rows = rows
        self.parameters = parameters
        self.batchGathered = batchGathered
        self.nextRows = nextRows
        self.preferredSchedule = preferredSchedule
        self.tunes = tunes
    }
}

/// How the core arranges a training step's operations, as the backend asks (`Backend.runTrainingStep`). Every
/// schedule gives the same results.
public struct StepSchedule: Hashable, Sendable {
    /// Whether each layer is updated as soon as its gradients are final (in the backward, last layer first) instead
    /// of all at once at the end of the step. A GPU backend runs one layer's update beside the backward of the layers
    /// below where that pays (large networks).
    public var updatesEachLayer: Bool
    /// Whether the step's last update also gathers the next step's batch (`ParameterUpdate.thenGather`), so that the
    /// next step starts with its first product. Only when `TrainingStep.nextRows` equals the step's rows.
    public var gathersNextBatch: Bool

    public init(updatesEachLayer: Bool, gathersNextBatch: Bool) {
        self.updatesEachLayer = updatesEachLayer
        self.gathersNextBatch = gathersNextBatch
    }

    /// One update at the end; each step gathers its own batch.
    public static let plain = StepSchedule(updatesEachLayer: false, gathersNextBatch: false)
}

/// Serial numbers for `TrainingStep`: each call returns a number no earlier call returned.
public func nextSerialNumber() -> Int { serialNumbers.wrappingAdd(1, ordering: .relaxed).oldValue }
private let serialNumbers = Atomic<Int>(0)
