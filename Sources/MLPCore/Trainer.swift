import Foundation
import MNIST

/// Why training stopped early.
public enum TrainingError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The loss became NaN or infinite. `steps` is the step at which it was seen, or the range of steps in which
    /// it happened when the backend's loss is read only now and then.
    case diverged(steps: ClosedRange<Int>, loss: Float, learningRate: Float)
    /// `shouldStop` asked for a stop (Ctrl-C).
    case interrupted(progress: TrainingProgress)

    /// The message the tool prints.
    public var description: String {
        switch self {
        case let .diverged(steps, loss, lr):
            let at = steps.count == 1 ? "at step \(steps.lowerBound)" : "between steps \(steps.lowerBound) and \(steps.upperBound)"
            return "training diverged \(at): the loss is \(loss). Try a lower learning rate (--lr, now \(lr))."
        case let .interrupted(progress):
            return "interrupted at epoch \(progress.epoch + 1), step \(progress.stepInEpoch)"
        }
    }
}

/// Runs epochs of seeded, shuffled batches through a `Network`, evaluates after each epoch, and reports.
///
/// The trainer takes data already resident on the backend and sample indices (the training part of a split), not a
/// particular dataset. Its state is `progress`; together with the network's parameters and optimizer state it
/// is everything a checkpoint needs to continue the run with the same result.
public final class Trainer {
    /// The network being trained.
    public let network: Network
    /// The run.
    public let configuration: TrainingConfiguration
    /// The training data: resident on the network's backend, or streamed to it.
    public let trainingData: any BatchSource
    /// The samples of `trainingData` trained on.
    public let trainingIndices: [Int32]
    /// The evaluation set after each epoch, and what to call it.
    public let evaluation: (data: any BatchSource, indices: [Int32], name: String)?
    /// Where the run stands; a checkpoint saves it.
    public private(set) var progress: TrainingProgress

    /// Called after every step with the progress and the number of steps in the epoch (for a progress line).
    public var onStep: ((TrainingProgress, Int) -> Void)?
    /// Called after every epoch, with its metrics and the progress at its end (for output and checkpoints).
    public var onEpoch: ((EpochMetrics, TrainingProgress) throws -> Void)?
    /// Polled after every step; returning `true` stops training with `TrainingError.interrupted`.
    public var shouldStop: (() -> Bool)?
    /// Polled after every epoch (after `onEpoch`); returning `true` ends the run there, as finished (early stopping).
    public var shouldFinish: (() -> Bool)?
    /// A regression's targets' standard deviations (the factor from standardised to own units, per output), so that
    /// the epoch's RMSE and MAE are reported in the targets' own units; nil: the stored units.
    public var targetScale: [Double]?
    /// For backends whose memory is not the host's: how many steps may pass between loss checks.
    public var divergenceCheckInterval = 100

    /// A trainer for a network already set up (parameters set, or restored from a checkpoint).
    /// - Parameters:
    ///   - network: the network to train, on the backend that holds `trainingData`.
    ///   - configuration: the run: optimizer, schedule, epochs, batch size, seed (which fixes every shuffle).
    ///   - trainingData: the dataset, resident on the network's backend or streamed to it (`StreamedDataset`, whose
    ///     batch capacity must be at least the batch size).
    ///   - trainingIndices: the samples of `trainingData` to train on (all of them, or what a validation split
    ///     leaves).
    ///   - evaluation: the set evaluated after every epoch (data, sample indices, and its name in the metrics:
    ///     "test" or "validation"), or `nil` for none.
    ///   - progress: where to start (`nil`: a new run, at the first epoch).
    /// - Throws: `ConfigurationError` when there are no training samples, or when the last partial batch is
    ///   dropped and a batch is larger than the training samples, or a batch larger than a streamed source's
    ///   capacity.
    public init(
        network: Network, configuration: TrainingConfiguration, trainingData: any BatchSource, trainingIndices: [Int32],
        evaluation: (data: any BatchSource, indices: [Int32], name: String)?, progress: TrainingProgress? = nil
    ) throws {
        guard !trainingIndices.isEmpty else {
            throw ConfigurationError(flag: "--validation", value: "\(configuration.validationCount)", expected: "some training samples left")
        }
        if configuration.dropLast && configuration.batchSize > trainingIndices.count {
            throw ConfigurationError(
                flag: "--batch-size", value: "\(configuration.batchSize)",
                expected: "at most the \(trainingIndices.count) training samples when the last partial batch is dropped")
        }
        // A streamed source's windows hold `batchCapacity` samples: a training batch, and an evaluation's batches of up
        // to `maxBatch`, must fit.
        var needs = [(trainingData, configuration.batchSize)]
        if let evaluation { needs.append((evaluation.data, min(network.maxBatch, evaluation.indices.count))) }
        for (source, rows) in needs {
            if let stream = source as? StreamedDataset, stream.batchCapacity < rows {
                throw ConfigurationError(flag: "--batch-size", value: "\(rows)",
                                         expected: "batches of at most the streamed dataset's capacity, \(stream.batchCapacity) samples")
            }
        }
        self.network = network
        self.configuration = configuration
        self.trainingData = trainingData
        self.trainingIndices = trainingIndices
        self.evaluation = evaluation
        self.progress = progress ?? TrainingProgress(epochGeneratorState: configuration.dataGenerator.stateWords)
        network.normalization = configuration.normalization
    }

