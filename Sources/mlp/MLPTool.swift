import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `mlp`: train, evaluate and use multi-layer perceptrons on your data or the bundled MNIST.
@main
struct MLPTool: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "mlp",
        abstract: "Train multi-layer perceptrons (classifiers and regressions) on your data or the bundled MNIST, on the CPU or an NVIDIA GPU.",
        discussion: """
            Start with `mlp train`: it trains 784-512-256-10 with Adam on the bundled MNIST for 10 epochs. \
            `mlp train --data FILE` trains on your own: a CSV table, NumPy arrays, IDX files or a folder of \
            pictures in class folders (`mlp data info --data FILE` describes it first). `mlp plot RUN` draws a run's \
            curves, and `mlp export` writes a trained network for ONNX Runtime or PyTorch. \
            `mlp <subcommand> --help` lists each command's options.
            """,
        version: version,
        subcommands: [Train.self, Evaluate.self, Predict.self, Export.self, Plot.self, DataCommand.self, Bench.self, Check.self],
        defaultSubcommand: nil
    )

    static func main() {
        // A write past the file-size limit (`ulimit -f`) then fails with EFBIG and is reported with the file's
        // name, like a full disk, instead of killing the process with SIGXFSZ half-way through a checkpoint.
        signal(SIGXFSZ, SIG_IGN)
        var command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            exit(withError: error)  // a bad flag or value: ArgumentParser's message and the subcommand's usage
        }
        do {
            try command.run()
        } catch {
            // An error found while running (bad data, a file that cannot be written): its message, then where the
            // subcommand's options are described, not the whole tool's usage.
            // Its status by what went wrong (`ExitStatus`).
            // (Help and version requests end here too, as a success: ArgumentParser prints them.)
            if !(error is ExitCode) && exitCode(for: error) != .success {
                printError("Error: \(message(for: error))")
                printError("(see 'mlp \(path(of: command)) --help')")
                Foundation.exit(ExitStatus.code(for: error))
            }
            exit(withError: error)
        }
    }

    /// The words that name a subcommand on the command line: "train", "data info".
    static func path(of command: ParsableCommand) -> String {
        switch command {
        case is DataCommand.Info: return "data info"
        case is DataCommand.Download: return "data download"
        default: return type(of: command).configuration.commandName ?? String(describing: type(of: command)).lowercased()
        }
    }
}
