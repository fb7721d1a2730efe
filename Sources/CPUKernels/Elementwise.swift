import MLPCore
import MNIST

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The fused elementwise passes of the cpu backend, generic over the instruction set like the GEMM. Each works on a
// range (rows or columns) so that the backend can split it across threads; see `Backend` for the definitions.


/// `values[r, c] = f(values[r, c] + bias[c])` for `r` in `rows`.
@inlinable
public func biasActivationRows<ISA: KernelISA>(_ isa: ISA.Type, values: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, rows: Range<Int>, columns: Int, activation: Activation) {
    typealias V = ISA.Vector
    let w = V.scalarCount
    let vectorEnd = columns / w * w
    for r in rows {
        let row = values + r * columns
        var c = 0
        switch activation {
        case .relu:
            while c < vectorEnd {
                ISA.relu(ISA.add(V.load(row + c), V.load(bias + c))).store(row + c)
                c += w
            }
        case .identity:
            while c < vectorEnd {
                ISA.add(V.load(row + c), V.load(bias + c)).store(row + c)
                c += w
            }
        case .tanh, .sigmoid:
            break
        }
        while c < columns {
            row[c] = activation.apply(row[c] + bias[c])
            c += 1
        }
    }
}

/// For columns `columnRange`: `gradient[r, c] *= f'(outputs[r, c])` over all rows, then
/// `biasGradient[c] = Σ_r gradient[r, c]` (summed in row order, whatever the split).
@inlinable
public func activationBackwardColumns<ISA: KernelISA>(_ isa: ISA.Type, gradient: UnsafeMutablePointer<Float>, biasGradient: UnsafeMutablePointer<Float>, outputs: UnsafePointer<Float>, rows: Int, columns: Int, columnRange: Range<Int>, activation: Activation) {
    typealias V = ISA.Vector
    let w = V.scalarCount
    var c = columnRange.lowerBound
    // Whole vectors of columns: the sums stay in a register while the rows go by.
    while c + w <= columnRange.upperBound {
        var sum = V()
        for r in 0..<rows {
            let g = gradient + r * columns + c
            var d = V.load(g)
            switch activation {
            case .relu: d = ISA.reluGradient(d, output: V.load(outputs + r * columns + c))
            case .tanh: let a = V.load(outputs + r * columns + c); d = ISA.multiply(d, ISA.subtract(V(repeating: 1), ISA.multiply(a, a)))
            case .sigmoid: let a = V.load(outputs + r * columns + c); d = ISA.multiply(d, ISA.multiply(a, ISA.subtract(V(repeating: 1), a)))
            case .identity: break
            }
            d.store(g)
            sum = ISA.add(sum, d)
        }
        sum.store(biasGradient + c)
        c += w
    }
    while c < columnRange.upperBound {
        var sum: Float = 0
        for r in 0..<rows {
            let i = r * columns + c
            let a = outputs[i]
            let d: Float
            switch activation {
            case .relu: d = a > 0 ? gradient[i] : 0
            case .tanh: d = gradient[i] * (1 - a * a)
            case .sigmoid: d = gradient[i] * (a * (1 - a))
            case .identity: d = gradient[i]
            }
            gradient[i] = d
            sum += d
        }
        biasGradient[c] = sum
        c += 1
    }
}

/// The loss of rows `rows` (see `Backend.lossForwardBackward`); returns their summed loss and correct count
/// instead of accumulating, so that the backend can add the parts of a split in a fixed order.
@inlinable
public func lossRows(gradient: UnsafeMutablePointer<Float>?, predictions: UnsafeMutablePointer<Int32>?, outputs: UnsafePointer<Float>, labels: UnsafePointer<Int32>, rows: Range<Int>, columns: Int, loss: Loss, gradientScale: Float) -> (loss: Float, correct: Float) {
    var lossSum: Float = 0, correct: Float = 0
    for r in rows {
        let z = outputs + r * columns
        let label = Int(labels[r])
        var best = 0
        for c in 1..<max(columns, 1) where z[c] > z[best] { best = c }
        if best == label { correct += 1 }
        predictions?[r] = Int32(best)
        switch loss {
        case .softmaxCrossEntropy:
            let m = z[best], zLabel = z[label]  // read before the gradient's row is written (it may be z's)
            var sumExp: Float = 0
            if let g = gradient.map({ $0 + r * columns }) {
                // Each exponential once, kept in the gradient's row until the sum is known (the same values and
                // order as without a gradient, so the loss is the same bits either way).
                for c in 0..<columns {
                    let e = expf(z[c] - m)
                    g[c] = e
                    sumExp += e
                }
                let scale = gradientScale / sumExp
                for c in 0..<columns { g[c] *= scale }
                g[label] -= gradientScale
            } else {
                for c in 0..<columns { sumExp += expf(z[c] - m) }
            }
            lossSum += m + logf(sumExp) - zLabel
        case .meanSquaredError:
            var s: Float = 0
            for c in 0..<columns {
                let d = z[c] - (c == label ? 1 : 0)
                s += d * d
                gradient?[r * columns + c] = gradientScale * 2 * d
            }
            lossSum += s
        case .squaredError, .huber:
            preconditionFailure("\(loss.rawValue) is a regression loss: it takes targets, not labels (regressionLoss)")
        }
    }
    return (lossSum, correct)
}

