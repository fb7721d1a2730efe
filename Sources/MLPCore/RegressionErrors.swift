/// A regression's errors over a set of samples, summed per output in the units of the stored targets (standardised,
/// when the trainer standardised them), from which `rmse`, `mae` and `r2` report them in the targets' own units.
///
/// Sums are kept per output because each output has its own unit: an RMSE over outputs of different scales is taken
/// after each is scaled back (`scale`, each target's standard deviation).
public struct RegressionErrors: Sendable, Equatable {
    /// Samples added.
    public var count = 0
    /// Per output: Σ (prediction − target)².
    public var squaredError: [Double]
    /// Per output: Σ |prediction − target|.
    public var absoluteError: [Double]
    /// Per output: Σ target and Σ target² (the targets' own spread, for R²).
    public var targetSum, targetSquareSum: [Double]

    /// Empty sums for `outputs` targets per sample.
    public init(outputs: Int) {
        squaredError = [Double](repeating: 0, count: outputs)
        absoluteError = squaredError
        targetSum = squaredError
        targetSquareSum = squaredError
    }

    /// Adds one sample's outputs and targets.
    public mutating func add(outputs: ArraySlice<Float>, targets: ArraySlice<Float>) {
        precondition(outputs.count == squaredError.count && targets.count == squaredError.count, "one value per output")
        for (c, (z, t)) in zip(outputs, targets).enumerated() {
            let d = Double(z) - Double(t)
            squaredError[c] += d * d
            absoluteError[c] += abs(d)
            targetSum[c] += Double(t)
            targetSquareSum[c] += Double(t) * Double(t)
        }
        count += 1
    }

    /// Root mean squared error over every sample and output, each output's error multiplied by its `scale` (nil:
    /// 1, the stored units).
    public func rmse(scale: [Double]? = nil) -> Double {
        let k = squaredError.count
        let sum = (0..<k).reduce(0.0) { $0 + squaredError[$1] * pow2(scale?[$1] ?? 1) }
        return (sum / Double(max(count * k, 1))).squareRoot()
    }

    /// Mean absolute error over every sample and output, in the outputs' own units (see `rmse`).
    public func mae(scale: [Double]? = nil) -> Double {
        let k = squaredError.count
        return (0..<k).reduce(0.0) { $0 + absoluteError[$1] * (scale?[$1] ?? 1) } / Double(max(count * k, 1))
    }

    /// The coefficient of determination, 1 − Σ(z − t)² / Σ(t − t̄)², averaged over the outputs (scikit-learn's
    /// `uniform_average`); it does not depend on the units. Outputs whose targets do not vary here are left out;
    /// NaN when none varies.
    public var r2: Double {
        var total = 0.0, outputs = 0
        for c in squaredError.indices {
            let n = Double(count)
            let spread = targetSquareSum[c] - targetSum[c] * targetSum[c] / max(n, 1)
            // Below rounding of the sums, the targets are constant.
            guard spread > 1e-12 * max(targetSquareSum[c], 1e-300) else { continue }
            total += 1 - squaredError[c] / spread
            outputs += 1
        }
        return outputs == 0 ? .nan : total / Double(outputs)
    }
}

@inline(__always) private func pow2(_ x: Double) -> Double { x * x }
