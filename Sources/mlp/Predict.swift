import ArgumentParser
import Foundation
import Logging
import MLPCore
import MNIST

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify (or predict a regression's values) with a checkpoint: image files, test-set indices, or every sample of --data.",
        discussion: """
            Each input is a path to a PNG or PGM image with the network's input size (28×28 for MNIST; colour is \
            turned to gray), or a number: the index of a sample of the test set (of --data's test part, or of all of \
            --data where it has none). MNIST digits are light on a dark background: pass --invert for dark digits on a \
            light background.

            With --data and no inputs, every sample of the data is classified and written as CSV (to --output, or to \
            standard output): its row, the predicted class, each class's probability, and the true class where the data \
            has one. A table needs only the network's feature columns; its class column may be missing. A regression \
            writes each target's predicted value in its own units (pred_<target>) and the true value where the data has it.
            """)

    @Option(help: ArgumentHelp("A checkpoint written by `mlp train`.", valueName: "file"))
    var checkpoint: String

    @Argument(help: ArgumentHelp("Image files or test-set indices.", valueName: "image|index"))
    var inputs: [String] = []

    @Flag(help: "Swap black and white in image files before classifying.")
    var invert = false

    @Option(help: "How many of the most likely classes to print.")
    var top = 1

    @Option(help: ArgumentHelp("The file of predictions: JSON Lines for a name ending in .jsonl, else CSV. (default: with --data and no inputs, CSV to standard output; else lines to read)", valueName: "file"))
    var output: String?

    @OptionGroup var data: DataOptions
    @OptionGroup var backendOptions: BackendOptions

    func validate() throws {
        if inputs.isEmpty && data.data == nil { throw ValidationError("give image files or test-set indices, or --data to classify every sample of it") }
        if top < 1 { throw ValidationError("--top \(top): expected at least 1") }

    }

    func run() throws {
        let logger = backendOptions.makeLogger()
        let saved = try Checkpoint.read(from: URL(fileURLWithPath: checkpoint))
        let spec = saved.configuration.network
        let trained = try saved.dataDescription(path: checkpoint)
        if spec.loss.isRegression { return try predictValues(saved, trained: trained, logger: logger) }
        let classNames = trained?.classNames ?? (DatasetName(rawValue: saved.notes["dataset"] ?? "") ?? .mnist).classNames
        guard classNames.count == spec.outputSize else {
            throw ValidationError("\(checkpoint): \(classNames.count) class names for \(spec.outputSize) outputs")
        }
        if inputs.isEmpty { return try predictAll(saved, trained: trained, classNames: classNames, logger: logger) }

        var samples: LabeledSamples?
        var values = [Float]()
        var names = [String]()
        var truth = [Int?]()
        for input in inputs {
            if !FileManager.default.fileExists(atPath: input), let index = Int(input) {
                if samples == nil {
                    let loaded = try data.load(trained: trained, logger: logger)
                    samples = loaded.test ?? loaded.train
                    if let standardization = trained?.standardization { standardization.apply(to: &samples!) }
                }
                guard let set = samples, (0..<set.count).contains(index) else {
                    throw ValidationError("\(input): not a file, and not a test-set index (expected 0 to \(samples!.count - 1))")
                }
                guard set.featureCount == spec.inputSize else {
                    throw ValidationError("\(input): test samples have \(set.featureCount) values, the network expects \(spec.inputSize)")
                }
                values += networkInputs(of: set, rows: index..<index + 1, normalization: saved.configuration.normalization)
                names.append("test[\(index)]")
                truth.append(Int(set.labels[index]))
            } else {
                // A picture with the channels the network was trained on: three planes for colour, else gray.
                let channels = trained.map { $0.sampleShape.count == 3 ? $0.sampleShape[0] : 1 } ?? 1
                var picture = try ImageFolder.picture(URL(fileURLWithPath: input), channels: channels)
                guard picture.pixels.count == spec.inputSize else {
                    let expected = trained.map { $0.sampleShape.map(String.init).joined(separator: "×") } ?? "28×28"
                    throw ValidationError("\(input): the picture is \(picture.width)×\(picture.height)\(channels == 3 ? " in colour" : ""), the network expects \(spec.inputSize) values (\(expected))")
                }
                if invert { picture.pixels = picture.pixels.map { 255 - $0 } }
                values += picture.pixels.map(saved.configuration.normalization.apply)
                names.append(input)
                truth.append(nil)
            }
        }
        let probabilities = try classify(saved, values, count: inputs.count, logger: logger)
        let k = spec.outputSize
        if output != nil {
            // To a file: a row per input, as for --data.
            var table = PredictionTable(header: ["input", "prediction"] + classNames.map { "p_" + $0 } + (truth.contains { $0 != nil } ? ["label"] : []))
            for (i, name) in names.enumerated() {
                let p = probabilities[i * k..<(i + 1) * k]
                let best = p.indices.max { p[$0] < p[$1] }! - i * k
                var row: [PredictionTable.Cell] = [.text(name), .text(classNames[best])] + p.map { .number($0, digits: 6) }
                if table.header.last == "label" { row.append(truth[i].map { .text(classNames[$0]) } ?? .text("")) }
                table.rows.append(row)
            }
            return try write(table, summary: "")
        }
        for (i, name) in names.enumerated() {
            let p = probabilities[i * k..<(i + 1) * k]
            let ranked = p.indices.sorted { p[$0] > p[$1] }.prefix(top).map { $0 - i * k }
            let label: (Int) -> String = { classNames[$0] != String($0) ? "\($0) (\(classNames[$0]))" : String($0) }
            var line = "\(name): " + ranked.map { "\(label($0)) p=\(String(format: "%.4f", p[i * k + $0]))" }.joined(separator: ", ")
            if let t = truth[i] { line += "  [true label \(label(t))]" }
            print(line)
        }
    }

    /// Rows `rows` of `set` as the network's inputs, as training gathers them: bytes mapped by `normalization`, floats
    /// as they are (already standardised).
    func networkInputs(of set: LabeledSamples, rows: Range<Int>, normalization: Normalization) -> [Float] {
        let f = set.featureCount
        switch set.values {
        case .bytes(let v): return v[rows.lowerBound * f..<rows.upperBound * f].map(normalization.apply)
        case .floats(let v): return Array(v[rows.lowerBound * f..<rows.upperBound * f])
        }
    }

    /// Class probabilities of `count` samples' inputs, row after row.
    func classify(_ saved: Checkpoint, _ values: [Float], count: Int, logger: Logger) throws -> [Double] {
        let spec = saved.configuration.network
        let backend = try backendOptions.makeBackend(logger: logger)
        let network = try Network(spec: spec, optimizer: saved.configuration.optimizer, backend: backend, maxBatch: max(1, min(count, 1000)))
        network.setParameters(saved.parameters)
        let outputs = network.outputs(for: values, count: count)
        let k = spec.outputSize
        return (0..<count).flatMap { softmax(Array(outputs[$0 * k..<($0 + 1) * k]), loss: spec.loss) }
    }

    /// The rows of --data (its test part where it has one) as the network's inputs: a table's feature columns alone
    /// where its target column is missing, an array without labels, or the samples with their labels or targets
    /// (`set`, standardised as the inputs are).
    func inputRows(_ saved: Checkpoint, trained: DataDescription?, logger: Logger) throws -> (values: [Float], count: Int, set: LabeledSamples?) {
        let spec = saved.configuration.network
        let source = try data.source(path: data.data!, labels: data.labels, trained: trained)
        // A table without its class column: the features alone.
        if try source.resolvedFormat() == .csv, let trained, !trained.featureNames.isEmpty,
           let target = trained.target,
           try !CSVTable.header(of: URL(fileURLWithPath: source.path), delimiter: source.resolvedDelimiter, hasHeader: source.hasHeader).contains(target) {
            var values = try source.loadFeatureRows(features: trained.featureNames)
            trained.standardization?.apply(to: &values)
            return (values, values.count / trained.featureNames.count, nil)
        }
        if try source.resolvedFormat() == .npy, source.labelsPath == nil {
            // Samples without labels: the array alone.
            let x = try NumPyArray.read(contentsOf: URL(fileURLWithPath: source.path))
            let count = x.shape.first ?? 0
            guard x.shape.count >= 2, x.count == count * spec.inputSize else {
                throw ValidationError("\(source.path): an array of shape \(x.shape), the network expects samples of \(spec.inputSize) values")
            }
            if case .uint8(let bytes) = x.storage { return (bytes.map(saved.configuration.normalization.apply), count, nil) }
            var values = x.floats
            trained?.standardization?.apply(to: &values)
            return (values, count, nil)
        }
        let loaded = try data.load(trained: trained, logger: logger)
        var set = loaded.test ?? loaded.train
        guard set.featureCount == spec.inputSize else {
            throw ValidationError("\(data.data!): samples of \(set.featureCount) values, the network expects \(spec.inputSize)")
        }
        if let standardization = trained?.standardization { standardization.apply(to: &set) }
        return (networkInputs(of: set, rows: 0..<set.count, normalization: saved.configuration.normalization), set.count, set)
    }

    /// Every sample of --data (its test part where it has one), as CSV.
    func predictAll(_ saved: Checkpoint, trained: DataDescription?, classNames: [String], logger: Logger) throws {
        let spec = saved.configuration.network
        let (values, count, set) = try inputRows(saved, trained: trained, logger: logger)
        let truth = set?.labels
        let probabilities = try classify(saved, values, count: count, logger: logger)
        let k = spec.outputSize
        var table = PredictionTable(header: ["row", "prediction"] + classNames.map { "p_" + $0 } + (truth == nil ? [] : ["label"]))
        var correct = 0
        for r in 0..<count {
            let p = probabilities[r * k..<(r + 1) * k]
            let best = p.indices.max { p[$0] < p[$1] }! - r * k
            var row: [PredictionTable.Cell] = [.integer(r), .text(classNames[best])] + p.map { .number($0, digits: 6) }
            if let truth {
                row.append(.text(classNames[Int(truth[r])]))
                if Int(truth[r]) == best { correct += 1 }
            }
            table.rows.append(row)
        }
        try write(table, summary: truth == nil ? "" : "; accuracy \((Double(correct) / Double(max(count, 1))).percent)")
    }

    /// The predictions to --output (atomically; JSON Lines for a name ending in .jsonl or .json, CSV otherwise), or
    /// as CSV to standard output.
    func write(_ table: PredictionTable, summary: String) throws {
        guard let output else { return print(table.csv(), terminator: "") }
        let ext = URL(fileURLWithPath: output).pathExtension.lowercased()
        let text = ext == "jsonl" || ext == "json" ? table.jsonLines() : table.csv()
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
        } catch {
            throw IOFailure(path: "--output \(output)", reason: "cannot write: \((error as NSError).localizedDescription)")
        }
        print("wrote \(table.rows.count.grouped) predictions to \(output)\(summary)")
    }

    /// A regression's predictions in the targets' own units: for test-set indices, a line each; for --data, CSV with
    /// a column per target (`pred_<name>`) and, where the data has them, the true values (`<name>`).
    func predictValues(_ saved: Checkpoint, trained: DataDescription?, logger: Logger) throws {
        let spec = saved.configuration.network
        guard let trained, let names = trained.targetNames, let scaling = trained.targetStandardization, names.count == spec.outputSize else {
            throw ValidationError("\(checkpoint): a regression checkpoint without its targets' names and standardisation ('data' metadata)")
        }
        let k = spec.outputSize
        var rows: [Int], values: [Float], count: Int, set: LabeledSamples?
        if inputs.isEmpty {
            (values, count, set) = try inputRows(saved, trained: trained, logger: logger)
            rows = Array(0..<count)
        } else {
            guard data.data != nil else { throw ValidationError("a regression predicts rows of --data: give --data, and test-set indices or none") }
            let all = try inputRows(saved, trained: trained, logger: logger)
            rows = try inputs.map { input in
                guard let index = Int(input), (0..<all.count).contains(index) else {
                    throw ValidationError("\(input): not a test-set index of \(data.name) (expected 0 to \(all.count - 1))")
                }
                return index
            }
            values = rows.flatMap { all.values[$0 * spec.inputSize..<($0 + 1) * spec.inputSize] }
            (count, set) = (rows.count, all.set)
        }
        let backend = try backendOptions.makeBackend(logger: logger)
        let network = try Network(spec: spec, optimizer: saved.configuration.optimizer, backend: backend, maxBatch: max(1, min(count, 1000)))
        network.setParameters(saved.parameters)
        var predicted = network.outputs(for: values, count: count)
        scaling.restore(&predicted)
        let truth = set.map { s in rows.flatMap { s.targets[$0 * k..<($0 + 1) * k] } }
        if !inputs.isEmpty {
            for (i, input) in inputs.enumerated() {
                var line = "test[\(input)]: " + (0..<k).map { "\(names[$0]) \(significant(Double(predicted[i * k + $0])))" }.joined(separator: ", ")
                if let truth { line += "  [true " + (0..<k).map { significant(Double(truth[i * k + $0])) }.joined(separator: ", ") + "]" }
                print(line)
            }
            return
        }
        var table = PredictionTable(header: ["row"] + names.map { "pred_" + $0 } + (truth == nil ? [] : names))
        var errors = RegressionErrors(outputs: k)
        for r in 0..<count {
            let p = predicted[r * k..<(r + 1) * k]
            var row: [PredictionTable.Cell] = [.integer(r)] + p.map { .number(Double($0), digits: 7) }
            if let truth {
                let t = truth[r * k..<(r + 1) * k]
                row += t.map { .number(Double($0), digits: 7) }
                errors.add(outputs: p, targets: t)
            }
            table.rows.append(row)
        }
        try write(table, summary: truth == nil ? "" : "; RMSE \(significant(errors.rmse())), MAE \(significant(errors.mae())), R² \(String(format: "%.4f", errors.r2))")
    }
}

