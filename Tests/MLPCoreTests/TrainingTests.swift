import Foundation
import MLPCore
import MNIST
import NaiveBackend
import Testing
import TestSupport

@Suite struct TrainingTests {
    static func configuration(epochs: Int, optimizer: OptimizerConfiguration = .adam(learningRate: 3e-3)) throws -> TrainingConfiguration {
        try TrainingConfiguration(
            network: NetworkSpec(layerSizes: [15, 13, 11, 4]), optimizer: optimizer,
            schedule: LearningRateSchedule(base: optimizer.learningRate), epochs: epochs, batchSize: 7, seed: 9)
    }

    static func trainer(_ configuration: TrainingConfiguration, data: ResidentDataset, progress: TrainingProgress? = nil, parameters: [Float]? = nil, state: [Float]? = nil, schedule: StepSchedule? = nil) throws -> Trainer {
        let network = try Network(spec: configuration.network, optimizer: configuration.optimizer, backend: data.backend, maxBatch: 64, schedule: schedule)
        if let parameters {
            network.setParameters(parameters)
        } else {
            var g = configuration.initializationGenerator
            network.setParameters(ParameterLayout(configuration.network).initialParameters(for: configuration.network, using: &g))
        }
        if let state { network.setOptimizerState(state) }
        return try Trainer(network: network, configuration: configuration, trainingData: data, trainingIndices: (0..<Int32(data.count)).map { $0 }, evaluation: nil, progress: progress)
    }

    @Test func lossFallsOnASmallProblem() throws {
        let backend = NaiveBackend()
        let data = try ResidentDataset(syntheticImages(count: 60), on: backend)
        let history = try Self.trainer(Self.configuration(epochs: 30), data: data).run()
        #expect(history.count == 30)
        #expect(history.last!.trainLoss < history.first!.trainLoss * 0.5)
        #expect(history.last!.trainAccuracy! > 0.8)
    }

    /// Two epochs in one go against one epoch, a checkpoint written to disk and read back, and a second epoch:
    /// the same weights, bit for bit.
    @Test(arguments: [OptimizerConfiguration.adam(learningRate: 3e-3), try! OptimizerConfiguration(kind: .sgd, learningRate: 0.05, momentum: 0.9)])
    func resumeIsExact(optimizer: OptimizerConfiguration) throws {
        let backend = NaiveBackend()
        let data = try ResidentDataset(syntheticImages(count: 61), on: backend)  // 61 = 8 batches of 7 and one of 5
        let uninterrupted = try Self.trainer(Self.configuration(epochs: 2, optimizer: optimizer), data: data)
        try uninterrupted.run()

        let first = try Self.trainer(Self.configuration(epochs: 1, optimizer: optimizer), data: data)
        try first.run()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("last.safetensors")
        try Checkpoint(trainer: first).write(to: url)
        let saved = try Checkpoint.read(from: url)
        var configuration = saved.configuration
        #expect(configuration == first.configuration)
        configuration.epochs = 2
        let resumed = try Self.trainer(configuration, data: data, progress: saved.progress, parameters: saved.parameters, state: saved.optimizerState)
        try resumed.run()
        #expect(resumed.network.parameterValues() == uninterrupted.network.parameterValues())
        #expect(resumed.progress == uninterrupted.progress)
    }

    /// Stopped in the middle of an epoch (as Ctrl-C does), saved, resumed: the same weights as a run never stopped.
    @Test func resumeFromTheMiddleOfAnEpochIsExact() throws {
        let backend = NaiveBackend()
        let data = try ResidentDataset(syntheticImages(count: 50), on: backend)
        let uninterrupted = try Self.trainer(Self.configuration(epochs: 2), data: data)
        try uninterrupted.run()
        let stopped = try Self.trainer(Self.configuration(epochs: 2), data: data)
        var steps = 0
        stopped.shouldStop = { steps += 1; return steps == 10 }
        #expect(throws: TrainingError.self) { try stopped.run() }
        #expect(stopped.progress.epoch == 1 && stopped.progress.stepInEpoch > 0)
        let checkpoint = Checkpoint(trainer: stopped)
        let resumed = try Self.trainer(checkpoint.configuration, data: data, progress: checkpoint.progress, parameters: checkpoint.parameters, state: checkpoint.optimizerState)
        try resumed.run()
        #expect(resumed.network.parameterValues() == uninterrupted.network.parameterValues())
    }

