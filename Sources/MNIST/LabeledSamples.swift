/// How a dataset stores its samples' values: pictures as bytes (a quarter of the memory, mapped to inputs by a
/// `Normalization` as batches are gathered), tables and arrays as 32-bit floats.
public enum SampleValueType: String, Sendable, Codable, CaseIterable {
    case uint8
    case float32

    /// Bytes per value.
    public var size: Int { self == .uint8 ? 1 : 4 }
}

/// Samples with one class label each (classification) or real-valued targets (regression), whatever their source:
/// pictures, a table's rows, arrays.
///
/// Values are row-major, sample after sample, `featureCount` each, in their stored type (`values`). This is the form
/// in which data reaches a backend (`ResidentDataset`): it is copied once into the backend's memory, and each batch
/// is gathered and turned into floats there.
public struct LabeledSamples: Sendable, Equatable {
    /// The values of every sample, in their stored type.
    public enum Values: Sendable, Equatable {
        /// Pixel bytes, 0 to 255.
        case bytes([UInt8])
        /// Numbers, used as they are (after any standardisation).
        case floats([Float])

        /// The number of values.
        public var count: Int {
            switch self {
            case .bytes(let v): return v.count
            case .floats(let v): return v.count
            }
        }

        /// The stored type.
        public var type: SampleValueType {
            if case .bytes = self { return .uint8 }
            return .float32
        }
    }

    /// `count × featureCount` values.
    public var values: Values
    /// The shape of one sample, outermost first: `[28, 28]` for an MNIST digit, `[3, 32, 32]` for a colour picture,
    /// `[13]` for a table of 13 features. The network sees it flattened.
    public var sampleShape: [Int]
    /// `count` labels, each in `0..<classCount` (classification; empty for a regression).
    public var labels: [Int32]
    /// The name of each class, by label (`["0", …, "9"]` for digits; a table's own names such as `benign`); empty for
    /// a regression.
    public var classNames: [String]
    /// The name of each feature where the source has them (a table's header), else empty.
    public var featureNames: [String]
    /// Regression: `count × targetCount` real-valued targets, row-major (empty for classification).
    public var targets: [Float] = []
    /// Regression: the name of each target (a table's column, `y` for an array's single column, `y0`, `y1`, … for
    /// several); empty for classification, so that `isRegression` is whether there are any.
    public var targetNames: [String] = []

    /// Number of samples.
    public var count: Int { isRegression ? targets.count / targetNames.count : labels.count }
    /// Whether the samples carry real-valued targets rather than class labels.
    public var isRegression: Bool { !targetNames.isEmpty }
    /// Regression targets per sample.
    public var targetCount: Int { targetNames.count }
    /// The network's outputs for this data: one per class, or one per target.
    public var outputCount: Int { isRegression ? targetCount : classCount }
    /// Values per sample: the product of `sampleShape`.
    public var featureCount: Int { sampleShape.reduce(1, *) }
    /// Number of classes.
    public var classCount: Int { classNames.count }

    /// Creates a set, checking that sizes agree and every label names a class.
    /// - Throws: `DataError.inconsistent` naming `file` when they do not.
    public init(values: Values, sampleShape: [Int], labels: [Int32], classNames: [String], featureNames: [String] = [],
                file: String = "data") throws {
        let features = sampleShape.reduce(1, *)
        try Self.check(sampleShape: sampleShape, featureNames: featureNames, file: file)
        guard values.count == labels.count * features else {
            throw DataError.inconsistent(
                file: file, reason: "\(labels.count.grouped) labels but \(values.count.grouped) values, not \(labels.count.grouped) samples of \(features.grouped)")
        }
        guard classNames.count >= 1 else { throw DataError.inconsistent(file: file, reason: "no classes") }
        if let bad = labels.firstIndex(where: { $0 < 0 || Int($0) >= classNames.count }) {
            throw DataError.inconsistent(
                file: file, reason: "label \(labels[bad]) of sample \(bad.grouped) is out of range (expected 0 to \(classNames.count - 1))")
        }
        self.values = values
        self.sampleShape = sampleShape
        self.labels = labels
        self.classNames = classNames
        self.featureNames = featureNames
    }

