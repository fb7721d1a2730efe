import ArgumentParser
import Foundation
import Logging
import MLPCore
import MNIST

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a network and report its loss and accuracy (or a regression's errors) after every epoch.",
        usage: """
            mlp train [--data <path>] [--hidden <sizes>] [--epochs <epochs>] [--lr <lr>] [--batch-size <batch-size>] [--backend <backend>] [--output <dir>] [--resume <file|dir>] [<options>]
            """,
        discussion: """
            Defaults: the bundled MNIST, hidden layers 512,256 with ReLU, Adam with learning rate 0.001 decayed along \
            half a cosine to 0 over the run, batch 128, 10 epochs, seed 0. With --data, your own data: a CSV table, NumPy \
            arrays or IDX files; the input and output sizes come from the data (features, and classes or regression \
            targets), a table's features are standardised with the training part's mean and standard deviation, and a \
            source without a test part has --test-fraction of it split off for testing. A regression (--task, or a \
            target of numbers that are not all whole) learns standardised targets and reports its RMSE and MAE in the \
            targets' own units, and R². With --output DIR, DIR is the run's folder: \
            DIR/last.safetensors after every epoch, DIR/best.safetensors at the best evaluation (--monitor: the \
            accuracy, a regression's RMSE, or the loss), DIR/metrics.jsonl, and DIR/run.json (each command that \
            trained the run, and its configuration). --resume DIR continues the run there exactly, on the same data \
            and samples (the weights of a run never stopped); more --epochs than it had extends it (--extend-schedule). \
            --patience stops a run that no longer improves. Ctrl-C stops after saving and prints the command that resumes.
            """)

    @OptionGroup var data: DataOptions
    @OptionGroup var backendOptions: BackendOptions
    @OptionGroup var placementOptions: PlacementOptions

    @Option(help: ArgumentHelp("Hidden layer sizes; the input and output sizes come from the data. (default: 512,256)", valueName: "sizes"))
    var hidden: String?
    @Option(help: ArgumentHelp("All layer sizes from input to output, checked against the data (instead of --hidden).", valueName: "sizes"))
    var layers: String?
    @Option(help: "Hidden activation: relu, tanh, sigmoid. (default: relu)")
    var activation: Activation?
    @Option(help: "Loss: cross-entropy (softmax) or mse for classes; mse or huber for a regression. (default: cross-entropy; mse for a regression)")
    var loss: Loss?

    @Option(help: "Optimizer: sgd, adam, adamw. (default: adam)")
    var optimizer: OptimizerConfiguration.Kind?
    @Option(name: .customLong("lr"), help: "Learning rate. (default: 0.001 for Adam and AdamW, 0.01 for SGD)")
    var learningRate: Float?
    @Option(help: "SGD momentum. (default: 0)")
    var momentum: Float?
    @Flag(help: "Nesterov momentum (SGD).")
    var nesterov = false
    @Option(help: "Weight decay: L2 for SGD and Adam, decoupled for AdamW. (default: 0)")
    var weightDecay: Float?
    @Option(help: "Adam β1. (default: 0.9)")
    var beta1: Float?
    @Option(help: "Adam β2. (default: 0.999)")
    var beta2: Float?
    @Option(help: "Adam ε. (default: 1e-8)")
    var epsilon: Float?

    @Option(help: "Learning-rate schedule: constant, step, cosine (half a cosine from --lr down to --lr-min over the run). (default: cosine)")
    var schedule: ScheduleKind?
    @Option(help: "Step schedule: epochs between decays. (default: 1)")
    var lrStepEpochs: Int?
    @Option(help: "Step schedule: factor at each decay. (default: 0.1)")
    var lrGamma: Float?
    @Option(help: "Cosine schedule: the final learning rate. (default: 0)")
    var lrMin: Float?
    @Option(help: "Linear warm-up over this many epochs (fractions allowed). (default: 0)")
    var warmupEpochs: Double?

    @Option(help: "Epochs to train (in all, counting those of a resumed checkpoint: more than it has extends the run, see --extend-schedule). (default: 10)")
    var epochs: Int?
    @Option(help: ArgumentHelp("Resuming with more --epochs than the run had: the learning rate of the added epochs. The finished epochs keep theirs. continue: the stored schedule carried on; constant: the run's --lr; cosine: a new half cosine from --lr to --lr-min over the added epochs. (default: cosine for a cosine run, else continue)", valueName: "kind"))
    var extendSchedule: Extension?
    @Option(help: "Samples per batch. (default: 128, or all the training samples when there are fewer)")
    var batchSize: Int?
    @Flag(help: "Leave out the last batch of each epoch when it is smaller than --batch-size.")
    var dropLast = false
    @Option(help: "Seed of the initial weights, the shuffles and the validation split. (default: 0)")
    var seed: UInt64?
    @Flag(inversion: .prefixedNo, help: "Standardise inputs with the training part's statistics: a table's or array's each feature by its own mean and standard deviation (the default), pictures by their pixels' mean and standard deviation (instead of [0, 1], the default).")
    var standardize: Bool?
    @Option(help: ArgumentHelp("The share of the data split off as the test set (stratified by class, drawn with --seed) when the data has no test part of its own. (default: 0.2)", valueName: "fraction"))
    var testFraction: Double?
    @Option(help: ArgumentHelp("Hold this many training samples out for validation and evaluate on them instead of the test set. (default: 0)", valueName: "count"))
    var validation: Int?
    @Option(help: ArgumentHelp("Use only the first N training samples. (default: all)", valueName: "N"))
    var trainSamples: Int?
    @Option(help: ArgumentHelp("Evaluate on only the first N test samples. (default: all)", valueName: "N"))
    var testSamples: Int?

    @Option(help: ArgumentHelp("The run's folder: last.safetensors, best.safetensors, metrics.jsonl, run.json. (default: none, nothing is saved)", valueName: "dir"))
    var output: String?
    @Flag(help: "Replace the checkpoints of a run already in --output (refused without it).")
    var overwrite = false
    @Option(help: ArgumentHelp("Continue the run saved in this checkpoint, or in this run folder (its last.safetensors), on the same data and samples.", valueName: "file|dir"))
    var resume: String?
    @Option(help: ArgumentHelp("Append one JSON object per epoch to this file (JSON Lines; never truncated), each with the run's id. (default: --output's metrics.jsonl)", valueName: "file"))
    var metrics: String?
    @Option(help: ArgumentHelp("Stop when the evaluation's --monitor figure has not improved for this many epochs; best.safetensors keeps the best epoch. (default: none, every epoch is trained)", valueName: "epochs"))
    var patience: Int?
    @Option(help: "The evaluation figure that picks best.safetensors and that --patience watches: loss, accuracy (classification) or rmse (regression). (default: accuracy; rmse for a regression)")
    var monitor: Monitor?
    @Flag(name: .shortAndLong, help: "Print nothing but errors.")
    var quiet = false
    @Flag(help: "No progress line during an epoch (epoch lines only).")
    var noProgress = false

    enum ScheduleKind: String, CaseIterable, ExpressibleByArgument { case constant, step, cosine }

    /// How the epochs added to a resumed run are scheduled.
    enum Extension: String, CaseIterable, ExpressibleByArgument {
        /// The stored schedule's formula carried on: a constant rate stays, a step decay keeps decaying, a finished
        /// cosine stays at its minimum.
        case `continue`
        /// The run's base rate.
        case constant
        /// A new half cosine from the run's base rate to its minimum over the added epochs (a warm restart).
        case cosine
    }

    /// What "better" means for best.safetensors and early stopping.
    enum Monitor: String, CaseIterable, ExpressibleByArgument {
        case loss, accuracy, rmse

        /// The epoch's figure, if it has one.
        func value(_ m: EpochMetrics) -> Double? {
            switch self {
            case .loss: return m.testLoss
            case .accuracy: return m.testAccuracy
            case .rmse: return m.testRMSE
            }
        }

        /// Whether `a` is better than `b`.
        func improves(_ a: Double, on b: Double) -> Bool { self == .accuracy ? a > b : a < b }

        /// The value nothing is worse than.
        var worst: Double { self == .accuracy ? -.infinity : .infinity }
    }

    func validate() throws {
        if let n = trainSamples, n < 1 { throw ValidationError("--train-samples \(n): expected at least 1") }
        if let n = testSamples, n < 1 { throw ValidationError("--test-samples \(n): expected at least 1") }
        if let e = epochs, e < 1 { throw ValidationError("--epochs \(e): expected at least 1") }
        if let b = batchSize, b < 1 { throw ValidationError("--batch-size \(b): expected at least 1") }
        if let v = validation, v < 0 { throw ValidationError("--validation \(v): expected 0 or more") }
        if let w = warmupEpochs, !(w >= 0 && w.isFinite) { throw ValidationError("--warmup-epochs \(w): expected a number ≥ 0") }
        if let f = testFraction, !(f >= 0 && f < 1) { throw ValidationError("--test-fraction \(f): expected a fraction from 0 up to (not including) 1") }
        if let p = patience, p < 1 { throw ValidationError("--patience \(p): expected at least 1 epoch") }
        if hidden != nil && layers != nil { throw ValidationError("--hidden and --layers: give one of them") }
    }

    func run() throws {
        // `--resume DIR` is the run in DIR: its last checkpoint.
        var effective = self
        if let resume {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: resume, isDirectory: &isDirectory), isDirectory.boolValue {
                effective.resume = URL(fileURLWithPath: resume).appendingPathComponent("last.safetensors").path
                guard FileManager.default.fileExists(atPath: effective.resume!) else {
                    throw ValidationError("--resume \(resume): the folder holds no last.safetensors (a run's folder, as --output writes it)")
                }
            }
        }
        let checkpoint = try effective.resume.map { try Checkpoint.read(from: URL(fileURLWithPath: $0)) }
        // A resumed run continues in its folder, and a run folder holds its metrics.
        if let resumed = effective.resume, effective.output == nil {
            effective.output = URL(fileURLWithPath: resumed).deletingLastPathComponent().path
        }
        if effective.metrics == nil, let output = effective.output {
            effective.metrics = URL(fileURLWithPath: output).appendingPathComponent("metrics.jsonl").path
        }
        // The resumed run's data, samples and split are the stored ones (flags that would change them are refused).
        if let checkpoint, let storedFlags = try checkpoint.runFlags(path: effective.resume!) {
            try RunFlags(effective).resumed(from: storedFlags).apply(to: &effective)
        }
        try effective.train(resuming: checkpoint)
    }

    /// The run, with `resume` a checkpoint file (read as `checkpoint`) and the data flags as resolved by `run`.
    private func train(resuming checkpoint: Checkpoint?) throws {
        let logger = backendOptions.makeLogger()
        let stored = try checkpoint.flatMap { try $0.dataDescription(path: resume!) }
        var dataset = try data.load(trained: stored, logger: logger)
        // A test part split off where the data has none, drawn with the run's seed (a resumed run's stored one).
        let seedValue = checkpoint?.configuration.seed ?? seed ?? 0
        if dataset.test == nil {
            let fraction = testFraction ?? 0.2
            if fraction > 0 {
                let parts = try dataset.train.splittingOffTest(fraction: fraction, seed: seedValue)
                (dataset.train, dataset.test) = (parts.train, parts.test)
                if !quiet { print("test set: \(parts.test.count.grouped) samples (\(fraction * 100)%) split off with seed \(seedValue)\(dataset.train.isRegression ? "" : ", stratified by class"); --test-fraction changes it") }
            }
        } else if testFraction != nil {
            throw ValidationError("--test-fraction: the data has a test part of its own (\(dataset.summary))")
        }
        if let n = trainSamples {
            if n > dataset.train.count { logger.warning("--train-samples \(n): the data has \(dataset.train.count.grouped) training samples; all of them are used") }
            dataset.train = dataset.train.subset(0..<min(n, dataset.train.count))
        }
        if let n = testSamples, let test = dataset.test {
            if n > test.count { logger.warning("--test-samples \(n): the data has \(test.count.grouped) test samples; all of them are used") }
            dataset.test = test.subset(0..<min(n, test.count))
        }
        if dataset.train.isRegression {
            if let constant = dataset.train.constantTargets.first {
                throw ValidationError("\(data.name): the target \(constant) has the same value in every training sample: nothing to learn")
            }
        } else {
            guard dataset.train.classCount >= 2 else {
                throw ValidationError("\(data.name): every sample is of one class (\(dataset.train.classNames.first ?? "")); a classifier needs at least two")
            }
            if dataset.train.classCount > 100, data.task == nil, !quiet {
                logger.warning("\(data.name): the target has \(dataset.train.classCount) distinct values, each a class; if it is a quantity, give --task regression")
            }
        }

        if let checkpoint, let count = checkpoint.notes["training_count"].flatMap(Int.init), count != dataset.train.count {
            throw ValidationError("--resume \(resume!): the run trained on \(count.grouped) samples and the data now gives \(dataset.train.count.grouped): resume it on the same data")
        }
        let configuration = try checkpoint.map { try resumedConfiguration($0.configuration, trainingCount: dataset.train.count, regression: dataset.train.isRegression) }
            ?? newConfiguration(train: dataset.train)
        let spec = configuration.network
        guard spec.inputSize == dataset.train.featureCount, spec.outputSize == dataset.train.outputCount else {
            let flag = checkpoint != nil ? "--resume \(resume!)" : "--layers \(spec.sizesText)"
            let outputs = dataset.train.isRegression ? "\(dataset.train.targetCount) target\(dataset.train.targetCount == 1 ? "" : "s")" : "\(dataset.train.classCount) classes"
            throw ValidationError("\(flag): the network takes \(spec.inputSize) inputs and gives \(spec.outputSize) outputs, the data has \(dataset.train.featureCount) features (samples of \(dataset.train.shapeText)) and \(outputs)")
        }
        let split = try ValidationSplit(count: dataset.train.count, validationCount: configuration.validationCount, seed: configuration.seed)
        if !configuration.dropLast && configuration.batchSize > split.training.count {
            throw ValidationError("--batch-size \(configuration.batchSize): larger than the \(split.training.count.grouped) training samples")
        }
        // A table's or array's features, each standardised with the statistics of the samples trained on (a resumed
        // run keeps the stored ones).
        var standardization = stored?.standardization
        if case .floats = dataset.train.values, standardization == nil, checkpoint == nil, standardize != false {
            standardization = Standardization(fitting: dataset.train, indices: split.training)
        }
        if let standardization {
            standardization.apply(to: &dataset.train)
            if dataset.test != nil { standardization.apply(to: &dataset.test!) }
        }
        // A regression's targets, always standardised (the network learns values near 0 whatever their units; the
        // errors are reported in the targets' own units).
        var targetStandardization = stored?.targetStandardization
        if dataset.train.isRegression {
            if targetStandardization == nil { targetStandardization = Standardization(fittingTargetsOf: dataset.train, indices: split.training) }
            targetStandardization!.applyToTargets(of: &dataset.train)
            if dataset.test != nil { targetStandardization!.applyToTargets(of: &dataset.test!) }
        }
        let description = DataDescription(dataset.train, standardization: standardization, target: dataset.target,
                                          targetStandardization: targetStandardization)
        // What picks best.safetensors and stops early, checked before anything is written.
        let regression = dataset.train.isRegression
        let monitor = self.monitor ?? (regression ? .rmse : .accuracy)
        if monitor == .accuracy && regression || monitor == .rmse && !regression {
            throw ValidationError("--monitor \(monitor.rawValue): \(regression ? "a regression has no accuracy (loss or rmse)" : "a classifier has no rmse (loss or accuracy)")")
        }
        if patience != nil && configuration.validationCount == 0 && (dataset.test?.count ?? 0) == 0 {
            throw ValidationError("--patience \(patience!): needs an evaluation set each epoch (a test part, --test-fraction above 0, or --validation)")
        }
        let outputDirectory = try output.map(prepareOutputDirectory)
        let runID = checkpoint?.notes["run"] ?? MetricsWriter.newRunID()
        let metricsFile = try metrics.map { try MetricsWriter(path: $0, run: runID) }
        if let outputDirectory { try RunRecord.append(to: outputDirectory, run: runID, configuration: configuration) }

        let backend = try backendOptions.makeBackend(logger: logger)
        // The data copied whole to the backend, or streamed to it (too large for the GPU, or --stream); an
        // evaluation's batches are as large as the network takes, so a stream is sized for those.
        let maxBatch = max(configuration.batchSize, 1000)
        let placement = try placementOptions.choose(for: [dataset.train] + (dataset.test.map { [$0] } ?? []), on: backend, logger: logger)
        func source(_ set: LabeledSamples) throws -> any BatchSource {
            try placement.source(set, on: backend, batchCapacity: maxBatch)
        }
        let train = try source(dataset.train)
        let evaluation: (data: any BatchSource, indices: [Int32], name: String)?
        if configuration.validationCount > 0 {
            evaluation = (train, split.validation, "validation")
        } else if let test = dataset.test, test.count > 0 {
            evaluation = (try source(test), (0..<Int32(test.count)).map { $0 }, "test")
        } else {
            evaluation = nil
        }
        let network = try Network(spec: spec, optimizer: configuration.optimizer, backend: backend, maxBatch: maxBatch)
        if let checkpoint {
            network.setParameters(checkpoint.parameters)
            network.setOptimizerState(checkpoint.optimizerState)
        } else {
            var generator = configuration.initializationGenerator
            network.setParameters(ParameterLayout(spec).initialParameters(for: spec, using: &generator))
        }
        let trainer = try Trainer(
            network: network, configuration: configuration, trainingData: train, trainingIndices: split.training,
            evaluation: evaluation, progress: checkpoint?.progress)
        trainer.targetScale = targetStandardization?.standardDeviation

        // best.safetensors: the best evaluation figure by --monitor (the highest accuracy, or a regression's lowest
        // RMSE, by default); --patience stops after that many epochs without a better one.
        let bestKey = "best_" + monitor.rawValue
        var best = checkpoint?.notes[bestKey].flatMap(Double.init) ?? monitor.worst
        var bestEpoch = checkpoint?.notes["best_epoch"].flatMap(Int.init) ?? 0
        var bestParameters: [Float]?
        var stoppedEarly = false
        let datasetName = data.data ?? data.dataDir ?? data.dataset.rawValue
        let descriptionJSON = String(decoding: try JSONEncoder.sorted.encode(description), as: UTF8.self)
        let runFlagsJSON = String(decoding: try JSONEncoder.sorted.encode(RunFlags(self)), as: UTF8.self)
        func save(_ name: String, notes extra: [String: String] = [:]) throws -> URL? {
            guard let dir = outputDirectory else { return nil }
            let url = dir.appendingPathComponent(name)
            var notes = ["dataset": datasetName, bestKey: String(best), "best_epoch": String(bestEpoch), "data": descriptionJSON, "run": runID,
                         "run_flags": runFlagsJSON, "training_count": String(dataset.train.count)]
            notes.merge(extra) { $1 }
            try Checkpoint(trainer: trainer, notes: notes).write(to: url)
            return url
        }

        let progressLine = ProgressLine(enabled: !quiet && !noProgress && standardOutputIsTerminal, network: network, batchSize: configuration.batchSize)
        trainer.onStep = { progress, steps in progressLine.update(progress, stepsInEpoch: steps, epochs: configuration.epochs) }
        trainer.onEpoch = { m, _ in
            progressLine.clear()
            if !quiet { print(epochLine(m, epochs: configuration.epochs, columns: terminalColumns)) }
            try metricsFile?.write(m)
            if let value = monitor.value(m), monitor.improves(value, on: best) {
                (best, bestEpoch) = (value, m.epoch)
                _ = try save("best.safetensors", notes: [monitor.rawValue: String(value)])
                // Kept for the test set's figure of the best epoch, when the evaluation was a validation split.
                if configuration.validationCount > 0 && dataset.test != nil { bestParameters = network.parameterValues() }
            }
            if let patience, m.epoch - bestEpoch >= patience, m.epoch < configuration.epochs {
                stoppedEarly = true
                if !quiet { print("stopping early: the \(m.evaluatedOn ?? "evaluation") \(monitor.rawValue) has not improved for \(patience) epoch\(patience == 1 ? "" : "s") (best \(significant(best)) at epoch \(bestEpoch)); best.safetensors holds that epoch") }
            }
            _ = try save("last.safetensors", notes: stoppedEarly ? ["stopped_early": String(m.epoch)] : [:])
        }
        trainer.shouldFinish = { stoppedEarly }
        let interrupt = InterruptFlag.install()
        trainer.shouldStop = { interrupt.isSet }

        if !quiet {
            if let epoch = checkpoint?.notes["stopped_early"] {
                print("the run stopped early at epoch \(epoch) (--patience \(patience.map(String.init) ?? "")); it goes on, and stops again once \(patience.map(String.init) ?? "") epochs pass without a better \(monitor.rawValue) than epoch \(bestEpoch)'s")
            }
            let start = checkpoint.map { "resuming at epoch \($0.progress.epoch + 1), step \($0.progress.stepInEpoch); " } ?? ""
            print("\(start)training \(spec.sizesText) (\(spec.activation.rawValue), \(spec.loss.rawValue)) on \(split.training.count.grouped) samples, \(configuration.optimizer.kind.rawValue) lr \(configuration.optimizer.learningRate), batch \(configuration.batchSize), \(epochCount(configuration.epochs)), \(backend.name) backend")
        }
        let started = Date()
        // The GPU's one-time costs (first launches, product plans, graph recordings) before the timed epochs, as a
        // benchmark's warm-up; the host backends have none worth it.
        let warmUp = backend.isHostMemory ? nil : try trainer.warmUp()
        var history = [EpochMetrics]()
        do {
            history = try trainer.run()
        } catch let error as TrainingError {
            progressLine.clear()
            if case .interrupted = error {
                if let url = try save("last.safetensors") {
                    printError("\(error); saved \(url.path); continue with:\n  \(Self.resumeCommand(checkpoint: url.path))")
                } else {
                    printError("\(error); nothing saved (no --output)")
                }
                throw ExitCode(ExitStatus.interrupted)
            }
            throw error
        }
        if !quiet {
            let times = trainingTimes(history, total: Date().timeIntervalSince(started), warmUp: warmUp)
            if let evaluation {
                let final = try network.evaluate(source: evaluation.data, indices: evaluation.indices)
                if let errors = final.regression {
                    let scale = targetStandardization?.standardDeviation
                    print("\(evaluation.name) RMSE \(significant(errors.rmse(scale: scale))), MAE \(significant(errors.mae(scale: scale))), R² \(String(format: "%.4f", errors.r2)), loss \(String(format: "%.4f", final.loss)) after \(epochCount(trainer.progress.epoch)) (\(times))")
                } else {
                    print("\(evaluation.name) accuracy \(final.accuracy.percent), loss \(String(format: "%.4f", final.loss)) after \(epochCount(trainer.progress.epoch)) (\(times))")
                }
            } else {
                print("trained \(epochCount(configuration.epochs)), no test set (\(times))")
            }
            if let dir = outputDirectory { print("checkpoints in \(dir.path)") }
        }
        // Trained against a validation split: the best epoch's network on the test set, the figure to report (a
        // resumed run whose best epoch came before the resume reads it from best.safetensors).
        if configuration.validationCount > 0, bestParameters == nil, bestEpoch > 0, let dir = outputDirectory {
            bestParameters = try? Checkpoint.read(from: dir.appendingPathComponent("best.safetensors")).parameters
        }
        if let bestParameters, let test = dataset.test, test.count > 0 {
            network.setParameters(bestParameters)
            let result = try network.evaluate(source: try source(test), indices: (0..<Int32(test.count)).map { $0 })
            var line = EpochMetrics(epoch: bestEpoch, trainLoss: 0, trainAccuracy: nil, testLoss: result.loss, testAccuracy: nil,
                                    evaluatedOn: "test", samplesPerSecond: 0, seconds: 0, learningRate: 0, steps: 0)
            let text: String
            if let errors = result.regression {
                let scale = targetStandardization?.standardDeviation
                (line.testRMSE, line.testMAE, line.testR2) = (errors.rmse(scale: scale), errors.mae(scale: scale), errors.r2)
                text = "RMSE \(significant(line.testRMSE!)), MAE \(significant(line.testMAE!)), R² \(String(format: "%.4f", errors.r2))"
            } else {
                line.testAccuracy = result.accuracy
                text = "accuracy \(result.accuracy.percent)"
            }
            if !quiet { print("best epoch \(bestEpoch) by validation \(monitor.rawValue) (\(significant(best))): test \(text), loss \(String(format: "%.4f", result.loss))") }
            try metricsFile?.writeBestOnTest(line)
        }
    }

    /// This run's command line with `--resume checkpoint` in place of any `--resume` it had: every other flag (data,
    /// sample counts, output, metrics) as given, so that it continues the same run into the same files.
    static func resumeCommand(checkpoint: String, arguments: [String] = CommandLine.arguments) -> String {
        var kept = [String]()
        var i = 1
        while i < arguments.count {
            if arguments[i] == "--resume" { i += 2; continue }
            if arguments[i].hasPrefix("--resume=") { i += 1; continue }
            kept.append(arguments[i])
            i += 1
        }
        return (["mlp"] + kept + ["--resume", checkpoint]).map(shellQuoted).joined(separator: " ")
    }

    /// "0.29 s training, 0.35 s with the evaluations": the epochs' own time (the steps, from an epoch's first to its
    /// last finished on the backend) and this call's whole time, evaluations and checkpoints included. Start-up
    /// (loading data, starting the backend, compiling kernels) comes before either; a warm-up (`Trainer.warmUp`) is
    /// named, and counted in the whole time only.
    func trainingTimes(_ history: [EpochMetrics], total: Double, warmUp: Double? = nil) -> String {
        let training = history.reduce(0) { $0 + $1.seconds }
        guard let warmUp else { return String(format: "%.2f s training, %.2f s with the evaluations", training, total) }
        return String(format: "%.2f s training, %.2f s with a %.2f s warm-up and the evaluations", training, total, warmUp)
    }

    /// The run's configuration from the flags and defaults.
    func newConfiguration(train: LabeledSamples) throws -> TrainingConfiguration {
        let kind = optimizer ?? .adam
        let optimizerConfiguration = try OptimizerConfiguration(
            kind: kind, learningRate: learningRate ?? (kind == .sgd ? 0.01 : 0.001), momentum: momentum ?? 0,
            nesterov: nesterov, weightDecay: weightDecay ?? 0, beta1: beta1 ?? 0.9, beta2: beta2 ?? 0.999,
            epsilon: epsilon ?? 1e-8)
        let sizes = try layers.map { try NetworkSpec.parseSizes($0) }
            ?? [train.featureCount] + (hidden.map { $0.isEmpty ? [] : try NetworkSpec.parseSizes($0, flag: "--hidden") } ?? [512, 256]) + [train.outputCount]
        let spec = try NetworkSpec(layerSizes: sizes, activation: activation ?? .relu, loss: Self.resolvedLoss(loss, regression: train.isRegression))
        let validationCount = validation ?? 0
        let trainingCount = train.count - validationCount
        // The default batch, 128, is cut to a small table's size (a batch asked for by --batch-size is not).
        let batch = batchSize ?? max(1, min(128, trainingCount))
        let stepsPerEpoch = max(1, dropLast ? trainingCount / batch : (trainingCount + batch - 1) / batch)
        let totalEpochs = epochs ?? 10
        let warmup = Int(((warmupEpochs ?? 0) * Double(stepsPerEpoch)).rounded())
        let decay: LearningRateSchedule.Decay
        switch schedule ?? .cosine {
        case .constant: decay = .constant
        case .step: decay = .step(stepSize: (lrStepEpochs ?? 1) * stepsPerEpoch, gamma: lrGamma ?? 0.1)
        case .cosine: decay = .cosine(totalSteps: max(1, totalEpochs * stepsPerEpoch - warmup), minimum: lrMin ?? 0)
        }
        // Bytes (pictures) are mapped as they are gathered: to [0, 1], or standardised by their pixels' statistics.
        // Floats are standardised per feature on the host before training (`Standardization`), and gathered as they are.
        let normalization: Normalization
        switch train.values {
        case .bytes(let pixels) where standardize == true:
            let stats = pixelStatistics(pixels)
            normalization = .standardized(mean: stats.mean, standardDeviation: max(stats.standardDeviation, 1e-6))
        case .bytes:
            normalization = .unit
        case .floats:
            normalization = .identity
        }
        return try TrainingConfiguration(
            network: spec, optimizer: optimizerConfiguration,
            schedule: LearningRateSchedule(base: optimizerConfiguration.learningRate, decay: decay, warmupSteps: warmup),
            epochs: totalEpochs, batchSize: batch, dropLast: dropLast, seed: seed ?? 0, normalization: normalization,
            validationCount: validationCount)
    }

    /// The loss `--loss` names for the task: a regression's `mse` is the squared error against its targets
    /// (`squared-error`), its default too; a classifier's default is cross-entropy.
    /// - Throws: `ValidationError` for a loss of the other task.
    static func resolvedLoss(_ given: Loss?, regression: Bool) throws -> Loss {
        guard regression else {
            guard let given else { return .softmaxCrossEntropy }
            if given.isRegression { throw ValidationError("--loss \(given.rawValue): a regression loss, and the data's target is classes (cross-entropy or mse; or --task regression)") }
            return given
        }
        switch given {
        case nil, .meanSquaredError?, .squaredError?: return .squaredError
        case .huber?: return .huber
        case .softmaxCrossEntropy?: throw ValidationError("--loss cross-entropy: the data's target is real-valued, a regression (mse or huber; or --task classification)")
        }
    }

    /// The checkpoint's configuration, with `--epochs` applied; any other flag that would change the run is an error.
    func resumedConfiguration(_ stored: TrainingConfiguration, trainingCount: Int, regression: Bool) throws -> TrainingConfiguration {
        // A flag that repeats the stored value is accepted; one that changes it is refused, named as it is typed.
        var conflicts = [String]()
        func check<T: Equatable>(_ given: T?, _ storedValue: T, _ flag: String, _ show: (T) -> String = { "\($0)" }) {
            if let given, given != storedValue { conflicts.append("\(flag) \(show(given)) (the checkpoint has \(show(storedValue)))") }
        }
        func sizes(_ list: [Int]) -> String { list.map(String.init).joined(separator: ",") }
        check(layers.map { (try? NetworkSpec.parseSizes($0)) ?? [] }, stored.network.layerSizes, "--layers", sizes)
        check(hidden.map { (try? NetworkSpec.parseSizes($0, flag: "--hidden")) ?? [] }, Array(stored.network.layerSizes.dropFirst().dropLast()), "--hidden", sizes)
        if standardize != nil { conflicts.append("--standardize/--no-standardize (the checkpoint keeps its inputs' map)") }
        check(activation, stored.network.activation, "--activation", \.rawValue)
        check(try loss.map { try Self.resolvedLoss($0, regression: regression) }, stored.network.loss, "--loss", \.rawValue)
        check(optimizer, stored.optimizer.kind, "--optimizer", \.rawValue)
        check(learningRate, stored.optimizer.learningRate, "--lr")
        check(momentum, stored.optimizer.momentum, "--momentum")
        check(nesterov ? true : nil, stored.optimizer.nesterov, "--nesterov")
        check(weightDecay, stored.optimizer.weightDecay, "--weight-decay")
        check(beta1, stored.optimizer.beta1, "--beta1")
        check(beta2, stored.optimizer.beta2, "--beta2")
        check(epsilon, stored.optimizer.epsilon, "--epsilon")
        check(batchSize, stored.batchSize, "--batch-size")
        check(dropLast ? true : nil, stored.dropLast, "--drop-last")
        check(seed, stored.seed, "--seed")
        check(validation, stored.validationCount, "--validation")
        let storedKind: ScheduleKind, stepEpochs: Int?, gamma: Float?, minimum: Float?
        let batch = stored.batchSize, count = trainingCount - stored.validationCount
        let stepsPerEpoch = max(1, stored.dropLast ? count / batch : (count + batch - 1) / batch)
        switch stored.schedule.decay {
        case .constant: (storedKind, stepEpochs, gamma, minimum) = (.constant, nil, nil, nil)
        case let .step(size, g): (storedKind, stepEpochs, gamma, minimum) = (.step, size / stepsPerEpoch, g, nil)
        case let .cosine(_, m): (storedKind, stepEpochs, gamma, minimum) = (.cosine, nil, nil, m)
        }
        check(schedule, storedKind, "--schedule", \.rawValue)
        func checkSetting<T: Equatable>(_ given: T?, _ storedValue: T?, _ flag: String) {
            guard let given else { return }
            guard let storedValue else {
                conflicts.append("\(flag) \(given) (the checkpoint's schedule, \(storedKind.rawValue), has no such setting)")
                return
            }
            check(given, storedValue, flag)
        }
        checkSetting(lrStepEpochs, stepEpochs, "--lr-step-epochs")
        checkSetting(lrGamma, gamma, "--lr-gamma")
        checkSetting(lrMin, minimum, "--lr-min")
        if let warmupEpochs {
            check(Int((warmupEpochs * Double(stepsPerEpoch)).rounded()), stored.schedule.warmupSteps, "--warmup-epochs") { "\(Double($0) / Double(stepsPerEpoch))" }
        }
        guard conflicts.isEmpty else {
            throw ValidationError("--resume continues the stored run; these flags would change it: " + conflicts.joined(separator: "; "))
        }
        var configuration = stored
        if let epochs, epochs != stored.epochs {
            guard epochs > stored.epochs else {
                throw ValidationError("--epochs \(epochs): the stored run has \(stored.epochs); a run is extended, never shortened (its schedule was made for its length)")
            }
            // The stored epochs keep the rates they had; the added ones follow --extend-schedule from the run's end.
            let end = stored.epochs * stepsPerEpoch, added = (epochs - stored.epochs) * stepsPerEpoch
            let isCosine: Bool
            if case .cosine = stored.schedule.decay { isCosine = true } else { isCosine = false }
            let minimum: Float
            if case let .cosine(_, m) = stored.schedule.decay { minimum = m } else { minimum = 0 }
            switch extendSchedule ?? (isCosine ? .cosine : .continue) {
            case .continue:
                break
            case .constant:
                configuration.schedule.extensions.append(.init(fromStep: end, base: stored.schedule.base, decay: .constant))
            case .cosine:
                configuration.schedule.extensions.append(.init(fromStep: end, base: stored.schedule.base, decay: .cosine(totalSteps: max(1, added), minimum: minimum)))
            }
            configuration.epochs = epochs
        } else if extendSchedule != nil {
            throw ValidationError("--extend-schedule: applies when --resume is given more --epochs than the run's \(stored.epochs)")
        }
        return configuration
    }

    /// Why a directory cannot be made at `url`, found from its nearest existing ancestor (Foundation's own reason
    /// names no path, and for a missing parent says only that a file does not exist).
    static func whyNoDirectory(at url: URL, error: Error) -> String {
        let files = FileManager.default
        var missing = url.standardizedFileURL, isDirectory: ObjCBool = false
        var ancestor = missing.deletingLastPathComponent()
        while !files.fileExists(atPath: ancestor.path, isDirectory: &isDirectory) && ancestor.path != "/" {
            missing = ancestor
            ancestor = ancestor.deletingLastPathComponent()
        }
        if files.fileExists(atPath: missing.path, isDirectory: &isDirectory), !isDirectory.boolValue {
            return "\(missing.path) is a file, not a directory"
        }
        guard files.fileExists(atPath: ancestor.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            return "\(ancestor.path) is a file, not a directory"
        }
        // The system's reason for the first directory that could not be made (Foundation's, should it now succeed).
        guard mkdir(missing.path, 0o755) != 0 else {
            rmdir(missing.path)
            return (error as NSError).localizedDescription
        }
        return "cannot make \(missing.lastPathComponent) in \(ancestor.path): \(String(cString: strerror(errno)))"
    }

    /// Creates `path` if needed and checks that files can be written in it, before any training.
    func prepareOutputDirectory(_ path: String) throws -> URL {
        let url = URL(fileURLWithPath: path)
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            throw IOFailure(path: "--output \(path)", reason: "cannot create the directory: \(Self.whyNoDirectory(at: url, error: error))")
        }
        guard access(url.path, W_OK) == 0 else {
            throw IOFailure(path: "--output \(path)", reason: "the directory is not writable")
        }
        // Another run's checkpoints are not replaced unless asked: only the run being resumed continues in its folder.
        let existing = ["last.safetensors", "best.safetensors"].map { url.appendingPathComponent($0) }
            .filter { FileManager.default.fileExists(atPath: $0.path) }
        let resumedHere = resume.map { URL(fileURLWithPath: $0).deletingLastPathComponent().standardizedFileURL.path == url.standardizedFileURL.path } ?? false
        if let first = existing.first, !overwrite, !resumedHere {
            throw ValidationError("--output \(path): holds a run already (\(first.lastPathComponent)); continue it with --resume \(path), or replace it with --overwrite")
        }
        return url
    }
}

