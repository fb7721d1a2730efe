/// The loss between the network's outputs and the labels.
public enum Loss: String, CaseIterable, Sendable, Codable {
    /// Softmax over the outputs, then the negative log-likelihood of the label, computed as one numerically stable
    /// operation: `loss = logsumexp(z) − z[label]` with the maximum subtracted first, so logits of ±1e4 give finite
    /// values. Gradient with respect to the logits: `softmax(z) − onehot(label)`.
    case softmaxCrossEntropy = "cross-entropy"
    /// Squared error against the one-hot label, summed over classes: `Σ_c (z_c − t_c)²`, gradient `2(z − t)`.
    case meanSquaredError = "mse"
}
