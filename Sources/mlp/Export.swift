import ArgumentParser
import Foundation
import MLPCore
import MNIST

/// `mlp export`: a checkpoint's network for other runtimes.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a checkpoint's network for other runtimes: ONNX, or weights-only safetensors for PyTorch.",
        discussion: """
            onnx: the whole inference graph, opset \(InferenceModel.onnxOpset): raw inputs in ([batch, features] floats, as \
            `mlp predict` reads them: pixel values 0–255, a table's own units), the input's normalisation, the layers, \
            and a classifier's logits and probabilities or a regression's values in the targets' own units out; the \
            batch dimension is dynamic, the classes (or targets) and features are in the metadata. safetensors: the \
            weights alone, named for a torch.nn.Sequential of the input map, the Linear layers and their activations \
            (and a regression's output map), so that load_state_dict reads them (README: Exporting). The file is \
            written atomically: a failure leaves no part of it.
            """)

    enum Format: String, CaseIterable, ExpressibleByArgument { case onnx, safetensors }

    @Option(help: ArgumentHelp("A checkpoint written by `mlp train`.", valueName: "file"))
    var checkpoint: String

    @Option(help: ArgumentHelp("The file to write.", valueName: "file"))
    var output: String

    @Option(help: "onnx or safetensors. (default: from --output's extension, .onnx or .safetensors)")
    var format: Format?

    func run() throws {
        let resolved: Format
        if let format {
            resolved = format
        } else {
            switch URL(fileURLWithPath: output).pathExtension.lowercased() {
            case "onnx": resolved = .onnx
            case "safetensors": resolved = .safetensors
            default: throw ValidationError("--output \(output): cannot tell the format from the name (expected .onnx or .safetensors, or give --format onnx|safetensors)")
            }
        }
        let saved = try Checkpoint.read(from: URL(fileURLWithPath: checkpoint))
        let data = try saved.dataDescription(path: checkpoint)
        let classes = (DatasetName(rawValue: saved.notes["dataset"] ?? "") ?? .mnist).classNames
        let model: InferenceModel
        do {
            model = try InferenceModel(checkpoint: saved, data: data,
                                       defaultClassNames: classes.count == saved.configuration.network.outputSize ? classes : (0..<saved.configuration.network.outputSize).map(String.init))
        } catch let error as ConfigurationError {
            throw ValidationError("\(checkpoint): its 'data' metadata does not fit its network: \(error)")
        }
        let url = URL(fileURLWithPath: output)
        switch resolved {
        case .onnx:
            try writeAtomically(model.onnx(producerVersion: MLPTool.version), to: url)
        case .safetensors:
            let (tensors, metadata) = model.weightsOnlyTensors()
            try SafeTensors.write(tensors, metadata: metadata, to: url)
        }
        let spec = model.spec
        let inputs: String
        switch model.input {
        case .affine: inputs = "pixel values 0–255"
        case .standardize: inputs = model.featureNames.isEmpty ? "values in their own units (standardised inside)" : "columns \(model.featureNames.joined(separator: ","))"
        case .identity: inputs = "values as trained on"
        }
        let outputs = model.output == nil ? (resolved == .onnx ? "logits, probabilities of \(spec.outputSize) classes" : "logits of \(spec.outputSize) classes")
            : "\(model.targetNames.joined(separator: ",")) in the targets' own units"
        print("wrote \(output): \(spec.sizesText) (\(spec.activation.rawValue)), \(resolved == .onnx ? "ONNX opset \(InferenceModel.onnxOpset)" : "weights-only safetensors"); input [batch, \(spec.inputSize)]: \(inputs); output: \(outputs)")
    }
}
