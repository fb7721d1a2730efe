import Foundation

/// The directory where the cuda backend keeps what it learns about a machine between runs (the timed algorithm
/// choices, the compiled kernels): `$XDG_CACHE_HOME/mlp`, else `~/.cache/mlp`; nil when neither variable is set.
func mlpCacheDirectory(environment: [String: String]) -> URL? {
    if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty {
        return URL(fileURLWithPath: xdg).appendingPathComponent("mlp")
    }
    if let home = environment["HOME"], !home.isEmpty {
        return URL(fileURLWithPath: home).appendingPathComponent(".cache").appendingPathComponent("mlp")
    }
    return nil
}
