import ArgumentParser
import Foundation
import MLPCore
import MNIST

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a checkpoint on labelled data: accuracy, loss and the confusion matrix (a regression's RMSE, MAE and R²).",
        discussion: """
            Evaluates on the test part of the data (a named dataset's or IDX folder's test files, an .npz's x_test, or \
            --test-data); for a source without one, on all of --data, or on the share --test-fraction splits off with \
            the checkpoint's seed (the same samples as training held out, for the same file and fraction). A table's \
            columns and classes (or targets), and its standardisation, are the checkpoint's.
            """)

    @OptionGroup var data: DataOptions
    @OptionGroup var backendOptions: BackendOptions
    @OptionGroup var placementOptions: PlacementOptions

    @Option(help: ArgumentHelp("A checkpoint written by `mlp train`.", valueName: "file"))
    var checkpoint: String

    @Option(help: ArgumentHelp("Evaluate on only the first N test samples. (default: all)", valueName: "N"))
    var testSamples: Int?

    @Option(help: ArgumentHelp("For data without a test part: evaluate on the share split off as `mlp train --test-fraction` does. (default: none, all of --data)", valueName: "fraction"))
    var testFraction: Double?

    func validate() throws {
        if let n = testSamples, n < 1 { throw ValidationError("--test-samples \(n): expected at least 1") }
        if let f = testFraction, !(f > 0 && f < 1) { throw ValidationError("--test-fraction \(f): expected a fraction between 0 and 1") }
    }

    func run() throws {
        let logger = backendOptions.makeLogger()
        let saved = try Checkpoint.read(from: URL(fileURLWithPath: checkpoint))
        let trained = try saved.dataDescription(path: checkpoint)
        let loaded = try data.load(trained: trained, logger: logger)
        var set: LabeledSamples
        var what: String
        if let test = loaded.test {
            if testFraction != nil { throw ValidationError("--test-fraction: the data has a test part of its own (\(loaded.summary))") }
            (set, what) = (test, "test")
        } else if let fraction = testFraction {
            set = try loaded.train.splittingOffTest(fraction: fraction, seed: saved.configuration.seed).test
            what = "test (\(fraction * 100)% split off with seed \(saved.configuration.seed))"
        } else {
            (set, what) = (loaded.train, "all \(loaded.train.count.grouped) samples of \(data.name)")
        }
        if let n = testSamples { set = set.subset(0..<min(n, set.count)) }
        let spec = saved.configuration.network
        guard spec.loss.isRegression == set.isRegression else {
            throw ValidationError("\(checkpoint): a \(spec.loss.isRegression ? "regression" : "classifier") cannot be evaluated on \(set.isRegression ? "real-valued targets" : "classes")")
        }
        guard spec.inputSize == set.featureCount, spec.outputSize == set.outputCount else {
            throw ValidationError("\(checkpoint): a \(spec.sizesText) network does not fit samples of \(set.featureCount) features \(set.isRegression ? "and \(set.targetCount) targets" : "in \(set.classCount) classes")")
        }
        if let standardization = trained?.standardization { standardization.apply(to: &set) }
        let targetStandardization = trained?.targetStandardization
        if set.isRegression {
            guard let targetStandardization else {
                throw ValidationError("\(checkpoint): a regression checkpoint without its targets' standardisation ('data' metadata)")
            }
            targetStandardization.applyToTargets(of: &set)
        }
        let backend = try backendOptions.makeBackend(logger: logger)
        let network = try Network(spec: spec, optimizer: saved.configuration.optimizer, backend: backend, maxBatch: 1000)
        network.normalization = saved.configuration.normalization
        network.setParameters(saved.parameters)
        let placement = try placementOptions.choose(for: [set], on: backend, logger: logger)
        let data = try placement.source(set, on: backend, batchCapacity: network.maxBatch)
        let result = try network.evaluate(source: data, indices: (0..<Int32(set.count)).map { $0 }, keepPredictions: true)

        print("\(checkpoint): \(spec.sizesText), trained \(saved.progress.epoch) epochs; evaluated on \(what)")
        if let errors = result.regression {
            // Per target in its own units, then over all of them.
            let scale = targetStandardization?.standardDeviation
            print("\(loaded.test != nil || testFraction != nil ? "test " : "")RMSE \(significant(errors.rmse(scale: scale))), MAE \(significant(errors.mae(scale: scale))), R² \(String(format: "%.4f", errors.r2)), loss \(String(format: "%.4f", result.loss)) (\(spec.loss.rawValue), on standardised targets) over \(result.count.grouped) samples")
            if set.targetCount > 1 {
                for (c, name) in set.targetNames.enumerated() {
                    var one = RegressionErrors(outputs: 1)
                    (one.count, one.squaredError, one.absoluteError) = (errors.count, [errors.squaredError[c]], [errors.absoluteError[c]])
                    (one.targetSum, one.targetSquareSum) = ([errors.targetSum[c]], [errors.targetSquareSum[c]])
                    let s = scale.map { [$0[c]] }
                    print("  \(name): RMSE \(significant(one.rmse(scale: s))), MAE \(significant(one.mae(scale: s))), R² \(String(format: "%.4f", one.r2))")
                }
            }
            return
        }
        print("\(loaded.test != nil || testFraction != nil ? "test " : "")accuracy \(result.accuracy.percent) (\((Int((result.accuracy * Double(result.count)).rounded())).grouped) of \(result.count.grouped)), loss \(String(format: "%.4f", result.loss))")
        print(confusionMatrix(labels: set.labels, predictions: result.predictions, classNames: set.classNames))
    }
}

/// The confusion matrix as text: a row per true class, a column per predicted class (by number; the classes' names
/// are listed below when they are not their numbers), then each class's recall.
func confusionMatrix(labels: [Int32], predictions: [Int32], classNames: [String]) -> String {
    let classes = classNames.count
    var counts = [[Int]](repeating: [Int](repeating: 0, count: classes), count: classes)
    for (l, p) in zip(labels, predictions) { counts[Int(l)][Int(p)] += 1 }
    let width = max(5, String(labels.count).count + 1)
    func pad(_ s: String) -> String { String(repeating: " ", count: max(0, width - s.count)) + s }
    var lines = ["confusion matrix (rows: true class, columns: predicted)"]
    lines.append(pad("") + (0..<classes).map { pad(String($0)) }.joined() + "  recall")
    for t in 0..<classes {
        let total = counts[t].reduce(0, +)
        let recall = total > 0 ? Double(counts[t][t]) / Double(total) : 0
        lines.append(pad(String(t)) + counts[t].map { pad(String($0)) }.joined() + "  " + recall.percent)
    }
    if classNames != (0..<classes).map(String.init) {
        lines.append("classes: " + classNames.enumerated().map { "\($0.offset) \($0.element)" }.joined(separator: ", "))
    }
    return lines.joined(separator: "\n")
}