    /// Creates a regression set, checking that sizes agree and every target is a finite number.
    /// - Throws: `DataError.inconsistent` or `.malformed` naming `file` (and the row and target of a bad value).
    public init(values: Values, sampleShape: [Int], targets: [Float], targetNames: [String], featureNames: [String] = [],
                file: String = "data") throws {
        let features = sampleShape.reduce(1, *), k = targetNames.count
        try Self.check(sampleShape: sampleShape, featureNames: featureNames, file: file)
        guard k >= 1, targets.count % k == 0 else {
            throw DataError.inconsistent(file: file, reason: "\(targets.count.grouped) targets are not rows of \(k) (\(targetNames.joined(separator: ", ")))")
        }
        let n = targets.count / k
        guard values.count == n * features else {
            throw DataError.inconsistent(
                file: file, reason: "\(n.grouped) targets but \(values.count.grouped) values, not \(n.grouped) samples of \(features.grouped)")
        }
        if let bad = targets.firstIndex(where: { !$0.isFinite }) {
            throw DataError.malformed(
                file: file, reason: "row \((bad / k).grouped) (counting samples from 0), target \(targetNames[bad % k]): \(targets[bad]) is not a finite number")
        }
        self.values = values
        self.sampleShape = sampleShape
        self.labels = []
        self.classNames = []
        self.featureNames = featureNames
        self.targets = targets
        self.targetNames = targetNames
    }

    /// The regression targets that are the same in every sample (nothing to learn), by name.
    public var constantTargets: [String] {
        let k = targetCount
        guard k > 0, count > 0 else { return [] }
        return (0..<k).filter { c in (1..<count).allSatisfy { targets[$0 * k + c] == targets[c] } }.map { targetNames[$0] }
    }

    /// The checks both kinds of set share: a shape of positive sizes, and a name for every feature if any.
    private static func check(sampleShape: [Int], featureNames: [String], file: String) throws {
        guard !sampleShape.isEmpty, sampleShape.allSatisfy({ $0 > 0 }) else {
            throw DataError.inconsistent(file: file, reason: "samples of shape \(sampleShape) (expected at least one value each)")
        }
        let features = sampleShape.reduce(1, *)
        guard featureNames.isEmpty || featureNames.count == features else {
            throw DataError.inconsistent(file: file, reason: "\(featureNames.count) feature names for \(features) features")
        }
    }

    /// The images of an IDX dataset, their classes named by number.
    public init(_ images: LabeledImages, classNames: [String]? = nil) {
        values = .bytes(images.pixels)
        sampleShape = [images.rows, images.columns]
        labels = images.labels.map(Int32.init)
        self.classNames = classNames ?? (0..<images.classCount).map(String.init)
        featureNames = []
    }

    /// The subset at `indices`, in that order (a test split, a smaller run).
    public func subset(_ indices: some Collection<Int>) -> LabeledSamples {
        let f = featureCount
        func pick<T>(_ all: [T]) -> [T] {
            var out = [T]()
            out.reserveCapacity(indices.count * f)
            for i in indices { out.append(contentsOf: all[i * f..<(i + 1) * f]) }
            return out
        }
        var copy = self
        switch values {
        case .bytes(let v): copy.values = .bytes(pick(v))
        case .floats(let v): copy.values = .floats(pick(v))
        }
        if isRegression {
            let k = targetCount
            var t = [Float]()
            t.reserveCapacity(indices.count * k)
            for i in indices { t.append(contentsOf: targets[i * k..<(i + 1) * k]) }
            copy.targets = t
        } else {
            copy.labels = indices.map { labels[$0] }
        }
        return copy
    }

    /// How many samples carry each label.
    public var labelHistogram: [Int] {
        var h = [Int](repeating: 0, count: classCount)
        for l in labels { h[Int(l)] += 1 }
        return h
    }

    /// "28×28" or "13".
    public var shapeText: String { sampleShape.map(String.init).joined(separator: "×") }
}

extension LabeledSamples {
    /// Splits off a test part, stratified: from each class, `fraction` of its samples (rounded to the nearest whole
    /// sample) drawn at random with `seed` (a regression's samples are one group); both parts keep the source's order.
    /// - Throws: `DataError.invalidArgument` naming `--test-fraction` for a fraction outside [0, 1) or one that
    ///   leaves no training samples.
    public func splittingOffTest(fraction: Double, seed: UInt64) throws -> (train: LabeledSamples, test: LabeledSamples) {
        guard fraction >= 0, fraction < 1 else {
            throw DataError.invalidArgument(name: "--test-fraction \(fraction)", reason: "expected a fraction from 0 up to (not including) 1")
        }
        var byClass = [[Int]](repeating: [], count: max(classCount, 1))
        if isRegression {
            byClass[0] = Array(0..<count)
        } else {
            for (i, l) in labels.enumerated() { byClass[Int(l)].append(i) }
        }
        var generator = SeededGenerator(seed: seed ^ 0x7E57_5_9117)
        var isTest = [Bool](repeating: false, count: count)
        for var members in byClass where !members.isEmpty {
            generator.shuffle(&members)
            for i in members.prefix(Int((Double(members.count) * fraction).rounded())) { isTest[i] = true }
        }
        let test = (0..<count).filter { isTest[$0] }, train = (0..<count).filter { !isTest[$0] }
        guard !train.isEmpty else {
            throw DataError.invalidArgument(name: "--test-fraction \(fraction)", reason: "leaves none of the \(count.grouped) samples for training")
        }
        return (subset(train), subset(test))
    }
}
