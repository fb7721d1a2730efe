import MNIST

/// A labelled image set copied once into a backend's memory, as bytes: batches are gathered and normalised from it
/// by the backend (`Backend.gatherBatch`), so no sample crosses from the host during training.
public final class ResidentDataset {
    /// The backend whose memory holds the data.
    public let backend: any Backend
    /// `[count, featureCount]` pixel bytes.
    public let pixels: DevicePointer<UInt8>
    /// `[count]` labels.
    public let labels: DevicePointer<UInt8>
    /// Samples.
    public let count: Int
    /// Bytes (pixels) per sample.
    public let featureCount: Int
    /// Classes (labels are in `0..<classCount`).
    public let classCount: Int
    /// Names this dataset in `TrainingStep`s.
    let serialNumber = nextSerialNumber()

    /// Uploads `images` to `backend`.
    public init(_ images: LabeledImages, on backend: any Backend) throws {
        self.backend = backend
        pixels = try backend.allocate(copying: images.pixels)
        labels = try backend.allocate(copying: images.labels)
        count = images.count
        featureCount = images.featureCount
        classCount = images.classCount
    }

    deinit {
        backend.free(pixels)
        backend.free(labels)
    }
}
