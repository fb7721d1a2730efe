/// What a trained network expects of its data, kept in its checkpoints so that `eval` and `predict` read new data the
/// same way: the classes (by name, in the order of the network's outputs), the features (a table's column names), the
/// shape and stored type of a sample, and the standardisation fitted on the training data.
public struct DataDescription: Sendable, Equatable, Codable {
    /// The classes, output by output.
    public var classNames: [String]
    /// A table's feature columns, in the order of the network's inputs; empty for arrays and pictures.
    public var featureNames: [String]
    /// One sample's shape (`[28, 28]`, `[13]`).
    public var sampleShape: [Int]
    /// How the samples were stored.
    public var valueType: SampleValueType
    /// The per-feature standardisation applied to float samples, if any.
    public var standardization: Standardization?
    /// The CSV column that held the classes (or a regression's target), if the data was a table.
    public var target: String?
    /// A regression's targets, output by output; nil for a classifier.
    public var targetNames: [String]?
    /// The standardisation of a regression's targets (the network predicts standardised values; `restore` maps them
    /// back to the targets' units).
    public var targetStandardization: Standardization?

    /// What the network predicts.
    public var task: DataSource.Task { targetNames == nil ? .classification : .regression }

    enum CodingKeys: String, CodingKey {
        case classNames = "classes", featureNames = "features", sampleShape = "sample_shape", valueType = "value_type",
             standardization, target, targetNames = "targets", targetStandardization = "target_standardization"
    }

    /// The description of `samples` (with its standardisation, if one is applied).
    public init(_ samples: LabeledSamples, standardization: Standardization? = nil, target: String? = nil,
                targetStandardization: Standardization? = nil) {
        classNames = samples.classNames
        targetNames = samples.isRegression ? samples.targetNames : nil
        self.targetStandardization = targetStandardization
        featureNames = samples.featureNames
        sampleShape = samples.sampleShape
        valueType = samples.values.type
        self.standardization = standardization
        self.target = target
    }
}
