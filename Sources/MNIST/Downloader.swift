import Foundation

/// Fetches one URL into a local file. The downloader's only contact with the network, so that tests and other
/// transports can stand in for it.
public protocol HTTPFetcher: Sendable {
    /// Writes the body of `url` to `destination` (replacing it), or throws an error that says why not.
    func fetch(_ url: URL, to destination: URL) throws
}

/// Fetches with the system's `curl` (or `wget` where curl is missing), run as a child process.
///
/// Why a child process: Foundation's URLSession on Linux needs libcurl as a shared library, which the static
/// release binary (`--static-swift-stdlib`) cannot carry; the `curl` program is on nearly every machine, speaks
/// HTTPS with the system's certificates, and leaves the binary self-contained.
public struct CommandLineFetcher: HTTPFetcher {
    /// Seconds allowed for one file.
    public var timeout: Int

    /// A fetcher allowing `timeout` seconds per file.
    public init(timeout: Int = 600) { self.timeout = timeout }

    /// Fetches with `curl`, or `wget` when there is no `curl`; throws `DataError.unreadable` naming the URL, with the
    /// tool's message (or saying that neither is installed).
    public func fetch(_ url: URL, to destination: URL) throws {
        let candidates: [(String, [String])] = [
            ("curl", ["--fail", "--silent", "--show-error", "--location", "--connect-timeout", "20",
                      "--max-time", String(timeout), "--output", destination.path, url.absoluteString]),
            ("wget", ["--quiet", "--timeout=20", "--output-document=" + destination.path, url.absoluteString]),
        ]
        for (tool, arguments) in candidates {
            guard let path = Self.findExecutable(tool) else { continue }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: path)
            process.arguments = arguments
            let stderr = Pipe()
            process.standardError = stderr
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            let message = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                let detail = message.trimmingCharacters(in: .whitespacesAndNewlines)
                throw DataError.unreadable(
                    file: url.absoluteString,
                    reason: "\(tool) exited with status \(process.terminationStatus)" + (detail.isEmpty ? "" : ": \(detail)"))
            }
            return
        }
        throw DataError.unreadable(file: url.absoluteString, reason: "neither curl nor wget is installed (install curl)")
    }

    static func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}

/// Downloads the four files of a dataset from its mirrors, checking each against the checksum kept in the source.
///
/// A file is written only once its content is verified: it is fetched into a temporary file in the target
/// directory and renamed into place, so a failed, interrupted or mismatched download leaves nothing behind.
/// Files already present with the right checksum are kept.
public struct DatasetDownloader: Sendable {
    /// Base URLs, tried in order for each file.
    public var mirrors: [URL]
    /// What fetches one URL into a file.
    public var fetcher: any HTTPFetcher
    /// The expected uncompressed SHA-256 of each file.
    public var checksums: [DatasetFile: String]

    /// A downloader for `dataset` from `mirrors` (the dataset's public mirrors by default).
    public init(dataset: DatasetName, mirrors: [URL]? = nil, fetcher: any HTTPFetcher = CommandLineFetcher()) {
        self.mirrors = mirrors ?? KnownDataset.mirrors(dataset)
        self.fetcher = fetcher
        self.checksums = Dictionary(uniqueKeysWithValues: DatasetFile.allCases.map { ($0, KnownDataset.sha256(dataset, $0)) })
    }

    /// What happened to one file.
    public enum Outcome: Equatable, Sendable {
        case alreadyPresent
        case downloaded(from: URL)
    }

    /// Downloads every missing file into `directory` (created if needed).
    /// - Parameter log: receives one line per event (a mirror failing, a file written).
    /// - Returns: what happened to each file.
    /// - Throws: `DataError.downloadFailed` with every mirror's reason, `DataError.unwritable` for the directory.
    @discardableResult
    public func download(into directory: URL, log: (String) -> Void = { _ in }) throws -> [DatasetFile: Outcome] {
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw DataError.unwritable(file: directory.path, reason: (error as NSError).localizedDescription)
        }
        var outcomes = [DatasetFile: Outcome]()
        for role in DatasetFile.allCases {
            let name = role.canonicalName + ".gz"
            let final = directory.appendingPathComponent(name)
            let expected = checksums[role]!
            if let existing = try? [UInt8](Data(contentsOf: final)), (try? Self.contentHash(existing, name)) == expected {
                log("\(name): already present, checksum verified")
                outcomes[role] = .alreadyPresent
                continue
            }
            var attempts = [String]()
            for mirror in mirrors {
                let url = mirror.appendingPathComponent(name)
                let temporary = directory.appendingPathComponent(".\(name).\(getpid()).partial")
                defer { try? FileManager.default.removeItem(at: temporary) }
                do {
                    try fetcher.fetch(url, to: temporary)
                    let bytes = try [UInt8](Data(contentsOf: temporary))
                    let actual = try Self.contentHash(bytes, name)
                    guard actual == expected else {
                        throw DataError.checksumMismatch(file: name, expected: expected, actual: actual)
                    }
                    if FileManager.default.fileExists(atPath: final.path) { try FileManager.default.removeItem(at: final) }
                    try FileManager.default.moveItem(at: temporary, to: final)
                    log("\(name): downloaded from \(url.absoluteString), checksum verified")
                    outcomes[role] = .downloaded(from: mirror)
                    break
                } catch {
                    let line = "\(url.absoluteString): \(error)"
                    log("\(name): mirror failed: \(line)")
                    attempts.append(line)
                }
            }
            guard outcomes[role] != nil else { throw DataError.downloadFailed(file: name, attempts: attempts) }
        }
        return outcomes
    }

    /// SHA-256 of the content, inflated first if it is gzip.
    static func contentHash(_ bytes: [UInt8], _ name: String) throws -> String {
        sha256Hex(Gzip.isGzip(bytes) ? try Gzip.inflate(bytes, file: name) : bytes)
    }
}
