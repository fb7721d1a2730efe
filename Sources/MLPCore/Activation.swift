/// A layer's elementwise nonlinearity.
///
/// The derivative is written in terms of the activation's *output* `a = f(z)`, which is what the forward pass
/// keeps: `relu'(z) = [a > 0]`, `tanh'(z) = 1 − a²`, `sigmoid'(z) = a(1 − a)`. So a layer stores one array, not two.
public enum Activation: String, CaseIterable, Sendable, Codable {
    case relu
    case tanh
    case sigmoid
    /// No nonlinearity (the output layer, whose values go to the loss).
    case identity

    /// `f(z)`.
    @inlinable
    public func apply(_ z: Float) -> Float {
        switch self {
        case .relu: return z > 0 ? z : 0
        case .tanh: return _tanh(z)
        case .sigmoid: return 1 / (1 + _exp(-z))
        case .identity: return z
        }
    }

    /// `f'(z)` given `a = f(z)`.
    @inlinable
    public func derivative(output a: Float) -> Float {
        switch self {
        case .relu: return a > 0 ? 1 : 0
        case .tanh: return 1 - a * a
        case .sigmoid: return a * (1 - a)
        case .identity: return 1
        }
    }
}

