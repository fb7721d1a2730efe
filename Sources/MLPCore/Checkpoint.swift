import Foundation
import MNIST

/// A training run saved to a safetensors file: the parameters under PyTorch-style names, the optimizer's state,
/// and in `__metadata__` the architecture, the run's configuration and its progress.
///
/// Tensors: `layers.{l}.weight` `[out, in]` and `layers.{l}.bias` `[out]` for each layer `l` (the layout of
/// `torch.nn.Linear`; the network's own buffers hold weights as `[in, out]`, see `ParameterLayout`), and `optimizer.{slot}.layers.{l}.weight|bias` for each optimizer state slot
/// (`exp_avg`, `exp_avg_sq`, `momentum_buffer`). Metadata keys: `format` (`mlp-checkpoint-1`), `layers`
/// (`784,512,256,10`), `activation`, `loss`, `configuration` and `progress` (JSON), plus notes: `mlp train` writes
/// `dataset`, `data` (the `DataDescription` of the `MNIST` module, as JSON: classes or targets, features, sample
/// shape, standardisations), `run` (the run's id), `run_flags` (the flags that chose its data and samples, JSON),
/// `training_count`, `best_<monitor>` and `best_epoch` (the best evaluation so far), and `stopped_early` where
/// `--patience` ended the run.
public struct Checkpoint: Sendable {
    /// The value of the `format` metadata entry of every checkpoint `mlp` writes.
    public static let format = "mlp-checkpoint-1"

    /// The run: network, optimizer, schedule, batching, seed.
    public var configuration: TrainingConfiguration
    /// Where the run stood: epoch, step, and the shuffle generator's state.
    public var progress: TrainingProgress
    /// `[ParameterLayout.count]`, the network's flat layout.
    public var parameters: [Float]
    /// `[stateSlots × ParameterLayout.count]`.
    public var optimizerState: [Float]
    /// Extra strings stored in the metadata (dataset name, accuracy, …).
    public var notes: [String: String]

    /// A checkpoint from its parts; `parameters` and `optimizerState` in the flat layout of `ParameterLayout`.
    public init(configuration: TrainingConfiguration, progress: TrainingProgress, parameters: [Float], optimizerState: [Float], notes: [String: String] = [:]) {
        self.configuration = configuration
        self.progress = progress
        self.parameters = parameters
        self.optimizerState = optimizerState
        self.notes = notes
    }

    /// The state of `network` and `trainer` now.
    public init(trainer: Trainer, notes: [String: String] = [:]) {
        self.init(
            configuration: trainer.configuration, progress: trainer.progress,
            parameters: trainer.network.parameterValues(), optimizerState: trainer.network.optimizerStateValues(), notes: notes)
    }

