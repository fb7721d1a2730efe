/// The loss between the network's outputs and what they should be: a class label (classification) or real-valued
/// targets (regression).
public enum Loss: String, CaseIterable, Sendable, Codable {
    /// Softmax over the outputs, then the negative log-likelihood of the label, computed as one numerically stable
    /// operation: `loss = logsumexp(z) − z[label]` with the maximum subtracted first, so logits of ±1e4 give finite
    /// values. Gradient with respect to the logits: `softmax(z) − onehot(label)`.
    case softmaxCrossEntropy = "cross-entropy"
    /// Squared error against the one-hot label, summed over classes: `Σ_c (z_c − t_c)²`, gradient `2(z − t)`.
    case meanSquaredError = "mse"
    /// Regression: the mean over the `k` outputs of the squared error against real targets,
    /// `(1/k) Σ_c (z_c − t_c)²` (PyTorch's `MSELoss` of one sample), gradient `2(z − t)/k`.
    case squaredError = "squared-error"
    /// Regression: the mean over the outputs of the Huber loss with δ = 1 (on standardised targets, one standard
    /// deviation): `½d²` where `|d| ≤ 1`, `|d| − ½` beyond, `d = z_c − t_c`; gradient `clamp(d, −1, 1)/k`. It weighs
    /// outliers linearly, not quadratically.
    case huber = "huber"

    /// Whether the loss compares outputs with real-valued targets (regression) rather than a class label.
    public var isRegression: Bool { self == .squaredError || self == .huber }

    /// The losses of a classifier.
    public static let classificationCases: [Loss] = allCases.filter { !$0.isRegression }
    /// The losses of a regression.
    public static let regressionCases: [Loss] = allCases.filter(\.isRegression)

    /// One output's loss for the difference `d = z − t` between output and target, before the mean over outputs
    /// (regression losses only).
    @inlinable public func regressionTerm(_ d: Float) -> Float {
        self == .huber ? (abs(d) <= 1 ? 0.5 * d * d : abs(d) - 0.5) : d * d
    }

    /// The derivative of `regressionTerm` with respect to the output.
    @inlinable public func regressionDerivative(_ d: Float) -> Float {
        self == .huber ? min(max(d, -1), 1) : 2 * d
    }
}
