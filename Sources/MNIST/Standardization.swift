/// Per-feature standardisation of float samples: `x' = (x − mean) / standardDeviation`, with each feature's mean and
/// standard deviation taken from the training samples only, and applied unchanged to test data and to whatever
/// `eval` and `predict` are given later (a checkpoint keeps it).
///
/// A feature that is constant in the training data keeps a divisor of 1: it becomes 0 everywhere in training, and
/// other data keeps its offset from the training value.
public struct Standardization: Sendable, Equatable, Codable {
    /// Each feature's training mean (in Double: a Float would move data far from 0 by up to half its unit in the last
    /// place, a visible offset once divided by a small deviation).
    public var mean: [Double]
    /// Each feature's training standard deviation (population, divisor n), 1 where it is 0.
    public var standardDeviation: [Double]
    /// The features whose training values are all the same.
    public var constantFeatures: [Int]

    enum CodingKeys: String, CodingKey {
        case mean, standardDeviation = "std", constantFeatures = "constant_features"
    }

    /// The statistics of `samples` (float values only; pictures are not standardised per feature), over the samples at
    /// `indices` (all of them when nil).
    public init(fitting samples: LabeledSamples, indices: [Int32]? = nil) {
        guard case .floats(let values) = samples.values else {
            preconditionFailure("only float samples are standardised per feature")
        }
        self.init(fittingRows: values, columns: samples.featureCount, indices: indices)
    }

    /// The statistics of a regression's targets over the samples at `indices` (all when nil): the network learns
    /// standardised targets, and its outputs are mapped back to the targets' own units (`restore`).
    public init(fittingTargetsOf samples: LabeledSamples, indices: [Int32]? = nil) {
        precondition(samples.isRegression, "only a regression's targets are standardised")
        self.init(fittingRows: samples.targets, columns: samples.targetCount, indices: indices)
    }

    /// The statistics of each column of `values` (rows of `columns`) over the rows at `indices` (all when nil). Sums
    /// are taken in Double, in two passes, so a large offset costs no accuracy.
    public init(fittingRows values: [Float], columns f: Int, indices: [Int32]? = nil) {
        let rows = indices.map { $0.map(Int.init) } ?? Array(0..<(f > 0 ? values.count / f : 0))
        var sum = [Double](repeating: 0, count: f)
        for r in rows {
            for j in 0..<f { sum[j] += Double(values[r * f + j]) }
        }
        let n = Double(max(rows.count, 1))
        let mean = sum.map { $0 / n }
        var squares = [Double](repeating: 0, count: f)
        for r in rows {
            for j in 0..<f {
                let d = Double(values[r * f + j]) - mean[j]
                squares[j] += d * d
            }
        }
        self.mean = mean
        var constant = [Int]()
        standardDeviation = squares.enumerated().map { j, s in
            let deviation = (s / n).squareRoot()
            // Relative to the mean's size: a column that differs only in its last bits is constant too.
            if deviation <= 1e-7 * max(abs(mean[j]), 1e-30) || deviation == 0 {
                constant.append(j)
                return 1
            }
            return deviation
        }
        constantFeatures = constant
    }

    /// A standardisation from stored statistics (a checkpoint's).
    public init(mean: [Double], standardDeviation: [Double], constantFeatures: [Int] = []) {
        self.mean = mean
        self.standardDeviation = standardDeviation
        self.constantFeatures = constantFeatures
    }

    /// Features it applies to.
    public var featureCount: Int { mean.count }

    /// Standardises `samples` in place.
    /// - Precondition: float samples of `featureCount` features.
    public func apply(to samples: inout LabeledSamples) {
        guard case .floats(var values) = samples.values else { preconditionFailure("only float samples are standardised") }
        samples.values = .bytes([])  // drop the enum's reference so that the array is modified in place, not copied
        apply(to: &values)
        samples.values = .floats(values)
    }

    /// Standardises rows of `featureCount` values in place.
    public func apply(to values: inout [Float]) {
        let f = featureCount
        precondition(f > 0 && values.count % f == 0, "values are not rows of \(f) features")
        let inverse = standardDeviation.map { 1 / $0 }
        values.withUnsafeMutableBufferPointer { v in
            var i = 0
            while i < v.count {
                for j in 0..<f { v[i + j] = Float((Double(v[i + j]) - mean[j]) * inverse[j]) }
                i += f
            }
        }
    }

    /// Maps standardised rows of `featureCount` values back to their own units in place: `x = x' · std + mean` (a
    /// regression network's outputs to predictions).
    public func restore(_ values: inout [Float]) {
        let f = featureCount
        precondition(f > 0 && values.count % f == 0, "values are not rows of \(f) columns")
        var i = 0
        while i < values.count {
            for j in 0..<f { values[i + j] = Float(Double(values[i + j]) * standardDeviation[j] + mean[j]) }
            i += f
        }
    }

    /// Standardises a regression's targets in place.
    public func applyToTargets(of samples: inout LabeledSamples) {
        precondition(samples.isRegression && samples.targetCount == featureCount, "targets of the wrong width")
        var t = samples.targets
        samples.targets = []
        apply(to: &t)
        samples.targets = t
    }
}
