import Foundation

/// The cpu backend's switches, read once from the environment when the backend starts and printed by `-v` (the
/// README's table explains them):
public struct CPUOptions: Sendable, Equatable, CustomStringConvertible {
    /// `MLP_CPU_SKIP_ZEROS=0`: the first layer's products run dense on sparse batches too (to measure what skipping
    /// the inputs' zeros buys).
    public var skipsInputZeros = true
    /// `MLP_BLAS=name-or-path`: the BLAS that `--gemm blas` opens; nil tries `BLASLibrary.candidates` in turn.
    public var blasLibrary: String?
    /// What could not be read, one line each (`mlp` prints them as warnings).
    public var problems: [String] = []

    /// The options `environment` sets (the process's by default).
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        if let value = environment["MLP_CPU_SKIP_ZEROS"] {
            skipsInputZeros = value != "0"
            if !["", "0", "1"].contains(value) { problems.append("MLP_CPU_SKIP_ZEROS=\(value): expected 0 or 1; zeros are skipped") }
        }
        blasLibrary = environment["MLP_BLAS"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// One line: each setting as the environment would write it.
    public var description: String {
        "MLP_CPU_SKIP_ZEROS=\(skipsInputZeros ? 1 : 0) MLP_BLAS=\(blasLibrary ?? "(the first that loads)")"
    }
}