    @Test func divergenceStopsWithTheStep() throws {
        let backend = NaiveBackend()
        let data = try ResidentDataset(syntheticImages(count: 60), on: backend)
        let sgd = try OptimizerConfiguration(kind: .sgd, learningRate: 1e20)
        let error = #expect(throws: TrainingError.self) { try Self.trainer(Self.configuration(epochs: 5, optimizer: sgd), data: data).run() }
        guard case let .diverged(steps, _, lr) = error else { Issue.record("expected divergence, got \(String(describing: error))"); return }
        #expect(steps.count == 1 && lr == 1e20)
        #expect(error!.description.contains("Try a lower learning rate (--lr, now 1e+20)"))
    }

    @Test func sameSeedSameWeights() throws {
        let backend = NaiveBackend()
        let data = try ResidentDataset(syntheticImages(count: 40), on: backend)
        let a = try Self.trainer(Self.configuration(epochs: 2), data: data)
        let b = try Self.trainer(Self.configuration(epochs: 2), data: data)
        try a.run()
        try b.run()
        #expect(a.network.parameterValues() == b.network.parameterValues())
    }

    /// A warm-up (`Trainer.warmUp`: three steps of each batch size, the evaluation's batches) leaves the network as it
    /// was: the run after it ends with the same weights, state and metrics as one without it.
    @Test func aWarmUpChangesNothing() throws {
        var results = [[Float]]()
        let data = try ResidentDataset(syntheticImages(count: 40), on: NaiveBackend())
        for warms in [false, true] {
            let trainer = try Self.trainer(Self.configuration(epochs: 2), data: data)
            if warms {
                let before = trainer.network.parameterValues()
                _ = try trainer.warmUp()
                #expect(trainer.network.parameterValues() == before)
            }
            let history = try trainer.run()
            results.append(trainer.network.parameterValues() + trainer.network.optimizerStateValues() + history.map { Float($0.trainLoss) })
        }
        let largest = zip(results[0], results[1]).map { abs($0 - $1) }.max()!
        #expect(largest == 0, "weights, state or losses differ by up to \(largest)")
    }

    /// A step told the next step's batch may gather it after its update (`Network.trainStep`'s `next`, with a schedule
    /// that `gathersNextBatch`); the next step then skips its gather. The same network either way, bit for bit,
    /// through: a next batch of the same rows, a step whose batch is not the one its predecessor was told (same size:
    /// it must gather its own), a next batch of another size (not gathered ahead), an evaluation between a step and
    /// the next (it overwrites the inputs), layer-by-layer updates, and `Trainer`'s epochs.
    @Test(arguments: [false, true])
    func gatheringTheNextBatchInTheUpdateChangesNothing(eachLayer: Bool) throws {
        let spec = try NetworkSpec(layerSizes: [15, 13, 11, 4])
        let optimizer = OptimizerConfiguration.adam(learningRate: 3e-3)
        var g = SeededGenerator(seed: 21)
        let initial = ParameterLayout(spec).initialParameters(for: spec, using: &g)
        let images = syntheticImages(count: 40)
        let batches = (0..<8).map { _ in (0..<Int32(40)).shuffled(using: &g).prefix(7) }
        // (batch, next): told right, told and then another batch, a smaller next batch, the same batch again.
        let plan: [(Int, Int?)] = [(0, 1), (1, 2), (2, 3), (4, 5), (5, nil), (6, 6), (6, 6), (6, nil), (7, nil)]
        var results = [[Float]]()
        for ahead in [false, true] {
            let backend = NaiveBackend()
            let data = try ResidentDataset(images, on: backend)
            let network = try Network(spec: spec, optimizer: optimizer, backend: backend, maxBatch: 64,
                                      schedule: StepSchedule(updatesEachLayer: eachLayer, gathersNextBatch: ahead))
            network.setParameters(initial)
            var evaluations = [Float]()
            for (s, (b, next)) in plan.enumerated() {
                let nextBatch: ArraySlice<Int32>? = next.map { s == 3 ? batches[$0].prefix(5) : batches[$0] }
                network.trainStep(data, batch: batches[b], step: optimizer.step(s + 1, learningRate: 3e-3), next: nextBatch)
                if s == 1 { evaluations.append(Float(network.evaluate(data, indices: Array(batches[7])).loss)) }
            }
            let (loss, correct) = network.readTrainingMetrics()
            results.append(network.parameterValues() + network.optimizerStateValues() + evaluations + [loss, Float(correct)])
        }
        let largest = zip(results[0], results[1]).map { abs($0 - $1) }.max()!
        #expect(largest == 0, "parameters, state or metrics differ by up to \(largest)")

        // Whole epochs through the trainer, which tells each step the next one.
        var epochs = [[Float]]()
        for ahead in [false, true] {
            let data = try ResidentDataset(images, on: NaiveBackend())
            let trainer = try Self.trainer(Self.configuration(epochs: 2), data: data,
                                           schedule: StepSchedule(updatesEachLayer: eachLayer, gathersNextBatch: ahead))
            try trainer.run()
            epochs.append(trainer.network.parameterValues() + trainer.network.optimizerStateValues())
        }
        #expect(epochs[0] == epochs[1])
    }

