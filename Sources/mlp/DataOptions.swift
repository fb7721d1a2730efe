import ArgumentParser
import Foundation
import Logging
import MNIST

/// A named dataset of the MNIST family found on this machine, or a folder of its four IDX files: what the benchmarks
/// and `mlp check` train on.
struct DatasetOptions: ParsableArguments {
    @Option(help: "The dataset: \(DatasetName.allCases.map(\.rawValue).joined(separator: ", ")).")
    var dataset: DatasetName = .mnist

    @Option(help: ArgumentHelp("A directory holding the four IDX files (raw or .gz); overrides the search. (default: found by itself, see README)", valueName: "dir"))
    var dataDir: String?

    /// The folder: `--data-dir`, or where the named dataset was found.
    func directory() throws -> URL {
        guard let dataDir else { return try DatasetLocator.locate(dataset) }
        let url = URL(fileURLWithPath: dataDir)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ValidationError("--data-dir \(dataDir): no such directory")
        }
        return url
    }

    /// Finds and loads the four files.
    func load(logger: Logger) throws -> Dataset {
        let directory = try directory()
        let start = Date()
        let data = try Dataset.load(directory: directory)
        logger.info("loaded \(dataset.rawValue) from \(directory.path) in \(String(format: "%.2f", Date().timeIntervalSince(start))) s")
        return data
    }
}

/// Where the data comes from: a named dataset found on this machine (MNIST by default), a folder of IDX files, or a
/// file of one's own (a CSV table, NumPy arrays).
struct DataOptions: ParsableArguments {
    @OptionGroup var named: DatasetOptions
    var dataset: DatasetName { named.dataset }
    var dataDir: String? { named.dataDir }

    @Option(help: ArgumentHelp(
        "Your own data: a CSV table (.csv, .tsv), samples in a .npy (with --labels), a .npz holding x_train, y_train (and x_test, y_test), a folder of IDX files, or a folder of pictures in class folders (DIR/<class>/*.png, or DIR/train/<class>/ and DIR/test/<class>/). (default: none, --dataset)",
        valueName: "path"))
    var data: String?

    @Option(help: ArgumentHelp("The format of --data, when its name does not tell: \(DataSource.Format.allCases.map(\.rawValue).joined(separator: ", ")). (default: from the file's extension; a folder: IDX files or pictures)", valueName: "format"))
    var format: DataSource.Format?

    @Option(help: ArgumentHelp("The labels of a .npy given as --data: one integer per sample (classes), or numbers [samples] or [samples, outputs] (regression targets).", valueName: "file.npy"))
    var labels: String?

    @Option(help: ArgumentHelp("CSV: the column to predict, by name or 0-based index. (default: the last column)", valueName: "column"))
    var target: String?

    @Option(help: ArgumentHelp("classification or regression. (default: regression when the target holds numbers that are not all whole, or several columns; else classification)", valueName: "task"))
    var task: DataSource.Task?

    @Option(help: ArgumentHelp("CSV: the feature columns, comma-separated names or indices. (default: all but the target and --ignore)", valueName: "columns"))
    var features: String?

    @Option(help: ArgumentHelp("CSV: columns to leave out (an id, say), comma-separated; repeatable.", valueName: "columns"))
    var ignore: [String] = []

    @Flag(help: "CSV: the first row is data, not column names (columns are then named by their 0-based index).")
    var noHeader = false

    @Option(help: ArgumentHelp("CSV: the field delimiter, one character or 'tab'. (default: tab for .tsv, else a comma)", valueName: "char"))
    var delimiter: String?

    @Flag(help: "Pictures: read colour pictures as gray, one channel (colour keeps its three by default).")
    var grayscale = false

    @Option(help: ArgumentHelp("A test set in the format of --data (for a .npy, with --test-labels).", valueName: "path"))
    var testData: String?

    @Option(help: ArgumentHelp("The labels of a .npy given as --test-data.", valueName: "file.npy"))
    var testLabels: String?

    func validate() throws {
        if data != nil && dataDir != nil { throw ValidationError("--data and --data-dir: give one of them") }
        if data == nil {
            for (flag, given) in [("--format", format != nil), ("--labels", labels != nil), ("--target", target != nil), ("--task", task != nil), ("--features", features != nil),
                                  ("--ignore", !ignore.isEmpty), ("--no-header", noHeader), ("--delimiter", delimiter != nil), ("--grayscale", grayscale),
                                  ("--test-data", testData != nil), ("--test-labels", testLabels != nil)] where given {
                throw ValidationError("\(flag) applies to --data, which is not given")
            }
        }
        if testLabels != nil && testData == nil { throw ValidationError("--test-labels: give --test-data with it") }
        _ = try delimiterByte()
    }