/// `text` as one word for a POSIX shell: as it is when it holds only safe characters, else in single quotes.
func shellQuoted(_ text: String) -> String {
    let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=,:+%@")
    if !text.isEmpty && text.allSatisfy(safe.contains) { return text }
    return "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// "1 epoch", "10 epochs".
func epochCount(_ n: Int) -> String { n == 1 ? "1 epoch" : "\(n) epochs" }

/// One greppable line per epoch; on a terminal narrower than it (`columns`), the compact form, which fits 80 columns:
/// `epoch 3/10 loss 0.1234/0.2345 acc 96.12%/95.80% 81,234/s 0.74 s` (training/evaluation).
func epochLine(_ m: EpochMetrics, epochs: Int, columns: Int? = nil) -> String {
    let full = fullEpochLine(m, epochs: epochs)
    guard let columns, full.count >= columns else { return full }
    var line = "epoch \(m.epoch)/\(epochs) loss \(String(format: "%.4f", m.trainLoss))"
    if let loss = m.testLoss { line += "/\(String(format: "%.4f", loss))" }
    if let acc = m.trainAccuracy { line += " acc \(acc.percent)" + (m.testAccuracy.map { "/\($0.percent)" } ?? "") }
    if let rmse = m.testRMSE, let r2 = m.testR2 { line += " rmse \(significant(rmse)) r2 \(String(format: "%.3f", r2))" }
    line += " \(Int(m.samplesPerSecond.rounded()).grouped)/s \(String(format: "%.2f", m.seconds)) s"
    return line
}

/// The epoch line in full: each figure named.
func fullEpochLine(_ m: EpochMetrics, epochs: Int) -> String {
    var line = "epoch \(m.epoch)/\(epochs)  train loss \(String(format: "%.4f", m.trainLoss))"
    if let acc = m.trainAccuracy { line += " acc \(acc.percent)" }
    if let loss = m.testLoss, let name = m.evaluatedOn {
        line += "  \(name) loss \(String(format: "%.4f", loss))"
        if let acc = m.testAccuracy { line += " acc \(acc.percent)" }
        if let rmse = m.testRMSE, let mae = m.testMAE, let r2 = m.testR2 {
            line += " rmse \(significant(rmse)) mae \(significant(mae)) r2 \(String(format: "%.4f", r2))"
        }
    }
    line += "  \(Int(m.samplesPerSecond.rounded()).grouped) samples/s  \(String(format: "%.2f", m.seconds)) s"
    return line
}

/// A measurement in its own units to 5 significant digits: "0.51234", "1234.5", "1.2346e+06".
func significant(_ x: Double) -> String { String(format: "%.5g", x) }