    /// Updating each layer as soon as its gradients are final (`StepSchedule.updatesEachLayer`, as the cuda backend
    /// does for large networks) gives the same network, bit for bit, as one update over every layer at the end of
    /// the step: for Adam and for SGD with momentum (one state slot), and for a network of one layer.
    @Test(arguments: [OptimizerConfiguration.adam(learningRate: 3e-3), try! OptimizerConfiguration(kind: .sgd, learningRate: 0.05, momentum: 0.9)])
    func updatingEachLayerChangesNothing(optimizer: OptimizerConfiguration) throws {
        for sizes in [[15, 13, 11, 4], [15, 4]] {
            var results = [[Float]]()
            let data = try ResidentDataset(syntheticImages(count: 40), on: NaiveBackend())
            for eachLayer in [false, true] {
                var configuration = try Self.configuration(epochs: 2, optimizer: optimizer)
                configuration.network = try NetworkSpec(layerSizes: sizes)
                let trainer = try Self.trainer(configuration, data: data, schedule: StepSchedule(updatesEachLayer: eachLayer, gathersNextBatch: false))
                try trainer.run()
                results.append(trainer.network.parameterValues() + trainer.network.optimizerStateValues())
            }
            let largest = zip(results[0], results[1]).map { abs($0 - $1) }.max()!
            #expect(largest == 0, "\(sizes): parameters or state differ by up to \(largest)")
        }
    }

    /// RMSE, MAE and R² from the sums, against their definitions computed directly, with units per output.
    @Test func regressionErrorsFollowTheirDefinitions() {
        var g = SeededGenerator(seed: 8)
        let n = 37, k = 3
        let z = (0..<n * k).map { _ in Float(g.gaussian()) }, t = (0..<n * k).map { _ in Float(g.gaussian() * 1.3 + 0.2) }
        var errors = RegressionErrors(outputs: k)
        for r in 0..<n { errors.add(outputs: z[r * k..<(r + 1) * k], targets: t[r * k..<(r + 1) * k]) }
        let scale = [2.0, 0.5, 1000.0]
        var squares = 0.0, absolute = 0.0, r2 = 0.0
        for c in 0..<k {
            let d = (0..<n).map { (Double(z[$0 * k + c]) - Double(t[$0 * k + c])) * scale[c] }
            squares += d.reduce(0) { $0 + $1 * $1 }
            absolute += d.reduce(0) { $0 + abs($1) }
            let mean = (0..<n).reduce(0.0) { $0 + Double(t[$1 * k + c]) } / Double(n)
            let spread = (0..<n).reduce(0.0) { $0 + pow(Double(t[$1 * k + c]) - mean, 2) }
            r2 += 1 - (0..<n).reduce(0.0) { $0 + pow(Double(z[$1 * k + c]) - Double(t[$1 * k + c]), 2) } / spread
        }
        #expect(abs(errors.rmse(scale: scale) - (squares / Double(n * k)).squareRoot()) < 1e-9 * errors.rmse(scale: scale))
        #expect(abs(errors.mae(scale: scale) - absolute / Double(n * k)) < 1e-9 * errors.mae(scale: scale))
        #expect(abs(errors.r2 - r2 / Double(k)) < 1e-9)
        // A perfect prediction: no error and R² of 1.
        var perfect = RegressionErrors(outputs: 1)
        for v in t.prefix(20) { perfect.add(outputs: [v], targets: [v]) }
        #expect(perfect.rmse() == 0 && perfect.mae() == 0 && perfect.r2 == 1)
    }
}
