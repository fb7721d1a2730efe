import ArgumentParser
import CPUBackend
import CUDABackend
import MLPCore
import MNIST

/// The tool's exit statuses: one rule for every subcommand and flag, after BSD's sysexits.h where one fits.
///
/// | status | when |
/// | --- | --- |
/// | 0 | done |
/// | 1 | the command ran and the result is a failure: a check failed, training diverged |
/// | 64 | a bad flag or value (usage) |
/// | 65 | bad data: a file that cannot be read as what it should be (a table, an array, a checkpoint) |
/// | 69 | a backend that cannot run here (no CUDA driver, no BLAS, out of memory) |
/// | 74 | a file or folder that cannot be written |
/// | 130 | stopped by Ctrl-C (after saving) |
enum ExitStatus {
    static let failure: Int32 = 1
    static let usage: Int32 = 64
    static let dataError: Int32 = 65
    static let unavailable: Int32 = 69
    static let ioError: Int32 = 74
    static let interrupted: Int32 = 130

    /// The status an error ends the tool with.
    static func code(for error: Error) -> Int32 {
        switch error {
        case let e as ExitCode: return e.rawValue
        case is ValidationError, is ConfigurationError: return usage
        case let e as DataError:
            switch e {
            case .invalidArgument: return usage
            case .unwritable: return ioError
            case .downloadFailed: return unavailable
            default: return dataError
            }
        case let e as SafeTensorsError:
            if case .unwritable = e { return ioError }
            return dataError
        case is IOFailure, is MetricsWriter.MetricsError: return ioError
        case is MetricsFileError: return dataError
        case let e as TrainingError:
            if case .interrupted = e { return interrupted }
            return failure
        case is CUDAError, is CPUBackendError, is HostMemoryError: return unavailable
        default: return MLPTool.exitCode(for: error).rawValue
        }
    }
}

/// A file or folder the tool could not write: names it, says why.
struct IOFailure: Error, CustomStringConvertible {
    var path: String
    var reason: String
    var description: String { "\(path): \(reason)" }
}
