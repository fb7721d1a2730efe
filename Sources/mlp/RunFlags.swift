import ArgumentParser
import Foundation
import MLPCore
import MNIST

/// The flags that choose what a run trains and tests on (the data and its reading, the sample counts, the split) and
/// when it stops early, kept in its checkpoints (the `run_flags` note) so that `--resume` trains on the same samples with the same
/// schedule: a flag left out on resume takes its stored value, one that repeats it is accepted, and one that changes
/// it is refused by name. Paths are kept absolute, so a run resumes from any working directory.
struct RunFlags: Codable, Equatable {
    var data: String?
    var dataDir: String?
    var dataset: String
    var format: String?
    var labels: String?
    var target: String?
    var task: String?
    var features: String?
    var ignore: [String]
    var noHeader: Bool
    var delimiter: String?
    var grayscale: Bool
    var testData: String?
    var testLabels: String?
    var trainSamples: Int?
    var testSamples: Int?
    var testFraction: Double?
    var patience: Int?
    var monitor: String?

    /// The flags as given to `train`.
    init(_ train: Train) {
        let d = train.data
        func absolute(_ path: String?) -> String? { path.map { URL(fileURLWithPath: $0).standardizedFileURL.path } }
        data = absolute(d.data)
        dataDir = absolute(d.dataDir)
        dataset = d.dataset.rawValue
        format = d.format?.rawValue
        labels = absolute(d.labels)
        target = d.target
        task = d.task?.rawValue
        features = d.features
        ignore = d.ignore
        noHeader = d.noHeader
        delimiter = d.delimiter
        grayscale = d.grayscale
        testData = absolute(d.testData)
        testLabels = absolute(d.testLabels)
        trainSamples = train.trainSamples
        testSamples = train.testSamples
        testFraction = train.testFraction
        patience = train.patience
        monitor = train.monitor?.rawValue
    }

    /// The flags of the resumed run: each one given keeps its value if it equals the stored one, each one left out
    /// (at its default) takes the stored value.
    /// - Throws: `ValidationError` naming every flag given with another value than the stored one.
    func resumed(from stored: RunFlags) throws -> RunFlags {
        var out = self, conflicts = [String]()
        func merge<T: Equatable>(_ path: WritableKeyPath<RunFlags, T>, _ unset: T, _ flag: String, _ show: (T) -> String) {
            let given = self[keyPath: path], kept = stored[keyPath: path]
            if given == unset {
                out[keyPath: path] = kept
            } else if given != kept {
                conflicts.append("\(flag) \(show(given)) (the run was trained with \(kept == unset ? "none" : show(kept)))")
            }
        }
        func text(_ v: String?) -> String { v ?? "none" }
        merge(\.data, nil, "--data", text)
        merge(\.dataDir, nil, "--data-dir", text)
        merge(\.dataset, DatasetName.mnist.rawValue, "--dataset") { $0 }
        merge(\.format, nil, "--format", text)
        merge(\.labels, nil, "--labels", text)
        merge(\.target, nil, "--target", text)
        merge(\.task, nil, "--task", text)
        merge(\.features, nil, "--features", text)
        merge(\.ignore, [], "--ignore") { $0.joined(separator: ",") }
        merge(\.noHeader, false, "--no-header") { "\($0)" }
        merge(\.delimiter, nil, "--delimiter", text)
        merge(\.grayscale, false, "--grayscale") { "\($0)" }
        merge(\.testData, nil, "--test-data", text)
        merge(\.testLabels, nil, "--test-labels", text)
        merge(\.trainSamples, nil, "--train-samples") { $0.map(String.init) ?? "all" }
        merge(\.testSamples, nil, "--test-samples") { $0.map(String.init) ?? "all" }
        merge(\.testFraction, nil, "--test-fraction") { $0.map { "\($0)" } ?? "the default" }
        merge(\.patience, nil, "--patience") { $0.map(String.init) ?? "none" }
        merge(\.monitor, nil, "--monitor", text)
        guard conflicts.isEmpty else {
            throw ValidationError("--resume continues the stored run on the same samples; these flags would change them: " + conflicts.joined(separator: "; "))
        }
        return out
    }

    /// Sets these flags on `train`.
    func apply(to train: inout Train) throws {
        train.data.data = data
        train.data.named.dataDir = dataDir
        guard let name = DatasetName(rawValue: dataset) else {
            throw ValidationError("the checkpoint's run_flags name a dataset this mlp does not know: \(dataset)")
        }
        train.data.named.dataset = name
        train.data.format = try format.map { f in
            guard let v = DataSource.Format(rawValue: f) else { throw ValidationError("the checkpoint's run_flags have an unknown format \(f)") }
            return v
        }
        train.data.labels = labels
        train.data.target = target
        train.data.task = try task.map { t in
            guard let v = DataSource.Task(rawValue: t) else { throw ValidationError("the checkpoint's run_flags have an unknown task \(t)") }
            return v
        }
        train.data.features = features
        train.data.ignore = ignore
        train.data.noHeader = noHeader
        train.data.delimiter = delimiter
        train.data.grayscale = grayscale
        train.data.testData = testData
        train.data.testLabels = testLabels
        train.trainSamples = trainSamples
        train.testSamples = testSamples
        train.testFraction = testFraction
        train.patience = patience
        train.monitor = try monitor.map { m in
            guard let v = Train.Monitor(rawValue: m) else { throw ValidationError("the checkpoint's run_flags have an unknown monitor \(m)") }
            return v
        }
    }
}

extension Checkpoint {
    /// The flags that chose the run's data and samples (`RunFlags`); nil for a checkpoint written before they were
    /// kept.
    func runFlags(path: String) throws -> RunFlags? {
        guard let json = notes["run_flags"] else { return nil }
        do {
            return try JSONDecoder().decode(RunFlags.self, from: Data(json.utf8))
        } catch {
            throw ValidationError("\(path): its 'run_flags' metadata is not what mlp writes: \(error)")
        }
    }
}
