import Foundation
import MNIST

/// A trained network as a model for inference elsewhere: its layers, and the maps on either side that `mlp predict`
/// applies (raw inputs to the network's inputs; a regression's outputs back to the targets' units), with the names
/// of its inputs and outputs. `onnx()` and `weightsOnlyTensors()` write it for other runtimes.
public struct InferenceModel: Sendable {
    /// How a raw input (a pixel's byte value 0–255 as a number, or a table's value) becomes a network input.
    public enum InputMap: Sendable, Equatable {
        /// `x · scale + shift`, two roundings (the gather's, for pictures and byte arrays).
        case affine(scale: Float, shift: Float)
        /// `(x − mean) · inverse`, per feature (a table's or array's standardisation; `inverse` is 1/std).
        case standardize(mean: [Float], inverse: [Float])
        /// As it is (float samples trained without standardisation).
        case identity
    }

    public var spec: NetworkSpec
    /// `[ParameterLayout.count]`, the network's flat layout (weights `[in, out]`).
    public var parameters: [Float]
    public var input: InputMap
    /// A regression's map from the network's outputs to the targets' units, `z · std + mean` per target.
    public var output: (mean: [Float], standardDeviation: [Float])?
    /// A classifier's classes, output by output (empty for a regression).
    public var classNames: [String]
    /// A regression's targets, output by output (empty for a classifier).
    public var targetNames: [String]
    /// A table's feature columns, input by input (empty for pictures and arrays).
    public var featureNames: [String]
    /// One sample's shape before it is flattened (`[28, 28]`).
    public var sampleShape: [Int]

    /// The model of `checkpoint`, whose data is described by `data` (the checkpoint's `data` note; nil for one
    /// written before it was kept: pictures of the checkpoint's input size, classes named `defaultClassNames`).
    /// - Throws: `ConfigurationError` when the description does not fit the network.
    public init(checkpoint: Checkpoint, data: DataDescription?, defaultClassNames: [String]) throws {
        spec = checkpoint.configuration.network
        parameters = checkpoint.parameters
        let features = spec.inputSize
        sampleShape = data?.sampleShape ?? [features]
        featureNames = data?.featureNames ?? []
        if data?.valueType ?? .uint8 == .uint8 {
            let n = checkpoint.configuration.normalization
            input = .affine(scale: n.scale, shift: n.shift)
        } else if let s = data?.standardization {
            guard s.featureCount == features else {
                throw ConfigurationError(flag: "--checkpoint", value: "data", expected: "a standardisation of \(features) features (it has \(s.featureCount))")
            }
            input = .standardize(mean: s.mean.map { Float($0) }, inverse: s.standardDeviation.map { Float(1 / $0) })
        } else {
            input = .identity
        }
        if spec.loss.isRegression {
            guard let names = data?.targetNames, let t = data?.targetStandardization, names.count == spec.outputSize, t.featureCount == spec.outputSize else {
                throw ConfigurationError(flag: "--checkpoint", value: "data", expected: "a regression's target names and standardisation for \(spec.outputSize) outputs")
            }
            (classNames, targetNames) = ([], names)
            output = (t.mean.map { Float($0) }, t.standardDeviation.map { Float($0) })
        } else {
            let names = data?.classNames ?? defaultClassNames
            guard names.count == spec.outputSize else {
                throw ConfigurationError(flag: "--checkpoint", value: "data", expected: "\(spec.outputSize) class names (it has \(names.count))")
            }
            (classNames, targetNames, output) = (names, [], nil)
        }
    }

    /// The input map as two per-feature vectors for `(x − subtract) · multiply`, the form of the weights-only export.
    public var inputSubtractMultiply: (subtract: [Float], multiply: [Float]) {
        let f = spec.inputSize
        switch input {
        case let .affine(scale, shift): return ([Float](repeating: -shift / scale, count: f), [Float](repeating: scale, count: f))
        case let .standardize(mean, inverse): return (mean, inverse)
        case .identity: return ([Float](repeating: 0, count: f), [Float](repeating: 1, count: f))
        }
    }
}

extension InferenceModel {
    /// The format tag of a weights-only export (`format` in its metadata).
    public static let weightsFormat = "mlp-weights-1"

    /// The model as the tensors of a `torch.nn.Sequential` of the input map, the layers and their activations, and a
    /// regression's output map, under the names `load_state_dict` expects of it:
    /// `0.subtract`, `0.multiply` (`[features]`: inputs `(x − subtract) · multiply`), then layer `l`'s
    /// `{1 + 2l}.weight` `[out, in]` and `{1 + 2l}.bias` (`torch.nn.Linear`'s layout, its activation at `2 + 2l`),
    /// and for a regression `{2L}.std`, `{2L}.mean` (`[targets]`: values `z · std + mean`). Metadata: `format`,
    /// `layers`, `activation`, `loss`, `task`, and the classes, targets and features as JSON arrays.
    public func weightsOnlyTensors() -> (tensors: [SafeTensors.Tensor], metadata: [String: String]) {
        let (subtract, multiply) = inputSubtractMultiply
        let f = spec.inputSize
        var tensors: [SafeTensors.Tensor] = [.init(name: "0.subtract", shape: [f], values: subtract),
                                             .init(name: "0.multiply", shape: [f], values: multiply)]
        let layout = ParameterLayout(spec)
        for (l, layer) in layout.layers.enumerated() {
            tensors.append(.init(name: "\(1 + 2 * l).weight", shape: [layer.outputs, layer.inputs],
                                 values: transposed(parameters[layer.weightOffset..<layer.weightOffset + layer.weightCount], rows: layer.inputs, columns: layer.outputs)))
            tensors.append(.init(name: "\(1 + 2 * l).bias", shape: [layer.outputs],
                                 values: Array(parameters[layer.biasOffset..<layer.biasOffset + layer.outputs])))
        }
        if let output {
            let index = 2 * layout.layers.count
            tensors.append(.init(name: "\(index).std", shape: [spec.outputSize], values: output.standardDeviation))
            tensors.append(.init(name: "\(index).mean", shape: [spec.outputSize], values: output.mean))
        }
        var metadata = ["format": Self.weightsFormat, "layers": spec.sizesText, "activation": spec.activation.rawValue,
                        "loss": spec.loss.rawValue, "task": output == nil ? "classification" : "regression"]
        if !classNames.isEmpty { metadata["classes"] = jsonArray(classNames) }
        if !targetNames.isEmpty { metadata["targets"] = jsonArray(targetNames) }
        if !featureNames.isEmpty { metadata["features"] = jsonArray(featureNames) }
        return (tensors, metadata)
    }
}

/// `["a","b"]`, escaped as JSON escapes strings.
func jsonArray(_ list: [String]) -> String {
    String(decoding: (try? JSONSerialization.data(withJSONObject: list)) ?? Data("[]".utf8), as: UTF8.self)
}
