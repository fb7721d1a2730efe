import MNIST

/// A labelled dataset copied once into a backend's memory, in its stored type (pictures stay bytes): batches are
/// gathered and turned into floats from it by the backend (`Backend.gatherBatch`), so no sample crosses from the host
/// during training.
public final class ResidentDataset {
    /// The backend whose memory holds the data.
    public let backend: any Backend
    /// `[count, featureCount]` values of `valueType`, as raw bytes.
    public let values: DevicePointer<UInt8>
    /// The type of `values`.
    public let valueType: SampleValueType
    /// `[count]` labels; for a regression, each sample's own row of `targets` (`0, 1, …`: see `RegressionTargets`).
    public let labels: DevicePointer<Int32>
    /// Regression: `[count, targetCount]` targets; nil for classification.
    public let targets: DevicePointer<Float>?
    /// Regression targets per sample (0 for classification).
    public let targetCount: Int
    /// The same targets in host memory, where an evaluation reads them to sum its errors per output (no copy back
    /// from the device each epoch).
    public let hostTargets: [Float]
    /// Samples.
    public let count: Int
    /// Values per sample.
    public let featureCount: Int
    /// Classes (labels are in `0..<classCount`); 0 for a regression.
    public let classCount: Int
    /// Whether the samples carry regression targets.
    public var isRegression: Bool { targets != nil }
    /// Names this dataset in `TrainingStep`s.
    let serialNumber = nextSerialNumber()
    /// Whether `values`, `labels` and `targets` were allocated here (a `StreamedDataset`'s windows point into memory
    /// their stream owns).
    private let ownsMemory: Bool

    /// Uploads `samples` to `backend`.
    public init(_ samples: LabeledSamples, on backend: any Backend) throws {
        self.backend = backend
        switch samples.values {
        case .bytes(let v):
            values = try backend.allocate(copying: v)
        case .floats(let v):
            values = DevicePointer(address: try backend.allocate(copying: v).address)
        }
        valueType = samples.values.type
        do {
            labels = try backend.allocate(copying: samples.isRegression ? (0..<Int32(samples.count)).map { $0 } : samples.labels)
        } catch {
            backend.free(values)
            throw error
        }
        if samples.isRegression {
            do {
                targets = try backend.allocate(copying: samples.targets)
            } catch {
                backend.free(values)
                backend.free(labels)
                throw error
            }
        } else {
            targets = nil
        }
        targetCount = samples.targetCount
        hostTargets = samples.targets
        count = samples.count
        featureCount = samples.featureCount
        classCount = samples.classCount
        ownsMemory = true
    }

    /// A window of `rows` samples in memory that a `StreamedDataset` owns and refills batch after batch: the network
    /// reads a batch there as from any resident dataset (a regression's labels then number the window's own rows).
    init(window rows: Int, of samples: LabeledSamples, values: DevicePointer<UInt8>, labels: DevicePointer<Int32>,
         targets: DevicePointer<Float>?, on backend: any Backend) {
        self.backend = backend
        self.values = values
        self.labels = labels
        self.targets = targets
        valueType = samples.values.type
        targetCount = samples.targetCount
        hostTargets = []
        count = rows
        featureCount = samples.featureCount
        classCount = samples.classCount
        ownsMemory = false
    }

    /// Uploads the images of an IDX dataset.
    public convenience init(_ images: LabeledImages, on backend: any Backend) throws {
        try self.init(LabeledSamples(images), on: backend)
    }

    deinit {
        guard ownsMemory else { return }
        backend.free(values)
        backend.free(labels)
        if let targets { backend.free(targets) }
    }
}