    /// Number of steps in each epoch.
    public var stepsPerEpoch: Int {
        configuration.dropLast ? trainingIndices.count / configuration.batchSize
            : (trainingIndices.count + configuration.batchSize - 1) / configuration.batchSize
    }

    /// Runs the network's step shapes of this run (`Network.warmUp`: each kind of step, three times, for a full batch
    /// and for the epoch's last partial batch, and the evaluation's batches) and leaves the network as it was, so that a backend's
    /// one-time costs are not counted in the first epoch's time. Returns the seconds it took.
    /// - Throws: a backend failure.
    public func warmUp() throws -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        let size = configuration.batchSize, count = trainingIndices.count
        var batchSizes = [min(size, count)]
        if !configuration.dropLast, count % size != 0, count > size { batchSizes.append(count % size) }
        // The evaluation's batches: as many rows as the network takes, and what is left at the end.
        let evaluationBatches = evaluation.map { e -> (data: any BatchSource, batchSizes: [Int]) in
            let n = e.indices.count, largest = network.maxBatch
            return (e.data, n % largest != 0 && n > largest ? [largest, n % largest] : [min(largest, n)])
        }
        let step = configuration.optimizer.step(1, learningRate: configuration.schedule.rate(atStep: 0))
        network.warmUp(trainingData, batchSizes: batchSizes, evaluation: evaluationBatches, step: step)
        try network.backend.synchronize()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// Trains until `configuration.epochs` epochs are done, from wherever `progress` stands.
    /// - Returns: the metrics of the epochs trained by this call.
    /// - Throws: `TrainingError.diverged` (the loss is not finite), `.interrupted`, or what `onEpoch` throws.
    @discardableResult
    public func run() throws -> [EpochMetrics] {
        var history = [EpochMetrics]()
        let backend = network.backend
        while progress.epoch < configuration.epochs {
            var generator = SeededGenerator(state: progress.epochGeneratorState)
            let batches = EpochBatches(
                indices: trainingIndices, batchSize: configuration.batchSize, dropLast: configuration.dropLast,
                generator: &generator)
            network.resetTrainingMetrics()
            var samples = 0
            var lastCheckedStep = progress.globalStep
            let start = DispatchTime.now().uptimeNanoseconds
            var learningRate = configuration.schedule.rate(atStep: progress.globalStep)
            // The batches left in this epoch, from wherever the data holds them (a streamed pass gathers them ahead).
            let pass = try trainingData.pass((progress.stepInEpoch..<batches.count).map { batches.order[batches.range(ofBatch: $0)] })
            defer { pass.end() }
            for b in progress.stepInEpoch..<batches.count {
                guard let batch = try pass.next() else { break }
                learningRate = configuration.schedule.rate(atStep: progress.globalStep)
                network.trainStep(
                    batch.data, batch: batch.rows, step: configuration.optimizer.step(progress.globalStep + 1, learningRate: learningRate),
                    next: batch.next)
                samples += batch.rows.count
                progress.globalStep += 1
                progress.stepInEpoch = b + 1
                if backend.isHostMemory || progress.globalStep - lastCheckedStep >= divergenceCheckInterval {
                    try checkFinite(since: lastCheckedStep, learningRate: learningRate)
                    lastCheckedStep = progress.globalStep
                }
                onStep?(progress, batches.count)
                if shouldStop?() == true, b + 1 < batches.count { throw TrainingError.interrupted(progress: progress) }
            }
            try backend.synchronize()
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            try checkFinite(since: lastCheckedStep, learningRate: learningRate)
            let (lossSum, correct) = network.readTrainingMetrics()

            progress.epoch += 1
            progress.stepInEpoch = 0
            progress.epochGeneratorState = generator.stateWords

            var metrics = EpochMetrics(
                epoch: progress.epoch, trainLoss: Double(lossSum) / Double(max(samples, 1)),
                trainAccuracy: trainingData.isRegression ? nil : Double(correct) / Double(max(samples, 1)), testLoss: nil, testAccuracy: nil,
                evaluatedOn: nil, samplesPerSecond: Double(samples) / max(seconds, 1e-9), seconds: seconds,
                learningRate: Double("\(learningRate)") ?? Double(learningRate), steps: batches.count)
            if let evaluation {
                let result = try network.evaluate(source: evaluation.data, indices: evaluation.indices)
                metrics.testLoss = result.loss
                if let errors = result.regression {
                    metrics.testRMSE = errors.rmse(scale: targetScale)
                    metrics.testMAE = errors.mae(scale: targetScale)
                    metrics.testR2 = errors.r2
                } else {
                    metrics.testAccuracy = result.accuracy
                }
                metrics.evaluatedOn = evaluation.name
            }
            history.append(metrics)
            try onEpoch?(metrics, progress)
            if shouldFinish?() == true { break }
            if shouldStop?() == true, progress.epoch < configuration.epochs { throw TrainingError.interrupted(progress: progress) }
        }
        return history
    }

    private func checkFinite(since lastChecked: Int, learningRate: Float) throws {
        let loss = network.readTrainingMetrics().lossSum
        if !loss.isFinite {
            throw TrainingError.diverged(
                steps: min(lastChecked + 1, progress.globalStep)...progress.globalStep, loss: loss, learningRate: learningRate)
        }
    }
}
