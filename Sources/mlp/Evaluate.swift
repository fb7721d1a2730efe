import ArgumentParser
import Foundation
import MLPCore
import MNIST

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a checkpoint on labelled data: accuracy, loss and the confusion matrix.",
        discussion: """
            Evaluates on the test part of the data (a named dataset's or IDX folder's test files, an .npz's x_test, or \
            --test-data); for a source without one, on all of --data, or on the share --test-fraction splits off with \
            the checkpoint's seed (the same samples as training held out, for the same file and fraction). A table's \
            columns and classes, and its standardisation, are the checkpoint's.
            """)

    @OptionGroup var data: DataOptions
    @OptionGroup var backendOptions: BackendOptions

    @Option(help: ArgumentHelp("A checkpoint written by `mlp train`.", valueName: "file"))
    var checkpoint: String

    @Option(help: ArgumentHelp("Evaluate on only the first N test samples.", valueName: "N"))
    var testSamples: Int?

    @Option(help: ArgumentHelp("For data without a test part: evaluate on the share split off as `mlp train --test-fraction` does.", valueName: "fraction"))
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
        guard spec.inputSize == set.featureCount, spec.outputSize == set.classCount else {
            throw ValidationError("\(checkpoint): a \(spec.sizesText) network does not fit samples of \(set.featureCount) features in \(set.classCount) classes")
        }
        if let standardization = trained?.standardization { standardization.apply(to: &set) }
        let backend = try backendOptions.makeBackend(logger: logger)
        let network = try Network(spec: spec, optimizer: saved.configuration.optimizer, backend: backend, maxBatch: 1000)
        network.normalization = saved.configuration.normalization
        network.setParameters(saved.parameters)
        let resident = try ResidentDataset(set, on: backend)
        let result = network.evaluate(resident, indices: (0..<Int32(set.count)).map { $0 }, keepPredictions: true)

        print("\(checkpoint): \(spec.sizesText), trained \(saved.progress.epoch) epochs; evaluated on \(what)")
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
