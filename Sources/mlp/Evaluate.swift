import ArgumentParser
import Foundation
import MLPCore
import MNIST

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a checkpoint on the test set: accuracy, loss and the confusion matrix.")

    @OptionGroup var data: DataOptions
    @OptionGroup var backendOptions: BackendOptions

    @Option(help: ArgumentHelp("A checkpoint written by `mlp train`.", valueName: "file"))
    var checkpoint: String

    @Option(help: ArgumentHelp("Evaluate on only the first N test samples.", valueName: "N"))
    var testSamples: Int?

    func validate() throws {
        if let n = testSamples, n < 1 { throw ValidationError("--test-samples \(n): expected at least 1") }
    }

    func run() throws {
        let logger = backendOptions.makeLogger()
        let saved = try Checkpoint.read(from: URL(fileURLWithPath: checkpoint))
        var dataset = try data.load(logger: logger)
        if let n = testSamples { dataset.test = dataset.test.subset(0..<min(n, dataset.test.count)) }
        let spec = saved.configuration.network
        guard spec.inputSize == dataset.test.featureCount, spec.outputSize == dataset.test.classCount else {
            throw ValidationError("\(checkpoint): a \(spec.sizesText) network does not fit \(dataset.test.featureCount)-pixel images of \(dataset.test.classCount) classes")
        }
        let backend = try backendOptions.makeBackend(logger: logger)
        let network = try Network(spec: spec, optimizer: saved.configuration.optimizer, backend: backend, maxBatch: 1000)
        network.normalization = saved.configuration.normalization
        network.setParameters(saved.parameters)
        let test = try ResidentDataset(dataset.test, on: backend)
        let result = network.evaluate(test, indices: (0..<Int32(dataset.test.count)).map { $0 }, keepPredictions: true)

        print("\(checkpoint): \(spec.sizesText), trained \(saved.progress.epoch) epochs")
        print("test accuracy \(result.accuracy.percent) (\((Int((result.accuracy * Double(result.count)).rounded())).grouped) of \(result.count.grouped)), loss \(String(format: "%.4f", result.loss))")
        print(confusionMatrix(labels: dataset.test.labels, predictions: result.predictions, classes: spec.outputSize))
    }
}

/// The confusion matrix as text: a row per true label, a column per predicted label, then each class's recall.
func confusionMatrix(labels: [UInt8], predictions: [Int32], classes: Int) -> String {
    var counts = [[Int]](repeating: [Int](repeating: 0, count: classes), count: classes)
    for (l, p) in zip(labels, predictions) { counts[Int(l)][Int(p)] += 1 }
    let width = max(5, String(labels.count).count + 1)
    func pad(_ s: String) -> String { String(repeating: " ", count: max(0, width - s.count)) + s }
    var lines = ["confusion matrix (rows: true label, columns: predicted)"]
    lines.append(pad("") + (0..<classes).map { pad(String($0)) }.joined() + "  recall")
    for t in 0..<classes {
        let total = counts[t].reduce(0, +)
        let recall = total > 0 ? Double(counts[t][t]) / Double(total) : 0
        lines.append(pad(String(t)) + counts[t].map { pad(String($0)) }.joined() + "  " + recall.percent)
    }
    return lines.joined(separator: "\n")
}