/// The optimizer update for the elements `range` of the flat buffers (see `OptimizerConfiguration`); the state's
/// slots are `stateStride` floats apart.
@inlinable
public func optimizerRange<ISA: KernelISA>(_ isa: ISA.Type, parameters p: UnsafeMutablePointer<Float>, gradients g: UnsafePointer<Float>, state s: UnsafeMutablePointer<Float>, stateStride: Int, range: Range<Int>, step: OptimizerStep) {
    typealias V = ISA.Vector
    let w = V.scalarCount
    var i = range.lowerBound
    let vectorEnd = range.lowerBound + (range.count / w) * w
    let lr = step.learningRate, wd = step.weightDecay
    switch step.kind {
    case .sgd:
        let mu = step.momentum
        while i < vectorEnd {
            var pv = V.load(p + i)
            var d = ISA.multiplyAdd(V(repeating: wd), pv, V.load(g + i))
            if mu > 0 {
                let buf = ISA.multiplyAdd(V(repeating: mu), V.load(s + i), d)
                buf.store(s + i)
                d = step.nesterov ? ISA.multiplyAdd(V(repeating: mu), buf, d) : buf
            }
            pv = ISA.multiplyAdd(V(repeating: -lr), d, pv)
            pv.store(p + i)
            i += w
        }
        while i < range.upperBound {
            var d = wd * p[i] + g[i]
            if mu > 0 {
                s[i] = mu * s[i] + d
                d = step.nesterov ? mu * s[i] + d : s[i]
            }
            p[i] = -lr * d + p[i]
            i += 1
        }
    case .adam, .adamw:
        let (c1, c2) = step.biasCorrections
        let b1 = step.beta1, b2 = step.beta2, eps = step.epsilon
        let decoupled = step.kind == .adamw
        let m = s, v = s + stateStride
        // p −= lr · (m / c1) / (√(v / c2) + ε), computed as (lr / c1) · m / (√(v · (1 / c2)) + ε): one division and
        // one square root per element instead of three divisions and a square root. The divider, which both
        // share, set the pace (Sapphire Rapids: about 10 cycles per 16-lane division, 12 per square root; the
        // update measured near those 42 cycles a vector); the Float results move by an ulp or two from the
        // reference's order, far inside the checks' tolerance. Vector and scalar paths use the same order.
        let stepSize = lr / c1, inverseC2 = 1 / c2
        while i < vectorEnd {
            var pv = V.load(p + i)
            var d = V.load(g + i)
            if decoupled { pv = ISA.multiply(pv, V(repeating: 1 - lr * wd)) } else { d = ISA.multiplyAdd(V(repeating: wd), pv, d) }
            let mv = ISA.multiplyAdd(V(repeating: b1), V.load(m + i), ISA.multiply(V(repeating: 1 - b1), d))
            let vv = ISA.multiplyAdd(V(repeating: b2), V.load(v + i), ISA.multiply(ISA.multiply(V(repeating: 1 - b2), d), d))
            mv.store(m + i)
            vv.store(v + i)
            let denominator = ISA.add(ISA.squareRoot(ISA.multiply(vv, V(repeating: inverseC2))), V(repeating: eps))
            pv = ISA.subtract(pv, ISA.divide(ISA.multiply(V(repeating: stepSize), mv), denominator))
            pv.store(p + i)
            i += w
        }
        while i < range.upperBound {
            var d = g[i]
            if decoupled { p[i] *= 1 - lr * wd } else { d = wd * p[i] + d }
            m[i] = b1 * m[i] + (1 - b1) * d
            v[i] = b2 * v[i] + (1 - b2) * d * d
            p[i] = p[i] - stepSize * m[i] / ((v[i] * inverseC2).squareRoot() + eps)
            i += 1
        }
    }
}

/// Rows `rows` of a batch gathered from the resident values, bytes or floats (see `Backend.gatherBatch`).
@inlinable
public func gatherRows<ISA: KernelISA>(_ isa: ISA.Type, inputs: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<Int32>, values: UnsafeRawPointer, valueType: SampleValueType, sourceLabels: UnsafePointer<Int32>, indices: UnsafePointer<Int32>, rows: Range<Int>, features: Int, normalization: Normalization) {
    typealias V = ISA.Vector
    let w = V.scalarCount
    let scale = normalization.scale, shift = normalization.shift
    let scaleVector = V(repeating: scale), shiftVector = V(repeating: shift)
    let bytes = values.assumingMemoryBound(to: UInt8.self), floats = values.assumingMemoryBound(to: Float.self)
    for r in rows {
        let sample = Int(indices[r])
        let dst = inputs + r * features
        var f = 0
        // Multiply, then add (not fused): the same rounding as `Normalization.apply`, so every backend sees the same
        // inputs bit for bit.
        if valueType == .uint8 {
            let src = bytes + sample * features
            while f + w <= features {
                ISA.add(ISA.multiply(ISA.floats(fromBytes: src + f), scaleVector), shiftVector).store(dst + f)
                f += w
            }
            while f < features {
                dst[f] = Float(src[f]) * scale + shift
                f += 1
            }
        } else {
            let src = floats + sample * features
            while f + w <= features {
                ISA.add(ISA.multiply(V.load(src + f), scaleVector), shiftVector).store(dst + f)
                f += w
            }
            while f < features {
                dst[f] = src[f] * scale + shift
                f += 1
            }
        }
        labels[r] = sourceLabels[sample]
    }
}
