import ArgumentParser
import Foundation
import Logging
import MLPCore
import MNIST
import NaiveBackend
import CPUBackend
import CUDABackend

extension DatasetName: ExpressibleByArgument {}
extension Activation: ExpressibleByArgument {
    /// The hidden activations a network may have (identity is the output layer's only).
    public static var allValueStrings: [String] { allCases.filter { $0 != .identity }.map(\.rawValue) }
}
extension Loss: ExpressibleByArgument {}
extension OptimizerConfiguration.Kind: ExpressibleByArgument {}

/// The backends a user can ask for.
enum BackendChoice: String, CaseIterable, ExpressibleByArgument {
    case auto, naive, cpu, cuda
}

/// Precision of the matrix products.
enum Precision: String, CaseIterable, ExpressibleByArgument {
    case fp32, tf32, bf16

    /// The cuda backend's.
    var cuda: CUDABackend.Precision {
        switch self {
        case .fp32: .fp32
        case .tf32: .tf32
        case .bf16: .bf16
        }
    }
}

extension CPUBackend.GEMMProvider: ExpressibleByArgument {}

/// Options every command that runs a network shares.
struct BackendOptions: ParsableArguments {
    @Option(help: "Where to compute: \(BackendChoice.allCases.map(\.rawValue).joined(separator: ", ")) (auto: the fastest available).")
    var backend: BackendChoice = .auto

    @Option(help: "cpu backend: threads in all. (default: one per core)")
    var threads: Int?

    @Option(help: "cpu backend: matrix products by this package's own SIMD GEMM (own) or a BLAS found at run time (blas; MLP_BLAS names one).")
    var gemm: CPUBackend.GEMMProvider = .own

    @Option(help: "Matrix products: fp32 (strict), tf32 (cuda: TF32 matrix units), bf16 (bf16 operands and fp32 sums: cuda's matrix units, the cpu's AVX-512 BF16).")
    var precision: Precision = .fp32

    @Flag(name: .shortAndLong, help: "Log what is loaded from where, and timings, to standard error.")
    var verbose = false

    func validate() throws {
        if let t = threads, t < 1 { throw ValidationError("--threads \(t): expected at least 1") }
        if precision == .bf16 && backend == .naive {
            throw ValidationError("--precision bf16: runs on the cpu and cuda backends (the naive backend, the fp32 reference, has fp32 products)")
        }
        if precision == .tf32 && backend != .cuda && backend != .auto {
            throw ValidationError("--precision tf32: runs on the cuda backend (the \(backend.rawValue) backend has fp32\(backend == .cpu ? " and bf16" : "") products)")
        }
    }

    func makeLogger() -> Logger { mlp.makeLogger(verbose: verbose) }

    /// Starts the backend asked for. `auto` picks the fastest one that starts here.
    /// The cpu backend, its options logged (`-v`) and what could not be read in them warned of.
    func makeCPUBackend(logger: Logger) throws -> CPUBackend {
        let options = CPUOptions()
        options.problems.forEach { logger.warning("\($0)") }
        logger.debug("options: \(options)")
        return try CPUBackend(threads: threads, gemm: gemm, options: options, precision: precision == .bf16 ? .bf16 : .fp32)
    }

    /// The cuda backend in this precision, its details logged (`-v`) and its problems warned of.
    func makeCUDABackend(logger: Logger) throws -> CUDABackend {
        try CUDABackend(precision: precision.cuda, log: { logger.debug("\($0)") }, warn: { logger.warning("\($0)") })
    }

    func makeBackend(logger: Logger) throws -> any Backend {
        let backend: any Backend
        switch self.backend {
        case .naive:
            backend = NaiveBackend()
        case .cpu:
            backend = try makeCPUBackend(logger: logger)
        case .cuda:
            backend = try makeCUDABackend(logger: logger)
        case .auto:
            do {
                backend = try makeCUDABackend(logger: logger)
            } catch {
                // The usual case on a machine without an NVIDIA GPU: say so in one line only when asked.
                logger.debug("cuda backend unavailable, using cpu: \(error)")
                backend = try makeCPUBackend(logger: logger)
            }
        }
        logger.debug("backend \(backend.name): \(backend.deviceDescription)")
        return backend
    }
}

/// A logger to standard error: debug messages with `verbose`, warnings only without.
func makeLogger(verbose: Bool) -> Logger {
    var logger = Logger(label: "mlp") { StreamLogHandler.standardError(label: $0) }
    logger.logLevel = verbose ? .debug : .warning
    return logger
}

/// Whether standard output is a terminal (progress lines update in place only there).
var standardOutputIsTerminal: Bool { isatty(STDOUT_FILENO) == 1 }

/// The terminal's width in columns when standard output is one (asked each time: the window may be resized), else nil.
var terminalColumns: Int? {
    guard standardOutputIsTerminal else { return nil }
    var size = winsize()
    guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return nil }
    return Int(size.ws_col)
}

/// Prints to standard error.
func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

extension Double {
    /// "98.12%"
    var percent: String { String(format: "%.2f%%", self * 100) }
}