    /// `--delimiter` as a byte.
    func delimiterByte() throws -> UInt8? {
        guard let delimiter else { return nil }
        switch delimiter {
        case "tab", "\\t", "\t": return UInt8(ascii: "\t")
        default:
            guard delimiter.utf8.count == 1, let byte = delimiter.utf8.first, byte != UInt8(ascii: "\""), byte != 0x0A, byte != 0x0D else {
                throw ValidationError("--delimiter \(delimiter): expected one character (not a quote or a line break), or 'tab'")
            }
            return byte
        }
    }

    /// `--data` (or `--test-data`) as a source; a checkpoint's table columns and task where the flags name none.
    func source(path: String, labels: String?, trained: DataDescription? = nil) throws -> DataSource {
        let trainedFeatures = trained.flatMap { $0.featureNames.isEmpty ? nil : $0.featureNames }
        if let task, let trained, task != trained.task {
            throw ValidationError("--task \(task.rawValue): the network was trained for \(trained.task.rawValue)")
        }
        var source = DataSource(path: path, format: format, labelsPath: labels, target: target ?? trained?.target,
                                features: features.map(Self.list) ?? trainedFeatures, ignored: ignore.flatMap(Self.list), hasHeader: !noHeader,
                                delimiter: try delimiterByte(), grayscale: grayscale)
        source.task = task ?? trained?.task
        return source
    }

    static func list(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// What was named, in a word or two: "mnist", "iris.csv".
    var name: String {
        if let data { return URL(fileURLWithPath: data).lastPathComponent }
        return dataDir ?? dataset.rawValue
    }

    /// Finds and reads the data: its training part, and its test part where the source has one (a named dataset's or
    /// IDX folder's test files, an archive's x_test, or --test-data). With `trained` (a checkpoint's description),
    /// labels are numbered as its classes, and a table's columns are its features and target unless flags name others.
    func load(trained: DataDescription? = nil, logger: Logger) throws -> DataSource.Loaded {
        let start = Date()
        var loaded: DataSource.Loaded
        let classNames = trained?.classNames
        if let data {
            loaded = try source(path: data, labels: labels, trained: trained).load(classNames: classNames)
            if let testData {
                // The test set is read as the training set was: the same classes, or regression targets.
                var testSource = try source(path: testData, labels: testLabels, trained: trained)
                testSource.task = loaded.train.isRegression ? .regression : .classification
                let test = try testSource.load(classNames: loaded.train.isRegression ? nil : classNames ?? loaded.train.classNames)
                guard test.train.targetNames == loaded.train.targetNames else {
                    throw ValidationError("--test-data \(testData): targets \(test.train.targetNames.joined(separator: ",")), the training data's are \(loaded.train.targetNames.joined(separator: ","))")
                }
                guard test.train.sampleShape == loaded.train.sampleShape else {
                    throw ValidationError("--test-data \(testData): samples of \(test.train.shapeText), the training samples are \(loaded.train.shapeText)")
                }
                guard test.train.featureNames == loaded.train.featureNames else {
                    throw ValidationError("--test-data \(testData): columns \(test.train.featureNames.joined(separator: ",")), the training data's are \(loaded.train.featureNames.joined(separator: ","))")
                }
                loaded.test = test.train
                loaded.summary += "; test: \(test.summary)"
            }
        } else {
            let directory = try named.directory()
            loaded = try DataSource(path: directory.path, format: .idx).load(classNames: classNames)
            // A named dataset's classes have names of their own (Fashion-MNIST's "Trouser").
            if dataDir == nil, loaded.train.classNames == (0..<10).map(String.init) {
                loaded.train.classNames = dataset.classNames
                loaded.test?.classNames = dataset.classNames
            }
        }
        logger.info("loaded \(loaded.summary) in \(String(format: "%.2f", Date().timeIntervalSince(start))) s")
        return loaded
    }
}

extension DataSource.Format: ExpressibleByArgument {}
extension DataSource.Task: ExpressibleByArgument {}
