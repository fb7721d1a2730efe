import Foundation

/// A dataset given by a path: a CSV table, NumPy arrays (`.npy` with a labels file, or an `.npz` archive), or a
/// folder of IDX files. `load` reads it into `LabeledSamples` with a test part where the source has one.
///
/// - CSV: a header row (or none, `hasHeader = false`, columns then named by index); the `target` column (by name or
///   0-based index; the last column by default) holds the classes, as integers or text; every other column read is a
///   numeric feature (`features` may list a subset, `ignored` drops some).
/// - `.npy`: samples `[N, …]` (flattened per sample) and labels `[N]` (or `[N, 1]`) in `labelsPath`.
/// - `.npz`: `x_train`, `y_train`, and optionally `x_test`, `y_test`.
/// - IDX: a folder holding `train-images`, `train-labels`, `t10k-images` and `t10k-labels` (as `Dataset` names them),
///   samples of any shape and any number of classes.
/// - Pictures: a folder of class folders, or of `train` and `test` folders holding them (`ImageFolder`).
///
/// The target is a class (classification) or real-valued (regression): `task` says which, or, when nil, the data
/// does: a CSV target or a float labels array holding numbers that are not all whole, or labels of several columns
/// (`[N, k]`), is a regression; pictures and IDX labels are classes.
///
/// Unsigned bytes stay bytes (pictures, scaled to [0, 1] as they are gathered); every other element type becomes
/// 32-bit floats.
public struct DataSource: Sendable, Equatable {
    /// What is predicted: a class, or real values.
    public enum Task: String, CaseIterable, Sendable, Codable {
        case classification, regression
    }

    /// The kinds of file read.
    public enum Format: String, CaseIterable, Sendable, Codable {
        case csv, npy, npz, idx, images
    }

    /// The file (or, for IDX, the folder).
    public var path: String
    /// The format; nil: from the extension (`.csv`, `.tsv`, `.txt` with a delimiter, `.npy`, `.npz`), or IDX for a folder.
    public var format: Format?
    /// `.npy`: the labels' file.
    public var labelsPath: String?
    /// CSV: the class column, by name or 0-based index (nil: the last column).
    public var target: String?
    /// CSV: the feature columns, by name or index (nil: every column but the target and the ignored ones).
    public var features: [String]?
    /// CSV: columns not read.
    public var ignored: [String]
    /// CSV: whether the first record names the columns.
    public var hasHeader: Bool
    /// CSV: the field delimiter (nil: a tab for `.tsv`, a comma otherwise).
    public var delimiter: UInt8?
    /// Picture folders: read colour pictures as gray (one channel, not three).
    public var grayscale: Bool
    /// Classification or regression; nil: as the target's values say (see above).
    public var task: Task? = nil

    public init(path: String, format: Format? = nil, labelsPath: String? = nil, target: String? = nil, features: [String]? = nil,
                ignored: [String] = [], hasHeader: Bool = true, delimiter: UInt8? = nil, grayscale: Bool = false) {
        self.path = path
        self.format = format
        self.labelsPath = labelsPath
        self.target = target
        self.features = features
        self.ignored = ignored
        self.hasHeader = hasHeader
        self.delimiter = delimiter
        self.grayscale = grayscale
    }

    /// The samples read: the source's training part, and its test part where it has one (an `.npz`'s `x_test`, an
    /// IDX folder's `t10k` files).
    public struct Loaded: Sendable {
        public var train: LabeledSamples
        public var test: LabeledSamples?
        /// What was read, for messages: "iris.csv: 150 rows, 4 features, target species".
        public var summary: String
        /// The CSV column that held the classes.
        public var target: String? = nil
    }

