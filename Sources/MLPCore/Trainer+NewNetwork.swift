import MNIST

extension Trainer {
    /// A trainer for a new network, everything set up from the configuration: the network allocated on `backend`
    /// (for batches of up to `max(batchSize, 1000)` rows, so evaluations go 1000 samples at a time), its parameters
    /// initialised from the configuration's seed (He or Glorot, see `ParameterLayout.initialParameters`), and
    /// the samples uploaded to the backend once (or streamed from host memory where they would take more than half of a
    /// GPU's free memory: `DataPlacement`).
    ///
    /// ```swift
    /// let mnist = try Dataset.load(directory: DatasetLocator.locate(.mnist))
    /// let trainer = try Trainer(configuration: configuration, backend: CPUBackend(),
    ///                           training: mnist.train, evaluation: mnist.test)
    /// let history = try trainer.run()   // one EpochMetrics per epoch
    /// ```
    /// - Parameters:
    ///   - configuration: the network and the run (optimizer, schedule, epochs, batch size, seed).
    ///   - backend: where to train.
    ///   - training: the samples to train on, all of them (hold some out with `ValidationSplit` first if needed).
    ///   - evaluation: evaluated after every epoch under the name "test", if given.
    /// - Throws: `ConfigurationError` when the images do not fit the network (features or classes); a backend
    ///   error when memory runs out.
    public convenience init(
        configuration: TrainingConfiguration, backend: any Backend, training: LabeledImages, evaluation: LabeledImages? = nil
    ) throws {
        try self.init(configuration: configuration, backend: backend, training: LabeledSamples(training), evaluation: evaluation.map { LabeledSamples($0) })
    }

    /// A trainer for a new network on any labelled samples (a table's rows, arrays, pictures), set up as the
    /// initialiser for images is. A table's features are best standardised first (`Standardization`).
    public convenience init(
        configuration: TrainingConfiguration, backend: any Backend, training: LabeledSamples, evaluation: LabeledSamples? = nil
    ) throws {
        let spec = configuration.network
        for images in [training] + (evaluation.map { [$0] } ?? []) {
            guard images.featureCount == spec.inputSize else {
                throw ConfigurationError(flag: "--layers", value: spec.sizesText, expected: "an input size of \(images.featureCount), the features of the data")
            }
            guard images.isRegression == spec.loss.isRegression else {
                throw ConfigurationError(flag: "--loss", value: spec.loss.rawValue, expected: images.isRegression
                    ? "a regression loss (\(Loss.regressionCases.map(\.rawValue).joined(separator: ", "))) for data with real-valued targets"
                    : "a classification loss (\(Loss.classificationCases.map(\.rawValue).joined(separator: ", "))) for data with class labels")
            }
            guard images.outputCount == spec.outputSize else {
                throw ConfigurationError(flag: "--layers", value: spec.sizesText, expected: "an output size of \(images.outputCount), the \(images.isRegression ? "targets" : "classes") of the data")
            }
        }
        let network = try Network(spec: spec, optimizer: configuration.optimizer, backend: backend,
                                  maxBatch: max(configuration.batchSize, 1000))
        var generator = configuration.initializationGenerator
        network.setParameters(ParameterLayout(spec).initialParameters(for: spec, using: &generator))
        // Copied to the backend whole, or streamed from host memory where it would take more than half of a GPU's free
        // memory (`DataPlacement`).
        let placement = try DataPlacement.choose(for: [training] + (evaluation.map { [$0] } ?? []), backend: backend,
                                                 forced: nil, memoryLimit: nil)
        let evaluationSet = try evaluation.map { images in
            (data: try placement.source(images, on: backend, batchCapacity: network.maxBatch), indices: (0..<Int32(images.count)).map { $0 },
             name: "test")
        }
        try self.init(network: network, configuration: configuration,
                      trainingData: placement.source(training, on: backend, batchCapacity: network.maxBatch),
                      trainingIndices: (0..<Int32(training.count)).map { $0 }, evaluation: evaluationSet)
    }
}
