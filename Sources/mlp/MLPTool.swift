import ArgumentParser
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `mlp`: train, evaluate and use multi-layer perceptrons on MNIST-format data.
@main
struct MLPTool: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "mlp",
        abstract: "Train multi-layer perceptron classifiers on your data or the bundled MNIST, on the CPU or an NVIDIA GPU.",
        discussion: """
            Start with `mlp train`: it trains 784-512-256-10 with Adam on the bundled MNIST for 10 epochs. \
            `mlp train --data FILE` trains on your own: a CSV table, NumPy arrays, IDX files or a folder of \
            pictures in class folders (`mlp data info --data FILE` describes it first). \
            `mlp <subcommand> --help` lists each command's options.
            """,
        version: version,
        subcommands: [Train.self, Evaluate.self, Predict.self, DataCommand.self, Bench.self, Check.self],
        defaultSubcommand: nil
    )

    static func main() {
        // A write past the file-size limit (`ulimit -f`) then fails with EFBIG and is reported with the file's
        // name, like a full disk, instead of killing the process with SIGXFSZ half-way through a checkpoint.
        signal(SIGXFSZ, SIG_IGN)
        main(nil)
    }
}