    /// Writes the checkpoint atomically (see `writeAtomically`).
    public func write(to url: URL) throws {
        let layout = ParameterLayout(configuration.network)
        var tensors = [SafeTensors.Tensor]()
        func add(_ prefix: String, _ flat: ArraySlice<Float>) {
            let base = flat.startIndex
            for (l, layer) in layout.layers.enumerated() {
                let w = base + layer.weightOffset, b = base + layer.biasOffset
                tensors.append(.init(name: "\(prefix)layers.\(l).weight", shape: [layer.outputs, layer.inputs],
                                     values: transposed(flat[w..<w + layer.weightCount], rows: layer.inputs, columns: layer.outputs)))
                tensors.append(.init(name: "\(prefix)layers.\(l).bias", shape: [layer.outputs], values: Array(flat[b..<b + layer.outputs])))
            }
        }
        add("", parameters[...])
        for (s, name) in configuration.optimizer.stateNames.enumerated() {
            add("optimizer.\(name).", optimizerState[s * layout.count..<(s + 1) * layout.count])
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var metadata = notes
        metadata["format"] = Self.format
        metadata["layers"] = configuration.network.sizesText
        metadata["activation"] = configuration.network.activation.rawValue
        metadata["loss"] = configuration.network.loss.rawValue
        metadata["configuration"] = String(decoding: try encoder.encode(configuration), as: UTF8.self)
        metadata["progress"] = String(decoding: try encoder.encode(progress), as: UTF8.self)
        try SafeTensors.write(tensors, metadata: metadata, to: url)
    }

    /// Reads a checkpoint written by `write(to:)`.
    /// - Throws: `SafeTensorsError` naming the file and what is missing or does not fit the stored architecture.
    public static func read(from url: URL) throws -> Checkpoint {
        try decode(SafeTensors.read(contentsOf: url), path: url.path)
    }

    /// Reads a checkpoint from the bytes of a safetensors file; `path` is named in errors.
    public static func decode(_ bytes: [UInt8], path: String) throws -> Checkpoint {
        try decode(SafeTensors.decode(bytes, file: path), path: path)
    }

    static func decode(_ file: SafeTensors.File, path: String) throws -> Checkpoint {
        func fail(_ reason: String) -> SafeTensorsError { .malformed(file: path, reason: reason) }
        guard file.metadata["format"] == format else {
            throw fail("metadata 'format' is \(file.metadata["format"].map { "'\($0)'" } ?? "missing"), expected '\(format)' (a checkpoint written by mlp)")
        }
        let decoder = JSONDecoder()
        let configuration: TrainingConfiguration
        let progress: TrainingProgress
        do {
            configuration = try decoder.decode(TrainingConfiguration.self, from: Data((file.metadata["configuration"] ?? "").utf8))
            progress = try decoder.decode(TrainingProgress.self, from: Data((file.metadata["progress"] ?? "").utf8))
        } catch {
            throw fail("metadata 'configuration' or 'progress' is not what mlp writes: \(error)")
        }
        do {
            // Decoding bypasses the initialisers' checks: run them again on what the file says.
            _ = try NetworkSpec(layerSizes: configuration.network.layerSizes, activation: configuration.network.activation, loss: configuration.network.loss)
            try configuration.optimizer.validate()
            try configuration.schedule.validate()
        } catch {
            throw fail("stored configuration is invalid: \(error)")
        }
        let layout = ParameterLayout(configuration.network)
        // The sizes come from the file: make sure it holds that many values before allocating for them.
        let names = configuration.optimizer.stateNames
        let stored = file.entries.values.reduce(0) { $0 + $1.range.count / 4 }
        guard layout.count <= stored, names.count * layout.count <= stored else {
            throw fail("layers \(configuration.network.sizesText) need \(layout.count.grouped) parameters\(names.isEmpty ? "" : " and \(names.count)× as much optimizer state"), but the file holds \(stored.grouped) values")
        }
        func load(_ prefix: String, into flat: inout [Float], at base: Int) throws {
            for (l, layer) in layout.layers.enumerated() {
                for (suffix, shape, offset) in [("weight", [layer.outputs, layer.inputs], layer.weightOffset), ("bias", [layer.outputs], layer.biasOffset)] {
                    let name = "\(prefix)layers.\(l).\(suffix)"
                    let (actual, values) = try file.floats(name)
                    guard actual == shape else {
                        throw fail("tensor '\(name)' has shape \(actual), but layers \(configuration.network.sizesText) need \(shape)")
                    }
                    let stored = suffix == "weight" ? transposed(values[...], rows: layer.outputs, columns: layer.inputs) : values
                    flat.replaceSubrange(base + offset..<base + offset + stored.count, with: stored)
                }
            }
        }
        var parameters = [Float](repeating: 0, count: layout.count)
        try load("", into: &parameters, at: 0)
        var state = [Float](repeating: 0, count: names.count * layout.count)
        for (s, name) in names.enumerated() { try load("optimizer.\(name).", into: &state, at: s * layout.count) }
        let reserved: Set = ["format", "layers", "activation", "loss", "configuration", "progress"]
        return Checkpoint(
            configuration: configuration, progress: progress, parameters: parameters, optimizerState: state,
            notes: file.metadata.filter { !reserved.contains($0.key) })
    }
}

/// A `rows × columns` row-major matrix transposed.
func transposed(_ m: ArraySlice<Float>, rows: Int, columns: Int) -> [Float] {
    var out = [Float](repeating: 0, count: rows * columns)
    let base = m.startIndex
    for r in 0..<rows {
        for c in 0..<columns { out[c * rows + r] = m[base + r * columns + c] }
    }
    return out
}
