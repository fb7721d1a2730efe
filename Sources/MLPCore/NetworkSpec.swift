import MNIST

/// The architecture of a multi-layer perceptron: layer widths, hidden activation, loss.
///
/// `layerSizes = [784, 512, 256, 10]` means three dense layers: 784→512, 512→256, 256→10. Hidden layers use
/// `activation`; the last layer has none (its values go to `loss`).
public struct NetworkSpec: Sendable, Equatable, Codable {
    /// Input size, hidden widths, output size.
    public var layerSizes: [Int]
    /// The hidden layers' activation (the output layer has none).
    public var activation: Activation
    /// The loss on the output layer's values.
    public var loss: Loss

    /// - Throws: `ConfigurationError` naming `--layers` when there are fewer than two sizes or a size below 1.
    public init(layerSizes: [Int], activation: Activation = .relu, loss: Loss = .softmaxCrossEntropy) throws {
        let text = layerSizes.map(String.init).joined(separator: ",")
        guard layerSizes.count >= 2 else {
            throw ConfigurationError(flag: "--layers", value: text, expected: "at least an input and an output size, e.g. 784,512,256,10")
        }
        if let bad = layerSizes.first(where: { $0 < 1 }) {
            throw ConfigurationError(flag: "--layers", value: text, expected: "sizes of at least 1 (found \(bad))")
        }
        if loss == .softmaxCrossEntropy && layerSizes.last! < 2 {
            throw ConfigurationError(flag: "--layers", value: text, expected: "at least 2 outputs for a softmax")
        }
        // Products index with 32-bit sizes on the GPU, and a checkpoint's sizes come from a file: bound the total
        // (checked for overflow) before anything is allocated for it.
        var total = 0
        for l in 0..<layerSizes.count - 1 {
            let (weights, o1) = layerSizes[l].multipliedReportingOverflow(by: layerSizes[l + 1])
            let (withBias, o2) = weights.addingReportingOverflow(layerSizes[l + 1])
            let (sum, o3) = total.addingReportingOverflow(withBias)
            guard !(o1 || o2 || o3), sum <= Self.maximumParameters else {
                throw ConfigurationError(flag: "--layers", value: text, expected: "at most \(Self.maximumParameters.grouped) parameters in all")
            }
            total = sum
        }
        guard activation != .identity else {
            throw ConfigurationError(flag: "--activation", value: "identity", expected: "relu, tanh or sigmoid")
        }
        self.layerSizes = layerSizes
        self.activation = activation
        self.loss = loss
    }

    /// The most parameters a network may have (2³¹ − 1: sizes stay within 32-bit indices).
    public static let maximumParameters = Int(Int32.max)

    /// Parses `"784,512,256,10"`; errors name `flag`.
    public static func parseSizes(_ text: String, flag: String = "--layers") throws -> [Int] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        var sizes = [Int]()
        for p in parts {
            guard let v = Int(p.trimmingCharacters(in: .whitespaces)) else {
                throw ConfigurationError(flag: flag, value: text, expected: "comma-separated integers, e.g. \(flag == "--layers" ? "784,512,256,10" : "512,256") ('\(p)' is not one)")
            }
            sizes.append(v)
        }
        return sizes
    }

    // Subscripts, not first/last: those go through Collection's generic accessors, which allocate in debug builds,
    // and these are read inside every training step.
    /// Values per input sample.
    public var inputSize: Int { layerSizes[0] }
    /// Outputs (classes).
    public var outputSize: Int { layerSizes[layerSizes.count - 1] }
    /// Number of dense layers.
    public var layerCount: Int { layerSizes.count - 1 }
    /// The widest layer output (sizes the backward scratch buffers).
    public var maxWidth: Int { layerSizes.max()! }

    /// The activation after layer `l` (0-based).
    public func activation(ofLayer l: Int) -> Activation { l == layerCount - 1 ? .identity : activation }

    /// The `"784,512,256,10"` spelling.
    public var sizesText: String { layerSizes.map(String.init).joined(separator: ",") }

    /// Floating-point operations of one training step on `batch` samples: 2·B·in·out for each of the forward
    /// product, the weight gradient and (all layers but the first) the input gradient.
    public func trainingFLOPs(batch: Int) -> Double {
        var total = 0.0
        for l in 0..<layerCount {
            let mac = Double(batch) * Double(layerSizes[l]) * Double(layerSizes[l + 1])
            total += 2 * mac * (l == 0 ? 2 : 3)
        }
        return total
    }
}

/// Where each layer's weight and bias live in the flat parameter buffer.
///
/// Layer `l`'s weight is `[in, out]` row-major, followed by its bias `[out]`; layers follow one another. Gradients
/// and optimizer state use the same layout, so an optimizer update is one pass over `count` numbers.
///
/// Why `[in, out]` and not PyTorch's `[out, in]`: the forward product `X · W` then reads W row by row as it is
/// stored, and only the input-gradient products (not needed for the first, largest layer) read it transposed;
/// the other way round, every forward product would have to transpose every weight matrix on every step.
/// Checkpoints store PyTorch's `[out, in]` (`Checkpoint` transposes).
public struct ParameterLayout: Sendable, Equatable {
    /// One dense layer's place in the flat buffer.
    public struct Layer: Sendable, Equatable {
        /// Its input width.
        public var inputs: Int
        /// Its output width.
        public var outputs: Int
        /// Offset of the weight in the flat buffer.
        public var weightOffset: Int
        /// Offset of the bias in the flat buffer.
        public var biasOffset: Int
        /// Weights: `inputs × outputs`, stored `[inputs, outputs]`.
        public var weightCount: Int { inputs * outputs }
    }

    /// The layers, first to last.
    public var layers: [Layer]
    /// Total parameters.
    public var count: Int

    /// The layout of `spec`: each layer's weights then its bias, layer after layer.
    public init(_ spec: NetworkSpec) {
        var offset = 0
        var layers = [Layer]()
        for l in 0..<spec.layerCount {
            let (i, o) = (spec.layerSizes[l], spec.layerSizes[l + 1])
            layers.append(Layer(inputs: i, outputs: o, weightOffset: offset, biasOffset: offset + i * o))
            offset += i * o + o
        }
        self.layers = layers
        self.count = offset
    }

    /// Initial parameters: weights from a normal distribution, biases zero.
    ///
    /// ReLU layers use He initialisation (std √(2/in), He et al. 2015); tanh and sigmoid use Glorot's
    /// (std √(2/(in+out)), Glorot & Bengio 2010). The output layer takes the rule of the hidden activation.
    public func initialParameters(for spec: NetworkSpec, using generator: inout SeededGenerator) -> [Float] {
        var p = [Float](repeating: 0, count: count)
        for layer in layers {
            let variance = spec.activation == .relu
                ? 2.0 / Double(layer.inputs)
                : 2.0 / Double(layer.inputs + layer.outputs)
            let std = variance.squareRoot()
            for i in 0..<layer.weightCount { p[layer.weightOffset + i] = Float(generator.gaussian() * std) }
        }
        return p
    }
}

import Foundation
