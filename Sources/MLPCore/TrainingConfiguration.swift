import MNIST

/// Everything that defines a training run besides the data: architecture, optimizer, schedule, batching, seed.
///
/// A checkpoint stores it, so that `--resume` continues the same run.
public struct TrainingConfiguration: Sendable, Equatable, Codable {
    /// The architecture.
    public var network: NetworkSpec
    /// The optimizer and its hyperparameters.
    public var optimizer: OptimizerConfiguration
    /// The learning rate at each step.
    public var schedule: LearningRateSchedule
    /// Epochs in the whole run.
    public var epochs: Int
    /// Samples per step.
    public var batchSize: Int
    /// Leave out the last batch of an epoch when it is smaller than `batchSize`.
    public var dropLast: Bool
    /// Seeds the initial weights and every epoch's shuffle.
    public var seed: UInt64
    /// The map from pixel bytes to inputs (float samples, a table's, are used as they are).
    public var normalization: Normalization
    /// Samples held out of the training set for validation (0: evaluate on the test set).
    public var validationCount: Int

    /// A run's configuration; every value is checked.
    /// - Throws: `ConfigurationError` naming `--epochs` or `--batch-size` when it is below 1.
    public init(
        network: NetworkSpec, optimizer: OptimizerConfiguration, schedule: LearningRateSchedule, epochs: Int,
        batchSize: Int, dropLast: Bool = false, seed: UInt64 = 0, normalization: Normalization = .unit,
        validationCount: Int = 0
    ) throws {
        guard epochs >= 1 else { throw ConfigurationError(flag: "--epochs", value: "\(epochs)", expected: "at least 1") }
        guard batchSize >= 1 else { throw ConfigurationError(flag: "--batch-size", value: "\(batchSize)", expected: "at least 1") }
        self.network = network
        self.optimizer = optimizer
        self.schedule = schedule
        self.epochs = epochs
        self.batchSize = batchSize
        self.dropLast = dropLast
        self.seed = seed
        self.normalization = normalization
        self.validationCount = validationCount
    }

    /// The generator for initial weights.
    public var initializationGenerator: SeededGenerator { SeededGenerator(seed: seed) }
    /// The generator for the epochs' shuffles (a separate stream, so that changing one does not move the other).
    public var dataGenerator: SeededGenerator { SeededGenerator(seed: seed ^ 0xD1B5_4A32_D192_ED03) }
}

/// Where a run stands: enough to continue it exactly.
public struct TrainingProgress: Sendable, Equatable, Codable {
    /// The epoch in progress, 0-based (equal to the number of finished epochs at an epoch boundary).
    public var epoch: Int
    /// Batches of `epoch` already trained.
    public var stepInEpoch: Int
    /// Optimizer steps taken since the start of the run.
    public var globalStep: Int
    /// The data generator's state at the start of `epoch`, before its shuffle: the epoch's order is drawn again
    /// from it on resume.
    public var epochGeneratorState: [UInt64]

    /// A position in a run: completed epochs, steps into the current one, steps in all, and the state of the generator that shuffles the current epoch.
    public init(epoch: Int = 0, stepInEpoch: Int = 0, globalStep: Int = 0, epochGeneratorState: [UInt64]) {
        self.epoch = epoch
        self.stepInEpoch = stepInEpoch
        self.globalStep = globalStep
        self.epochGeneratorState = epochGeneratorState
    }

    // UInt64 words travel as strings: JSON numbers are doubles to most readers.
    enum CodingKeys: String, CodingKey { case epoch, stepInEpoch = "step_in_epoch", globalStep = "global_step", epochGeneratorState = "generator_state" }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        epoch = try c.decode(Int.self, forKey: .epoch)
        stepInEpoch = try c.decode(Int.self, forKey: .stepInEpoch)
        globalStep = try c.decode(Int.self, forKey: .globalStep)
        let words = try c.decode([String].self, forKey: .epochGeneratorState)
        epochGeneratorState = try words.map {
            guard let w = UInt64($0, radix: 16) else {
                throw DecodingError.dataCorruptedError(forKey: .epochGeneratorState, in: c, debugDescription: "'\($0)' is not a hexadecimal word")
            }
            return w
        }
        guard epochGeneratorState.count == 4, epochGeneratorState.contains(where: { $0 != 0 }) else {
            throw DecodingError.dataCorruptedError(forKey: .epochGeneratorState, in: c, debugDescription: "expected four words, not all zero")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(epoch, forKey: .epoch)
        try c.encode(stepInEpoch, forKey: .stepInEpoch)
        try c.encode(globalStep, forKey: .globalStep)
        try c.encode(epochGeneratorState.map { String($0, radix: 16) }, forKey: .epochGeneratorState)
    }
}

/// The measurements of one epoch, as printed and as written to the metrics file.
public struct EpochMetrics: Sendable, Equatable, Codable {
    /// 1-based.
    public var epoch: Int
    /// Mean training loss over the epoch's steps.
    public var trainLoss: Double
    /// Fraction of the epoch's training samples predicted right (classification; nil for a regression).
    public var trainAccuracy: Double?
    /// Loss and accuracy on the evaluation set (the test set, or the validation split when one is held out).
    public var testLoss: Double?
    /// Accuracy on the evaluation set (classification).
    public var testAccuracy: Double?
    /// A regression's root mean squared error, mean absolute error (both in the targets' own units) and R² on the
    /// evaluation set.
    public var testRMSE: Double?
    public var testMAE: Double?
    public var testR2: Double?
    /// "test" or "validation".
    public var evaluatedOn: String?
    /// Training samples per second of training time.
    public var samplesPerSecond: Double
    /// Seconds of training in this epoch (evaluation excluded).
    public var seconds: Double
    /// The learning rate at the epoch's last step.
    public var learningRate: Double
    /// Optimizer steps in the epoch.
    public var steps: Int

    public init(epoch: Int, trainLoss: Double, trainAccuracy: Double?, testLoss: Double?, testAccuracy: Double?,
                testRMSE: Double? = nil, testMAE: Double? = nil, testR2: Double? = nil, evaluatedOn: String?,
                samplesPerSecond: Double, seconds: Double, learningRate: Double, steps: Int) {
        self.epoch = epoch
        self.trainLoss = trainLoss
        self.trainAccuracy = trainAccuracy
        self.testLoss = testLoss
        self.testAccuracy = testAccuracy
        self.testRMSE = testRMSE
        self.testMAE = testMAE
        self.testR2 = testR2
        self.evaluatedOn = evaluatedOn
        self.samplesPerSecond = samplesPerSecond
        self.seconds = seconds
        self.learningRate = learningRate
        self.steps = steps
    }

    enum CodingKeys: String, CodingKey {
        case epoch, trainLoss = "train_loss", trainAccuracy = "train_accuracy", testLoss = "test_loss",
             testAccuracy = "test_accuracy", testRMSE = "test_rmse", testMAE = "test_mae", testR2 = "test_r2", evaluatedOn = "evaluated_on", samplesPerSecond = "samples_per_second",
             seconds, learningRate = "learning_rate", steps
    }
}
