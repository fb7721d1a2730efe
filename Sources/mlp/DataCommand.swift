import ArgumentParser
import Foundation
import MNIST

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Inspect and download datasets.",
        subcommands: [Info.self, Download.self])

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Describe data: samples, shape, classes and their counts, features and their ranges, what training standardises.",
            usage: "mlp data info [--data <path>] [--dataset <dataset>] [--data-dir <dir>] [<options>]",
            discussion: "For a named dataset (no --data): where it was found, its files, pixel statistics and checksums.")

        @OptionGroup var data: DataOptions

        func run() throws {
            if data.data == nil { return try describeNamed() }
            let start = Date()
            let loaded: DataSource.Loaded
            do {
                loaded = try data.load(logger: makeLogger(verbose: false))
            } catch let error as DataError {
                // A table that cannot be trained on as it is: what each column holds, then why it was refused.
                let source = try data.source(path: data.data!, labels: data.labels)
                guard try source.resolvedFormat() == .csv else { throw error }
                try describeColumns(source)
                fflush(nil)  // the report before the reason, in that order on a terminal
                printError("\(error)")
                throw ExitCode(ExitStatus.dataError)
            }
            let seconds = Date().timeIntervalSince(start)
            print("data       \(loaded.summary)")
            for (name, set) in [("train", loaded.train), ("test", loaded.test)] {
                guard let set else {
                    print("test       none in the data: `mlp train` splits off --test-fraction (0.2 by default)\(loaded.train.isRegression ? "" : ", stratified by class")")
                    continue
                }
                print("\(name.padding(toLength: 10, withPad: " ", startingAt: 0)) \(set.count.grouped) samples of \(set.shapeText) \(set.values.type == .uint8 ? "bytes" : "floats")")
            }
            let train = loaded.train
            if train.isRegression {
                // A regression: each target's spread, which the errors after training are read against.
                let s = Standardization(fittingTargetsOf: train)
                print("targets    \(train.targetCount), real-valued: a regression (--task classification reads whole numbers as classes)")
                print("  target          min        max       mean        std")
                for (c, name) in train.targetNames.enumerated() {
                    let column = stride(from: c, to: train.targets.count, by: train.targetCount).map { train.targets[$0] }
                    print("  \(name.padding(toLength: max(10, name.count), withPad: " ", startingAt: 0)) \([Double(column.min() ?? 0), Double(column.max() ?? 0), s.mean[c], s.standardDeviation[c]].map { significant($0).leftPadded(10) }.joined(separator: " "))")
                }
                if let constant = train.constantTargets.first { print("  (\(constant) has one value only: nothing to learn)") }
            } else {
                print("classes    \(train.classCount)" + (loaded.target.map { " (column \($0))" } ?? ""))
                for (c, count) in train.labelHistogram.enumerated() {
                    print("  \(train.classNames[c].padding(toLength: max(12, train.classNames[c].count), withPad: " ", startingAt: 0)) \(count.grouped)  \((Double(count) / Double(max(train.count, 1))).percent)")
                }
                if train.classCount < 2 { print("  (one class only: a classifier cannot be trained on it)") }
            }
            switch train.values {
            case .bytes(let pixels):
                let stats = pixelStatistics(pixels)
                print("values     bytes, scaled to [0, 1] for training (--standardize: by their mean \(String(format: "%.4f", stats.mean)) and std \(String(format: "%.4f", stats.standardDeviation)))")
            case .floats(let values):
                let s = Standardization(fitting: train)
                let f = train.featureCount
                var low = [Float](repeating: .infinity, count: f), high = [Float](repeating: -.infinity, count: f)
                for r in 0..<train.count {
                    for j in 0..<f {
                        low[j] = min(low[j], values[r * f + j])
                        high[j] = max(high[j], values[r * f + j])
                    }
                }
                print("features   \(f), every value a finite number (a missing or non-numeric cell is an error when reading)")
                let names = train.featureNames.isEmpty ? (0..<f).map { "[\($0)]" } : train.featureNames
                let shown = f <= 40 ? Array(0..<f) : Array(0..<20) + Array(f - 10..<f)
                let width = min(24, max(8, names.map(\.count).max() ?? 8))
                print("  " + "feature".padding(toLength: width, withPad: " ", startingAt: 0) + "        min        max       mean        std")
                for j in shown {
                    if f > 40 && j == f - 10 { print("  … \(f - 30) more") }
                    let name = String(names[j].prefix(width)).padding(toLength: width, withPad: " ", startingAt: 0)
                    let std: Double = s.constantFeatures.contains(j) ? 0 : s.standardDeviation[j]
                    let columns: [Double] = [Double(low[j]), Double(high[j]), s.mean[j], std]
                    print("  \(name) " + columns.map { String(format: "%10.4g", $0) }.joined(separator: " "))
                }
                let constant = s.constantFeatures.map { names[$0] }
                print("constant   " + (constant.isEmpty ? "none" : "\(constant.count): \(constant.prefix(20).joined(separator: ", "))\(constant.count > 20 ? ", …" : "") (they carry nothing to learn from)"))
                print("training   standardises all \(f) features with the training part's mean and std (--no-standardize: as they are)")
            }
            print("loaded in  \(String(format: "%.2f", seconds)) s")
        }

        /// Each column of a table by what its cells hold: numbers, empty cells, text, NaN or infinities.
        func describeColumns(_ source: DataSource) throws {
            let survey = try CSVTable.survey(of: URL(fileURLWithPath: source.path), delimiter: source.resolvedDelimiter, hasHeader: source.hasHeader)
            print("data       \(source.path): \(survey.rows.grouped) rows of \(survey.columns.count) columns, which cannot be trained on as they are")
            if survey.raggedRecords > 0 {
                let records = survey.raggedRecords == 1 ? "1 record" : "\(survey.raggedRecords.grouped) records"
                print("ragged     \(records) of another width than the header's (the first on line \(survey.firstRaggedLine!))")
            }
            let width = min(24, max(8, survey.columns.map(\.name.count).max() ?? 8))
            print("  " + "column".padding(toLength: width, withPad: " ", startingAt: 0) + "    numbers      empty       text  nan/inf  first problem")
            for c in survey.columns {
                var problem = ""
                if let line = c.firstEmptyLine { problem = "empty on line \(line)" }
                if let line = c.firstNonFiniteLine { problem += (problem.isEmpty ? "" : "; ") + "NaN or infinite on line \(line)" }
                if let (value, line) = c.firstText, c.numbers > 0 || c.empty > 0 {
                    problem += (problem.isEmpty ? "" : "; ") + "\"\(value)\" on line \(line)"
                } else if c.text > 0 {
                    problem += (problem.isEmpty ? "" : "; ") + "text: \(c.textValues.count >= 50 ? "50 or more" : String(c.textValues.count)) distinct values (a class column?)"
                }
                let name = String(c.name.prefix(width)).padding(toLength: width, withPad: " ", startingAt: 0)
                print("  \(name) " + [c.numbers, c.empty, c.text, c.nonFinite].enumerated().map { i, n in
                    let text = n.grouped
                    return String(repeating: " ", count: max(0, (i == 3 ? 8 : 10) - text.count)) + text
                }.joined(separator: " ") + "  \(problem)")
            }
        }

        /// The named dataset's (or IDX folder's) files, statistics and checksums.
        func describeNamed() throws {
            let start = Date()
            let dataset = try data.named.load(logger: makeLogger(verbose: false))
            let seconds = Date().timeIntervalSince(start)
            print("dataset    \(data.dataDir == nil ? data.dataset.rawValue : "IDX files")")
            print("directory  \(dataset.directory.path)")
            for role in DatasetFile.allCases { print("  \(role.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0)) \(dataset.files[role]!.lastPathComponent)") }
            for (name, set) in [("train", dataset.train), ("test", dataset.test)] {
                let stats = set.pixelStatistics
                print("\(name.padding(toLength: 6, withPad: " ", startingAt: 0)) \(set.count.grouped) images of \(set.rows)×\(set.columns), \(set.classCount) classes; pixel mean \(String(format: "%.4f", stats.mean)), std \(String(format: "%.4f", stats.standardDeviation)) (on [0, 1])")
                print("  labels " + set.labelHistogram.enumerated().map { "\($0.offset): \($0.element)" }.joined(separator: "  "))
            }
            let verified = dataset.verifyChecksums(as: data.dataset)
            let matching = DatasetFile.allCases.filter { verified[$0] == true }
            if matching.count == 4 {
                print("checksums  all four files match the published \(data.dataset.rawValue) (SHA-256 of the uncompressed data)")
            } else {
                let others = DatasetFile.allCases.filter { verified[$0] != true }.map(\.rawValue).joined(separator: ", ")
                print("checksums  \(others): not the published \(data.dataset.rawValue) data")
            }
            print("loaded in  \(String(format: "%.2f", seconds)) s")
        }
    }

    struct Download: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download a dataset from its public mirrors, verifying every file's SHA-256.",
            discussion: "Uses curl (or wget). Files are written only once verified; a failed download leaves nothing behind.")

        @Option(help: "The dataset: \(DatasetName.allCases.map(\.rawValue).joined(separator: ", ")).")
        var dataset: DatasetName = .mnist

        @Option(help: ArgumentHelp("Where to put the files. (default: ~/.cache/mlp/<dataset>, where `mlp train` looks)", valueName: "dir"))
        var dir: String?

        @Option(name: .customLong("mirror"), help: ArgumentHelp("A base URL to try instead of the built-in mirrors (repeatable).", valueName: "url"))
        var mirrors: [String] = []

        func run() throws {
            let directory = dir.map { URL(fileURLWithPath: $0) } ?? DatasetLocator.defaultDownloadDirectory(for: dataset)
            let urls = try mirrors.map { text -> URL in
                guard let url = URL(string: text.hasSuffix("/") ? text : text + "/"), url.scheme != nil else {
                    throw ValidationError("--mirror \(text): not a URL")
                }
                return url
            }
            let downloader = DatasetDownloader(dataset: dataset, mirrors: urls.isEmpty ? nil : urls)
            try downloader.download(into: directory) { print($0) }
            print("\(dataset.rawValue) is in \(directory.path)")
        }
    }
}