/// A CSV field, quoted where it holds a comma, a quote or a line break (RFC 4180).
func csvField(_ text: String) -> String {
    guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
    return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
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

/// Predictions as rows of named cells, written as CSV (RFC 4180 quoting) or JSON Lines (an object per row, numbers
/// as numbers).
struct PredictionTable {
    enum Cell {
        case text(String)
        case integer(Int)
        /// A number written with `digits` significant digits.
        case number(Double, digits: Int)

        var csvText: String {
            switch self {
            case .text(let t): return csvField(t)
            case .integer(let i): return String(i)
            case let .number(v, digits): return String(format: "%.\(digits)g", v)
            }
        }

        var jsonValue: Any {
            switch self {
            case .text(let t): return t
            case .integer(let i): return i
            case let .number(v, digits): return Double(String(format: "%.\(digits)g", v)) ?? v
            }
        }
    }

    var header: [String]
    var rows: [[Cell]] = []

    func csv() -> String {
        var out = header.map(csvField).joined(separator: ",") + "\n"
        for row in rows { out += row.map(\.csvText).joined(separator: ",") + "\n" }
        return out
    }

    func jsonLines() -> String {
        var out = ""
        for row in rows {
            // (A target named like a column before it keeps the first: names are the data's.)
            let object = Dictionary(zip(header, row.map(\.jsonValue)), uniquingKeysWith: { first, _ in first })
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
            out += String(decoding: data, as: UTF8.self) + "\n"
        }
        return out
    }
}
