/// The batches of one epoch: a seeded permutation of the sample indices cut into fixed-size batches.
///
/// With `dropLast`, a final batch smaller than `batchSize` is left out (every step then has the same shape, which
/// a GPU graph needs); without it, the last batch holds the remainder.
public struct EpochBatches: Sequence, Sendable {
    /// The shuffled sample indices of this epoch.
    public let order: [Int32]
    /// Samples per batch.
    public let batchSize: Int
    /// Whether a final batch smaller than `batchSize` is left out.
    public let dropLast: Bool

    /// Shuffles `indices` with `generator` (advancing it) and cuts them into batches.
    /// - Precondition: `batchSize > 0`.
    public init(indices: [Int32], batchSize: Int, dropLast: Bool, shuffle: Bool = true, generator: inout SeededGenerator) {
        precondition(batchSize > 0, "batch size must be positive")
        var order = indices
        if shuffle { generator.shuffle(&order) }
        self.order = order
        self.batchSize = batchSize
        self.dropLast = dropLast
    }

    /// Number of batches.
    public var count: Int {
        dropLast ? order.count / batchSize : (order.count + batchSize - 1) / batchSize
    }

    /// The index range into `order` of batch `b`.
    public func range(ofBatch b: Int) -> Range<Int> {
        b * batchSize..<Swift.min((b + 1) * batchSize, order.count)
    }

    /// The batches in order, each a slice of `order`.
    public func makeIterator() -> AnyIterator<ArraySlice<Int32>> {
        var b = 0
        return AnyIterator {
            guard b < count else { return nil }
            defer { b += 1 }
            return order[range(ofBatch: b)]
        }
    }
}

/// A split of `0..<count` into training and validation indices.
public struct ValidationSplit: Sendable, Equatable {
    /// The indices kept for training, in ascending order.
    public var training: [Int32]
    /// The indices held out, in ascending order.
    public var validation: [Int32]

    /// Carves `validationCount` samples at random (from a generator seeded with `seed`) out of `0..<count`.
    /// Both parts are returned in increasing order.
    /// - Throws: `DataError.invalidArgument` for a count below 0 or leaving no training samples.
    public init(count: Int, validationCount: Int, seed: UInt64) throws {
        guard validationCount >= 0, validationCount < count else {
            throw DataError.invalidArgument(
                name: "--validation", reason: "\(validationCount.grouped) samples cannot be held out of \(count.grouped) (expected 0 to \((count - 1).grouped))")
        }
        var all = (0..<count).map(Int32.init)
        var generator = SeededGenerator(seed: seed ^ 0x5EED_0F_5B117)
        generator.shuffle(&all)
        validation = all[0..<validationCount].sorted()
        training = all[validationCount...].sorted()
    }

    /// The whole range for training, nothing held out.
    public init(all count: Int) {
        training = (0..<count).map(Int32.init)
        validation = []
    }
}
