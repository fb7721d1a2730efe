import MNIST

/// Where a training run's or an evaluation's batches come from: a dataset copied whole into the backend's memory
/// (`ResidentDataset`), or one kept in host memory and streamed to the backend a batch at a time
/// (`StreamedDataset`). Both hand the network the same samples in the same order, and the network gathers and
/// normalises them the same way, so a run's weights do not depend on which one holds its data.
public protocol BatchSource: AnyObject {
    /// Samples.
    var count: Int { get }
    /// Values per sample.
    var featureCount: Int { get }
    /// The stored type of the values (pictures stay bytes until the gather).
    var valueType: SampleValueType { get }
    /// Classes (0 for a regression).
    var classCount: Int { get }
    /// Regression targets per sample (0 for classification).
    var targetCount: Int { get }
    /// A regression's `[count, targetCount]` targets in host memory, where an evaluation sums its errors; empty for
    /// classification.
    var hostTargets: [Float] { get }
    /// The backend-resident datasets that batches are read from: the dataset itself, or a stream's windows (a
    /// warm-up runs each step shape on each, so that every recording a run replays is made before it).
    var residentParts: [ResidentDataset] { get }
    /// Starts a pass over `batches` (sample indices, in the order they are trained or evaluated). Only one pass of a
    /// source runs at a time: starting one ends the one before.
    /// - Throws: a backend failure.
    func pass(_ batches: [ArraySlice<Int32>]) throws -> any BatchPass
}

extension BatchSource {
    /// Whether the samples carry regression targets.
    public var isRegression: Bool { targetCount > 0 }
}

/// One batch of a pass, where the network finds it.
public struct PassBatch {
    /// The backend-resident data that holds the batch now.
    public var data: ResidentDataset
    /// The batch's rows of `data`.
    public var rows: ArraySlice<Int32>
    /// The batch's samples (indices into the source: the same as `rows` for a resident source).
    public var samples: ArraySlice<Int32>
    /// The next batch's rows of `data` when it is there already (a step may then gather it ahead); nil otherwise.
    public var next: ArraySlice<Int32>?
}

/// The batches of one pass, in order (`BatchSource.pass`).
public protocol BatchPass: AnyObject {
    /// The next batch, in backend memory and ready for the work queued after this call; nil after the last.
    /// - Throws: a backend failure, or what stopped the producer of a streamed source.
    func next() throws -> PassBatch?
    /// Ends the pass (a streamed source's producer stops and the copies in flight finish); the last call of a pass,
    /// also when it stops early. A pass not ended is ended when it is released.
    func end()
}

extension ResidentDataset: BatchSource {
    public var residentParts: [ResidentDataset] { [self] }
    public func pass(_ batches: [ArraySlice<Int32>]) throws -> any BatchPass { ResidentPass(self, batches) }
}

/// A pass over a resident dataset: every batch is in place already.
final class ResidentPass: BatchPass {
    let data: ResidentDataset
    let batches: [ArraySlice<Int32>]
    var index = 0

    init(_ data: ResidentDataset, _ batches: [ArraySlice<Int32>]) {
        self.data = data
        self.batches = batches
    }

    func next() throws -> PassBatch? {
        guard index < batches.count else { return nil }
        defer { index += 1 }
        let next = index + 1 < batches.count ? batches[index + 1] : nil
        return PassBatch(data: data, rows: batches[index], samples: batches[index], next: next)
    }

    func end() {}
}
