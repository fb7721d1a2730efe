import Foundation
import MLPCore

/// The MLP's loss and gradient computed in Double, straight from the definitions, independent of any backend:
/// the reference that the backends' Float results and the finite differences are compared with.
public struct ReferenceMLP {
    public let spec: NetworkSpec
    public let layout: ParameterLayout

    public init(_ spec: NetworkSpec) {
        self.spec = spec
        self.layout = ParameterLayout(spec)
    }

    static func activate(_ z: Double, _ a: Activation) -> Double {
        switch a {
        case .relu: return max(0, z)
        case .tanh: return Foundation.tanh(z)
        case .sigmoid: return 1 / (1 + Foundation.exp(-z))
        case .identity: return z
        }
    }

    static func derivative(_ z: Double, _ a: Activation) -> Double {
        switch a {
        case .relu: return z > 0 ? 1 : 0
        case .tanh: let t = Foundation.tanh(z); return 1 - t * t
        case .sigmoid: let s = 1 / (1 + Foundation.exp(-z)); return s * (1 - s)
        case .identity: return 1
        }
    }

    /// The derivative from the activation's output `a = f(z)`, as the backends compute it from stored outputs.
    static func derivative(fromOutput a: Double, _ activation: Activation) -> Double {
        switch activation {
        case .relu: return a > 0 ? 1 : 0
        case .tanh: return 1 - a * a
        case .sigmoid: return a * (1 - a)
        case .identity: return 1
        }
    }

    /// Mean loss over the batch, and, when `gradient` is true, its gradient with respect to every parameter
    /// (in the flat layout).
    /// - Parameters: inputs `[rows, inputSize]`; labels `[rows]` (classification); targets `[rows, outputSize]`
    ///   (regression losses, which ignore the labels).
    public func lossAndGradient(parameters p: [Double], inputs: [Double], labels: [Int], targets: [Double] = [], gradient wantGradient: Bool = true) -> (loss: Double, gradient: [Double]) {
        let rows = spec.loss.isRegression ? targets.count / spec.outputSize : labels.count
        var activations = [inputs]  // A_0 = X, then A_l per layer
        var preActivations = [[Double]]()
        for (l, layer) in layout.layers.enumerated() {
            let x = activations[l]
            var z = [Double](repeating: 0, count: rows * layer.outputs)
            for r in 0..<rows {
                for o in 0..<layer.outputs {
                    var s = p[layer.biasOffset + o]
                    for i in 0..<layer.inputs { s += x[r * layer.inputs + i] * p[layer.weightOffset + i * layer.outputs + o] }
                    z[r * layer.outputs + o] = s
                }
            }
            preActivations.append(z)
            activations.append(z.map { Self.activate($0, spec.activation(ofLayer: l)) })
        }
        let k = spec.outputSize
        let out = activations.last!
        var loss = 0.0
        var dOut = [Double](repeating: 0, count: rows * k)
        for r in 0..<rows {
            let row = Array(out[r * k..<(r + 1) * k])
            switch spec.loss {
            case .softmaxCrossEntropy:
                let m = row.max()!
                let lse = m + Foundation.log(row.map { Foundation.exp($0 - m) }.reduce(0, +))
                loss += lse - row[labels[r]]
                for c in 0..<k { dOut[r * k + c] = (Foundation.exp(row[c] - lse) - (c == labels[r] ? 1 : 0)) / Double(rows) }
            case .meanSquaredError:
                for c in 0..<k {
                    let d = row[c] - (c == labels[r] ? 1 : 0)
                    loss += d * d
                    dOut[r * k + c] = 2 * d / Double(rows)
                }
            case .squaredError, .huber:
                for c in 0..<k {
                    let d = row[c] - targets[r * k + c]
                    let huber = spec.loss == .huber
                    loss += (huber ? (abs(d) <= 1 ? 0.5 * d * d : abs(d) - 0.5) : d * d) / Double(k)
                    dOut[r * k + c] = (huber ? min(max(d, -1), 1) : 2 * d) / Double(k) / Double(rows)
                }
            }
        }
        loss /= Double(rows)
        guard wantGradient else { return (loss, []) }
        var grad = [Double](repeating: 0, count: layout.count)
        var dA = dOut
        for l in stride(from: layout.layers.count - 1, through: 0, by: -1) {
            let layer = layout.layers[l]
            let z = preActivations[l]
            let dZ = (0..<dA.count).map { dA[$0] * Self.derivative(z[$0], spec.activation(ofLayer: l)) }
            let x = activations[l]
            for o in 0..<layer.outputs {
                var db = 0.0
                for r in 0..<rows { db += dZ[r * layer.outputs + o] }
                grad[layer.biasOffset + o] = db
                for i in 0..<layer.inputs {
                    var s = 0.0
                    for r in 0..<rows { s += dZ[r * layer.outputs + o] * x[r * layer.inputs + i] }
                    grad[layer.weightOffset + i * layer.outputs + o] = s
                }
            }
            var dX = [Double](repeating: 0, count: rows * layer.inputs)
            for r in 0..<rows {
                for i in 0..<layer.inputs {
                    var s = 0.0
                    for o in 0..<layer.outputs { s += dZ[r * layer.outputs + o] * p[layer.weightOffset + i * layer.outputs + o] }
                    dX[r * layer.inputs + i] = s
                }
            }
            dA = dX
        }
        return (loss, grad)
    }
}

/// ‖a − b‖ / max(‖b‖, floor): the relative error, measured against `floor` where the reference is nearly zero
/// (a softmax gradient of e⁻⁵⁰ is 0 in Float, and that is right).
public func relativeError(_ a: [Double], _ b: [Double], floor: Double = 1e-300) -> Double {
    precondition(a.count == b.count)
    var num = 0.0, den = 0.0
    for (x, y) in zip(a, b) { num += (x - y) * (x - y); den += y * y }
    return num.squareRoot() / max(den.squareRoot(), floor)
}