    /// The format `path` is read as: by its extension, and for a folder, IDX when it holds the four IDX files and
    /// picture folders otherwise.
    /// - Throws: `DataError.invalidArgument` naming `--format` when it cannot be told.
    public func resolvedFormat() throws -> Format {
        if let format { return format }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DataError.unreadable(file: path, reason: "no such file or directory")
        }
        if isDirectory.boolValue { return Dataset.isComplete(URL(fileURLWithPath: path)) ? .idx : .images }
        switch URL(fileURLWithPath: path).pathExtension.lowercased() {
        case "csv", "tsv", "txt": return .csv
        case "npy": return .npy
        case "npz": return .npz
        default:
            throw DataError.invalidArgument(
                name: "--data \(path)", reason: "cannot tell the format from the name (expected .csv, .tsv, .npy, .npz or a folder of IDX files; or give --format \(Format.allCases.map(\.rawValue).joined(separator: "|")))")
        }
    }

    /// Reads the data. With `classNames` (a checkpoint's), labels are numbered as those classes, and a class not
    /// among them is an error; without, the training part's classes are numbered in sorted order and the test part's
    /// must be among them.
    /// - Throws: `DataError` naming the file, and the row and column where it applies.
    public func load(classNames: [String]? = nil) throws -> Loaded {
        let format = try resolvedFormat()
        if task == .regression, format == .idx || format == .images {
            throw DataError.invalidArgument(
                name: "--task regression", reason: "\(format == .idx ? "IDX labels" : "picture folders") name classes; a regression takes a CSV table or NumPy arrays")
        }
        switch format {
        case .csv: return try loadCSV(classNames: classNames)
        case .npy: return try loadNumPy(classNames: classNames)
        case .npz: return try loadArchive(classNames: classNames)
        case .idx: return try loadIDX(classNames: classNames)
        case .images: return try loadImages(classNames: classNames)
        }
    }

    // MARK: CSV

    /// The delimiter used: the one given, else a tab for `.tsv` and a comma otherwise.
    public var resolvedDelimiter: UInt8 {
        delimiter ?? (URL(fileURLWithPath: path).pathExtension.lowercased() == "tsv" ? UInt8(ascii: "\t") : UInt8(ascii: ","))
    }

    private func loadCSV(classNames: [String]?) throws -> Loaded {
        let url = URL(fileURLWithPath: path)
        // The header alone first, to find the target (the last column by default) and the features.
        let header = try CSVTable.header(of: url, delimiter: resolvedDelimiter, hasHeader: hasHeader)
        let targetName = try target.map { try CSVTable.column($0, in: header, file: path, flag: "--target") } ?? header[header.count - 1]
        if ignored.contains(targetName) {
            throw DataError.invalidArgument(name: "--ignore \(targetName)", reason: "is the target column")
        }
        let only = try features.map { list in
            try list.map { try CSVTable.column($0, in: header, file: path, flag: "--features") } + [targetName]
        }
        let featureNames: [String], targetCells: [String], values: [Float], rows: Int
        // The features in the order `features` names them (a trained network's inputs), or the file's.
        let ignoredSet = Set(try ignored.map { try CSVTable.column($0, in: header, file: path, flag: "--ignore") })
        let featureColumns = try features.map { list in
            try list.map { header.firstIndex(of: try CSVTable.column($0, in: header, file: path, flag: "--features"))! }
                .filter { header[$0] != targetName && !ignoredSet.contains(header[$0]) }
        } ?? header.indices.filter { header[$0] != targetName && !ignoredSet.contains(header[$0]) }
        if let fast = try CSVRows.read(path: path, delimiter: resolvedDelimiter, hasHeader: hasHeader, width: header.count,
                                       features: featureColumns, target: header.firstIndex(of: targetName)!, names: header) {
            // The usual table: no quoted field, read in parallel parts straight into rows.
            (featureNames, targetCells, values, rows) = (featureColumns.map { header[$0] }, fast.targets, fast.values, fast.rows)
        } else {
            let table = try CSVTable.read(contentsOf: url, options: .init(
                delimiter: resolvedDelimiter, hasHeader: hasHeader, textColumns: [targetName], ignoredColumns: ignored, onlyColumns: only))
            guard let t = table.names.firstIndex(of: targetName), case .text(let cells) = table.columns[t] else {
                preconditionFailure("the target column is read as text")
            }
            featureNames = featureColumns.map { header[$0] }
            rows = table.rowCount
            // Columns to rows: sample after sample, as the backends gather them.
            var rowMajor = [Float](repeating: 0, count: rows * featureNames.count)
            for (j, name) in featureNames.enumerated() {
                guard let c = table.names.firstIndex(of: name), case .numbers(let cells) = table.columns[c] else {
                    preconditionFailure("feature columns are read, as numbers")
                }
                for r in 0..<rows { rowMajor[r * featureNames.count + j] = cells[r] }
            }
            (targetCells, values) = (cells, rowMajor)
        }
        guard !featureNames.isEmpty else {
            throw DataError.malformed(file: path, reason: "no feature columns besides the target \(targetName)")
        }
        let f = featureNames.count
        let samples: LabeledSamples
        if (task ?? TargetColumn.task(of: targetCells)) == .regression {
            let targets = try TargetColumn.numbers(targetCells, file: path, what: "column \(targetName)")
            samples = try LabeledSamples(values: .floats(values), sampleShape: [f], targets: targets, targetNames: [targetName],
                                         featureNames: featureNames, file: path)
        } else {
            let (labels, names) = try ClassLabels.number(targetCells, known: classNames, file: path, what: "column \(targetName)")
            samples = try LabeledSamples(values: .floats(values), sampleShape: [f], labels: labels, classNames: names,
                                         featureNames: featureNames, file: path)
        }
        return Loaded(train: samples, test: nil,
                      summary: "\(url.lastPathComponent): \(rows.grouped) rows, \(f) feature\(f == 1 ? "" : "s"), target \(targetName)",
                      target: targetName)
    }

    /// A table's feature columns alone, for predictions on rows whose class is not known: `features` (a trained
    /// network's, by name), each a number, as rows of floats.
    /// - Throws: `DataError` naming the file, the row and the column.
    public func loadFeatureRows(features: [String]) throws -> [Float] {
        let table = try CSVTable.read(contentsOf: URL(fileURLWithPath: path), options: .init(
            delimiter: resolvedDelimiter, hasHeader: hasHeader, onlyColumns: features))
        let rows = table.rowCount, f = features.count
        var values = [Float](repeating: 0, count: rows * f)
        // In the network's order, whatever the file's.
        for (j, name) in features.enumerated() {
            guard let c = table.names.firstIndex(of: name), case .numbers(let cells) = table.columns[c] else {
                preconditionFailure("every feature column is read, as numbers")
            }
            for r in 0..<rows { values[r * f + j] = cells[r] }
        }
        return values
    }

    // MARK: NumPy

    private func loadNumPy(classNames: [String]?) throws -> Loaded {
        guard let labelsPath else {
            throw DataError.invalidArgument(name: "--data \(path)", reason: "a .npy file of samples needs its labels: give --labels FILE.npy")
        }
        let x = try NumPyArray.read(contentsOf: URL(fileURLWithPath: path))
        let y = try NumPyArray.read(contentsOf: URL(fileURLWithPath: labelsPath))
        let samples = try Self.samples(x, xFile: path, y, yFile: labelsPath, classNames: classNames, task: task)
        return Loaded(train: samples, test: nil, summary: "\(URL(fileURLWithPath: path).lastPathComponent): \(samples.count.grouped) samples of \(samples.shapeText)")
    }

    private func loadArchive(classNames: [String]?) throws -> Loaded {
        let arrays = try NumPyArchive.read(contentsOf: URL(fileURLWithPath: path))
        func array(_ name: String) throws -> NumPyArray {
            guard let a = arrays[name] else {
                throw DataError.malformed(
                    file: path, reason: "no array \(name) (an archive holds x_train and y_train, and optionally x_test and y_test; this one holds \(arrays.keys.sorted().joined(separator: ", ")))")
            }
            return a
        }
        let train = try Self.samples(try array("x_train"), xFile: "\(path) (x_train)", try array("y_train"), yFile: "\(path) (y_train)",
                                     classNames: classNames, task: task)
        var test: LabeledSamples?
        if arrays["x_test"] != nil || arrays["y_test"] != nil {
            test = try Self.samples(try array("x_test"), xFile: "\(path) (x_test)", try array("y_test"), yFile: "\(path) (y_test)",
                                    classNames: train.isRegression ? nil : train.classNames, task: train.isRegression ? .regression : .classification)
            try Self.checkSameShape(train, test!, file: "\(path) (x_test)")
        }
        return Loaded(train: train, test: test, summary: "\(URL(fileURLWithPath: path).lastPathComponent): \(train.count.grouped) training samples of \(train.shapeText)"
                      + (test.map { ", \($0.count.grouped) test samples" } ?? ""))
    }

    /// Samples from an array `[N, …]` and labels `[N]` or `[N, 1]` (classes or one regression target), or `[N, k]`
    /// (k regression targets).
    static func samples(_ x: NumPyArray, xFile: String, _ y: NumPyArray, yFile: String, classNames: [String]?, task: Task? = nil) throws -> LabeledSamples {
        guard x.shape.count >= 2 else {
            throw DataError.malformed(file: xFile, reason: "shape \(x.shape): expected samples of at least one dimension, [samples, features, …]")
        }
        guard y.shape.count == 1 || y.shape.count == 2 else {
            throw DataError.malformed(file: yFile, reason: "shape \(y.shape): expected one label per sample, [samples], or targets [samples, outputs]")
        }
        guard y.shape[0] == x.shape[0] else {
            throw DataError.inconsistent(file: yFile, reason: "\(y.shape[0].grouped) labels for \(x.shape[0].grouped) samples in \(xFile)")
        }
        let values: LabeledSamples.Values
        switch x.storage {
        case .uint8(let v): values = .bytes(v)
        case .float32(let v): values = .floats(v)
        default: values = .floats(x.floats)
        }
        if case .floats(let v) = values, let bad = v.firstIndex(where: { !$0.isFinite }) {
            let f = x.count / max(x.shape[0], 1)
            throw DataError.malformed(file: xFile, reason: "sample \((bad / f).grouped), feature \(bad % f): \(v[bad]) is not a finite number")
        }
        let k = y.shape.count == 2 ? y.shape[1] : 1
        let d = y.doubles
        let isFloat = y.elementType == .float32 || y.elementType == .float64
        let wholeNumbers = d.allSatisfy { $0.isFinite && $0 == $0.rounded() && abs($0) < 1e15 }
        let resolved = task ?? (k > 1 || (isFloat && !wholeNumbers) ? .regression : .classification)
        if resolved == .regression {
            guard k >= 1 else { throw DataError.malformed(file: yFile, reason: "shape \(y.shape): no targets per sample") }
            let names = k == 1 ? ["y"] : (0..<k).map { "y\($0)" }
            return try LabeledSamples(values: values, sampleShape: Array(x.shape.dropFirst()), targets: d.map { Float($0) },
                                      targetNames: names, file: yFile)
        }
        guard k == 1 else {
            throw DataError.malformed(file: yFile, reason: "shape \(y.shape): a classifier takes one label per sample, [samples] (several columns are regression targets: --task regression)")
        }
        if let i = d.firstIndex(where: { !$0.isFinite || $0 != $0.rounded() || abs($0) >= 1e15 }) {
            throw DataError.malformed(
                file: yFile, reason: "label \(d[i]) of sample \(i.grouped) is not a whole number: not a class (a real-valued target: --task regression)")
        }
        let (labels, names) = try ClassLabels.number(integers: d.map { Int($0) }, known: classNames, file: yFile, what: "labels")
        return try LabeledSamples(values: values, sampleShape: Array(x.shape.dropFirst()), labels: labels, classNames: names, file: xFile)
    }

    static func checkSameShape(_ train: LabeledSamples, _ test: LabeledSamples, file: String) throws {
        guard train.sampleShape == test.sampleShape else {
            throw DataError.inconsistent(file: file, reason: "test samples are \(test.shapeText), training samples \(train.shapeText)")
        }
        guard train.values.type == test.values.type else {
            throw DataError.inconsistent(file: file, reason: "test samples are \(test.values.type.rawValue), training samples \(train.values.type.rawValue)")
        }
    }

    // MARK: Pictures

    private func loadImages(classNames: [String]?) throws -> Loaded {
        let directory = URL(fileURLWithPath: path)
        let split = ImageFolder.hasSplit(directory)
        let train = try ImageFolder.read(split ? directory.appendingPathComponent("train") : directory, grayscale: grayscale, classNames: classNames)
        var test: LabeledSamples?
        if split {
            let size = (width: train.sampleShape[train.sampleShape.count - 1], height: train.sampleShape[train.sampleShape.count - 2])
            test = try ImageFolder.read(directory.appendingPathComponent("test"), grayscale: grayscale, classNames: train.classNames,
                                        channels: train.sampleShape.count == 3 ? 3 : 1, size: size)
        }
        return Loaded(train: train, test: test,
                      summary: "\(directory.lastPathComponent): \(train.count.grouped) pictures of \(train.shapeText) in \(train.classCount) classes"
                          + (test.map { ", \($0.count.grouped) test pictures" } ?? ""))
    }

    // MARK: IDX

    private func loadIDX(classNames: [String]?) throws -> Loaded {
        let directory = URL(fileURLWithPath: path)
        let train = try Self.idxSamples(
            Dataset.locate(.trainImages, in: directory), Dataset.locate(.trainLabels, in: directory), classNames: classNames)
        let test = try Self.idxSamples(
            Dataset.locate(.testImages, in: directory), Dataset.locate(.testLabels, in: directory), classNames: train.classNames)
        try Self.checkSameShape(train, test, file: try Dataset.locate(.testImages, in: directory).path)
        return Loaded(train: train, test: test,
                      summary: "\(directory.lastPathComponent): \(train.count.grouped) training and \(test.count.grouped) test samples of \(train.shapeText)")
    }

    static func idxSamples(_ imagesURL: URL, _ labelsURL: URL, classNames: [String]?) throws -> LabeledSamples {
        let images = try IDXArray.read(contentsOf: imagesURL), labels = try IDXArray.read(contentsOf: labelsURL)
        guard images.shape.count >= 2 else {
            throw DataError.malformed(file: imagesURL.path, reason: "\(images.shape.count)-dimensional: expected samples of at least one dimension")
        }
        guard labels.shape.count == 1, labels.elementType != .float32, labels.elementType != .float64 else {
            throw DataError.malformed(file: labelsURL.path, reason: "labels are \(labels.shape.count)-dimensional \(labels.elementType.name)s, expected one integer per sample")
        }
        guard labels.shape[0] == images.shape[0] else {
            throw DataError.inconsistent(file: labelsURL.path, reason: "\(labels.shape[0].grouped) labels but \(images.shape[0].grouped) samples in \(imagesURL.lastPathComponent)")
        }
        let values: LabeledSamples.Values
        if case .uint8(let v) = images.storage { values = .bytes(v) } else { values = .floats(images.doubles.map(Float.init)) }
        let (numbers, names) = try ClassLabels.number(integers: labels.doubles.map { Int($0) }, known: classNames, file: labelsURL.path, what: "labels")
        return try LabeledSamples(values: values, sampleShape: Array(images.shape.dropFirst()), labels: numbers, classNames: names,
                                  file: imagesURL.path)
    }
}
