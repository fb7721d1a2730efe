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
            abstract: "Where the data was found, counts, shapes, label histogram, pixel statistics, checksums.")

        @OptionGroup var data: DataOptions

        func run() throws {
            let start = Date()
            let dataset = try data.load(logger: makeLogger(verbose: false))
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
