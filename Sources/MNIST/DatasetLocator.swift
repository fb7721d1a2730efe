import Foundation

/// Finds a named dataset on this machine without being told where it is.
///
/// The places tried, in order:
/// 1. `$MLP_DATA_DIR/<name>` and `$MLP_DATA_DIR` itself;
/// 2. the bundled copy: a `Data/<name>` (or `data/<name>`, `share/mlp/<name>`) folder in the executable's directory
///    or any directory above it (this finds the package's own `Data/mnist` from `.build/release/mlp`, and the folder
///    of a release archive), then the package's source tree as it was when the tool was built;
/// 3. the download cache, `$XDG_CACHE_HOME/mlp/<name>` or `~/.cache/mlp/<name>`;
/// 4. where Debian's packages install it (`/usr/share/datasets/fashion-mnist`).
public enum DatasetLocator {
    /// The directories that would be searched for `dataset`, in order.
    public static func candidates(for dataset: DatasetName, environment: [String: String] = ProcessInfo.processInfo.environment) -> [URL] {
        var out = [URL]()
        let name = dataset.rawValue
        if let dir = environment["MLP_DATA_DIR"], !dir.isEmpty {
            let base = URL(fileURLWithPath: dir)
            out += [base.appendingPathComponent(name), base]
        }
        var dir = executableDirectory()
        for _ in 0..<8 {
            for sub in ["Data", "data", "share/mlp"] { out.append(dir.appendingPathComponent(sub).appendingPathComponent(name)) }
            let parent = dir.deletingLastPathComponent()
            if parent.path == dir.path { break }
            dir = parent
        }
        out.append(sourceTreeDataDirectory.appendingPathComponent(name))
        out.append(defaultDownloadDirectory(for: dataset, environment: environment))
        if dataset == .fashionMNIST { out.append(URL(fileURLWithPath: "/usr/share/datasets/fashion-mnist")) }
        var seen = Set<String>()
        return out.filter { seen.insert($0.standardizedFileURL.path).inserted }
    }

    /// The first candidate directory that holds all four files.
    /// - Throws: `DataError.invalidArgument` when `MLP_DATA_DIR` names no directory (a typo there is not passed over
    ///   silently); `DataError.notFound` listing every directory tried.
    public static func locate(_ dataset: DatasetName, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> URL {
        if let dir = environment["MLP_DATA_DIR"], !dir.isEmpty {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw DataError.invalidArgument(name: "MLP_DATA_DIR=\(dir)", reason: "no such directory (unset it, or name a folder that holds the dataset)")
            }
        }
        let dirs = candidates(for: dataset, environment: environment)
        if let found = dirs.first(where: Dataset.isComplete) { return found }
        throw DataError.notFound(dataset: dataset.rawValue, searched: dirs.map(\.path))
    }

    /// Where `mlp data download` puts a dataset when no `--dir` is given.
    public static func defaultDownloadDirectory(for dataset: DatasetName, environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        let cache: URL
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty {
            cache = URL(fileURLWithPath: xdg)
        } else {
            let home = environment["HOME"].map { URL(fileURLWithPath: $0) } ?? FileManager.default.homeDirectoryForCurrentUser
            cache = home.appendingPathComponent(".cache")
        }
        return cache.appendingPathComponent("mlp").appendingPathComponent(dataset.rawValue)
    }

    /// The directory of the running executable (symbolic links resolved).
    static func executableDirectory() -> URL {
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath()
        #if os(Linux)
        if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            return URL(fileURLWithPath: path).deletingLastPathComponent()
        }
        #endif
        return exe.deletingLastPathComponent()
    }

    /// `Data/` of the package this file was compiled from.
    static let sourceTreeDataDirectory: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Data")
}
