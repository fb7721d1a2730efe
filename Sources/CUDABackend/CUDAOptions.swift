import Foundation

/// The cuda backend's switches, read once from the environment when the backend starts and printed by `-v` (each
/// property names its variable; the README's table explains them). Anything else in the environment is not read: the
/// experiments that lost their measurement left the product with their switches (Benchmarks/RESULTS.md).
public struct CUDAOptions: Sendable, Equatable, CustomStringConvertible {
    /// A strategy of the backend that was measured to pay and can be turned off to show what it buys.
    public enum Strategy: String, CaseIterable, Sendable {
        /// Training steps recorded as CUDA graphs and replayed.
        case graphs
        /// A second stream for the weight gradients and a third for the layer-by-layer updates.
        case streams
        /// Kernels after a product launched early, waiting for it inside (programmatic stream serialisation).
        case pdl
        /// Bias and ReLU in the products' epilogues, and the output layer as one kernel.
        case fusion
        /// The output layer's input gradient inside its kernel.
        case outputBackward = "output-backward"
        /// `output_layer_wide` for ten outputs of 2,048 inputs or more.
        case wideOutput = "wide-output"
        /// Products' algorithms chosen by timing whole replayed steps (`TrainingStep.tunes`).
        case stepTuning = "step-tuning"
        /// Variants of cuBLASLt's algorithms that split `k`, among the timed candidates.
        case splitK = "split-k"
        /// Large TF32 weight gradients from a transposed copy of their input.
        case transposedInputs = "transposed-inputs"
        /// A batch's indices in the gather kernel's parameters (else copied to the device before it).
        case inlineIndices = "inline-indices"
        /// The next step's batch gathered in the step's last update (`StepSchedule.gathersNextBatch`).
        case gatherAhead = "gather-ahead"
        /// Each layer of a large network updated as soon as its gradients are final (`StepSchedule.updatesEachLayer`).
        case layerUpdates = "layer-updates"
    }

    /// `MLP_CUDA_SYNC=1`: every operation synchronises and checks at once, to find the one that fails.
    public var synchronizesEachOperation = false
    /// `MLP_CUDA_KERNEL_CACHE=dir` (or `0`: none): where compiled kernels are kept between runs (`KernelCache`); by
    /// default `kernels` in the user's cache folder (`$XDG_CACHE_HOME/mlp`, else `~/.cache/mlp`).
    public var kernelCache: URL?
    /// `MLP_CUDA_TUNE_CACHE=file` (or `0`: none): where timed algorithm choices are kept between runs (`TuningCache`);
    /// by default `cublaslt-tuning.json` in the user's cache folder.
    public var tuningCache: URL?
    /// Whether the products' algorithms are chosen by timing (`MLP_CUDA_TUNE=0`: cuBLASLt's heuristic's first, untimed:
    /// the same choice in every run, so the same results).
    public var timesAlgorithms = true
    /// `MLP_CUDA_TRACE=1`: timing events between a recorded step's operations (`CUDABackend.takeTrace`).
    public var traces = false
    /// `MLP_CUDA_OFF=a,b,…`: measured strategies turned off, one at a time, for an A/B run.
    public var disabled: Set<Strategy> = []
    /// What could not be read, one line each (the backend passes them to its warning handler).
    public var problems: [String] = []

    /// The options `environment` sets (the process's by default); every strategy on unless `MLP_CUDA_OFF` names it.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        synchronizesEachOperation = environment["MLP_CUDA_SYNC"] == "1"
        kernelCache = Self.cacheLocation(environment, "MLP_CUDA_KERNEL_CACHE", default: "kernels")
        tuningCache = Self.cacheLocation(environment, "MLP_CUDA_TUNE_CACHE", default: "cublaslt-tuning.json")
        timesAlgorithms = environment["MLP_CUDA_TUNE"] != "0"
        traces = environment["MLP_CUDA_TRACE"] == "1"
        for name in ["MLP_CUDA_SYNC", "MLP_CUDA_TUNE", "MLP_CUDA_TRACE"] {
            if let set = environment[name], !["", "0", "1"].contains(set) {
                problems.append("\(name)=\(set): expected 0 or 1; the default is used")
            }
        }
        for item in (environment["MLP_CUDA_OFF"] ?? "").split(separator: ",") {
            let name = item.trimmingCharacters(in: .whitespaces)
            if let strategy = Strategy(rawValue: name) {
                disabled.insert(strategy)
            } else {
                problems.append("MLP_CUDA_OFF: \"\(name)\" is not a strategy (\(Strategy.allCases.map(\.rawValue).joined(separator: ", "))); ignored")
            }
        }
    }

    /// The path `variable` names (`0` or empty: none), else `name` in the user's cache folder: `$XDG_CACHE_HOME/mlp`,
    /// else `~/.cache/mlp` (nil when neither variable is set).
    static func cacheLocation(_ environment: [String: String], _ variable: String, default name: String) -> URL? {
        if let path = environment[variable] {
            return path.isEmpty || path == "0" ? nil : URL(fileURLWithPath: path)
        }
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty {
            return URL(fileURLWithPath: xdg).appendingPathComponent("mlp").appendingPathComponent(name)
        }
        if let home = environment["HOME"], !home.isEmpty {
            return URL(fileURLWithPath: home).appendingPathComponent(".cache/mlp").appendingPathComponent(name)
        }
        return nil
    }

    /// Whether `strategy` is on.
    public func uses(_ strategy: Strategy) -> Bool { !disabled.contains(strategy) }

    /// One line: each setting as the environment would write it.
    public var description: String {
        let off = Strategy.allCases.filter { disabled.contains($0) }.map(\.rawValue)
        return "MLP_CUDA_SYNC=\(synchronizesEachOperation ? 1 : 0) MLP_CUDA_TUNE=\(timesAlgorithms ? 1 : 0) "
            + "MLP_CUDA_TRACE=\(traces ? 1 : 0) MLP_CUDA_OFF=\(off.isEmpty ? "(none)" : off.joined(separator: ",")) "
            + "MLP_CUDA_KERNEL_CACHE=\(kernelCache?.path ?? "0") MLP_CUDA_TUNE_CACHE=\(tuningCache?.path ?? "0")"
    }
}
