import ArgumentParser
import Foundation
import MLPCore
import MNIST

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify images with a checkpoint: PNG or PGM files, or indices into the test set.",
        discussion: """
            Each input is a path to a PNG or PGM image with the network's input size (28×28 for MNIST; colour is
            turned to gray), or a number: the index of a test-set image. MNIST digits are light on a dark
            background: pass --invert for dark digits on a light background.
            """)

    @Option(help: ArgumentHelp("A checkpoint written by `mlp train`.", valueName: "file"))
    var checkpoint: String

    @Argument(help: ArgumentHelp("Image files or test-set indices.", valueName: "image|index"))
    var inputs: [String]

    @Flag(help: "Swap black and white in image files before classifying.")
    var invert = false

    @Option(help: "How many of the most likely classes to print.")
    var top = 1

    @OptionGroup var data: DataOptions
    @OptionGroup var backendOptions: BackendOptions

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("give at least one image file or test-set index") }
        if top < 1 { throw ValidationError("--top \(top): expected at least 1") }
    }

    func run() throws {
        let logger = backendOptions.makeLogger()
        let saved = try Checkpoint.read(from: URL(fileURLWithPath: checkpoint))
        let spec = saved.configuration.network
        var testSet: LabeledImages?
        var pixels = [UInt8]()
        var names = [String]()
        var truth = [Int?]()
        for input in inputs {
            if !FileManager.default.fileExists(atPath: input), let index = Int(input) {
                if testSet == nil { testSet = try data.load(logger: logger).test }
                guard let test = testSet, (0..<test.count).contains(index) else {
                    throw ValidationError("\(input): not a file, and not a test-set index (expected 0 to \(testSet!.count - 1))")
                }
                guard test.featureCount == spec.inputSize else {
                    throw ValidationError("\(input): test images have \(test.featureCount) pixels, the network expects \(spec.inputSize)")
                }
                pixels += test.pixels[index * test.featureCount..<(index + 1) * test.featureCount]
                names.append("test[\(index)]")
                truth.append(Int(test.labels[index]))
            } else {
                var image = try GrayscaleImage.read(contentsOf: URL(fileURLWithPath: input))
                guard image.width * image.height == spec.inputSize else {
                    throw ValidationError("\(input): the image is \(image.width)×\(image.height), the network expects \(spec.inputSize) pixels (28×28 for MNIST)")
                }
                if invert { image = image.inverted() }
                pixels += image.pixels
                names.append(input)
                truth.append(nil)
            }
        }
        let backend = try backendOptions.makeBackend(logger: logger)
        let network = try Network(spec: spec, optimizer: saved.configuration.optimizer, backend: backend, maxBatch: min(inputs.count, 1000))
        network.setParameters(saved.parameters)
        let normalization = saved.configuration.normalization
        let outputs = network.outputs(for: pixels.map(normalization.apply), count: inputs.count)
        let classNames = (DatasetName(rawValue: saved.notes["dataset"] ?? "") ?? .mnist).classNames
        let k = spec.outputSize
        for (i, name) in names.enumerated() {
            let probabilities = softmax(Array(outputs[i * k..<(i + 1) * k]), loss: spec.loss)
            let ranked = probabilities.indices.sorted { probabilities[$0] > probabilities[$1] }.prefix(top)
            let label: (Int) -> String = { $0 < classNames.count && classNames[$0] != String($0) ? "\($0) (\(classNames[$0]))" : String($0) }
            var line = "\(name): " + ranked.map { "\(label($0)) p=\(String(format: "%.4f", probabilities[$0]))" }.joined(separator: ", ")
            if let t = truth[i] { line += "  [true label \(label(t))]" }
            print(line)
        }
    }
}

/// Class probabilities from a network's outputs: a softmax for cross-entropy networks (in Double, max
/// subtracted); for MSE networks the outputs are clamped at 0 and normalised to sum to 1.
func softmax(_ z: [Float], loss: Loss) -> [Double] {
    if loss == .meanSquaredError {
        let clamped = z.map { max(0, Double($0)) }
        let sum = clamped.reduce(0, +)
        return sum > 0 ? clamped.map { $0 / sum } : clamped.map { _ in 1 / Double(z.count) }
    }
    let m = Double(z.max() ?? 0)
    let e = z.map { exp(Double($0) - m) }
    let s = e.reduce(0, +)
    return e.map { $0 / s }
}
