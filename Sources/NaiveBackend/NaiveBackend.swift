import MLPCore
import MNIST

/// The reference backend: every operation as the plain loops of its definition, in host memory, one thread.
///
/// It is written to be read and to be right, not to be fast: every other backend is tested against it, and it is
/// the baseline of `mlp bench`. Sums are accumulated in Float in the natural order, as a reader would write them.
public final class NaiveBackend: HostMemoryBackend, ComposedLayers {
    public let name = "naive"
    public let deviceDescription = "host memory, plain Swift loops, one thread"

    public init() {}

    // MARK: Batches

    public func gatherBatch(_ gather: BatchGather) {
        let x = gather.inputs.host, y = gather.labels.host, l = gather.sourceLabels.host
        let indices = gather.indices, features = gather.features, normalization = gather.normalization
        let bytes = gather.values.host, floats = UnsafeMutableRawPointer(bytes).assumingMemoryBound(to: Float.self)
        for r in 0..<indices.count {
            let sample = Int(indices[r])
            for f in 0..<features {
                let i = sample * features + f
                x[r * features + f] = gather.valueType == .uint8 ? normalization.apply(bytes[i]) : normalization.apply(value: floats[i])
            }
            y[r] = l[sample]
        }
    }

    // MARK: Layers

    public func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: DevicePointer<Float>, lda: Int, b: DevicePointer<Float>, ldb: Int,
        beta: Float, c: DevicePointer<Float>, ldc: Int
    ) {
        let A = a.host, B = b.host, C = c.host
        for i in 0..<m {
            for j in 0..<n {
                var sum: Float = 0
                for p in 0..<k {
                    let aip = transposeA ? A[p * lda + i] : A[i * lda + p]
                    let bpj = transposeB ? B[j * ldb + p] : B[p * ldb + j]
                    sum += aip * bpj
                }
                C[i * ldc + j] = beta == 0 ? alpha * sum : alpha * sum + beta * C[i * ldc + j]
            }
        }
    }

    public func biasActivationForward(
        values: DevicePointer<Float>, bias: DevicePointer<Float>, rows: Int, columns: Int, activation: Activation
    ) {
        let v = values.host, b = bias.host
        for r in 0..<rows {
            for c in 0..<columns {
                v[r * columns + c] = activation.apply(v[r * columns + c] + b[c])
            }
        }
    }

    public func activationBackward(
        gradient: DevicePointer<Float>, biasGradient: DevicePointer<Float>, outputs: DevicePointer<Float>,
        rows: Int, columns: Int, activation: Activation
    ) {
        let g = gradient.host, db = biasGradient.host, a = outputs.host
        for c in 0..<columns { db[c] = 0 }
        for r in 0..<rows {
            for c in 0..<columns {
                let i = r * columns + c
                g[i] *= activation.derivative(output: a[i])
                db[c] += g[i]
            }
        }
    }

    public func lossForwardBackward(
        gradient: DevicePointer<Float>?, metrics: DevicePointer<Float>, predictions: DevicePointer<Int32>?,
        outputs: DevicePointer<Float>, labels: DevicePointer<Int32>, rows: Int, columns: Int,
        loss: Loss, gradientScale: Float
    ) {
        let z = outputs.host, y = labels.host, m = metrics.host
        for r in 0..<rows {
            let row = z + r * columns
            let label = Int(y[r])
            var best = 0
            for c in 1..<max(columns, 1) where row[c] > row[best] { best = c }
            if best == label { m[1] += 1 }
            predictions?.host[r] = Int32(best)
            switch loss {
            case .softmaxCrossEntropy:
                // log Σ exp(z) computed as max + log Σ exp(z − max): no overflow for large logits.
                let maxLogit = row[best]
                var sumExp: Float = 0
                for c in 0..<columns { sumExp += _exp(row[c] - maxLogit) }
                let logSumExp = maxLogit + _log(sumExp)
                m[0] += logSumExp - row[label]
                if let g = gradient?.host {
                    for c in 0..<columns {
                        let p = _exp(row[c] - maxLogit) / sumExp
                        g[r * columns + c] = gradientScale * (p - (c == label ? 1 : 0))
                    }
                }
            case .meanSquaredError:
                var sum: Float = 0
                for c in 0..<columns {
                    let d = row[c] - (c == label ? 1 : 0)
                    sum += d * d
                    if let g = gradient?.host { g[r * columns + c] = gradientScale * 2 * d }
                }
                m[0] += sum
            case .squaredError, .huber:
                preconditionFailure("\(loss.rawValue) is a regression loss: it takes targets, not labels (regressionLoss)")
            }
        }
    }

    // MARK: Optimizer

    public func optimizerUpdate(_ update: ParameterUpdate) {
        let count = update.count, stateStride = update.stateStride, step = update.step
        precondition(stateStride >= count, "state slots \(stateStride) apart for \(count) parameters")
        let p = update.parameters.host, g = update.gradients.host, s = update.state.host
        switch step.kind {
        case .sgd:
            for i in 0..<count {
                var d = g[i] + step.weightDecay * p[i]
                if step.momentum > 0 {
                    s[i] = step.momentum * s[i] + d
                    d = step.nesterov ? d + step.momentum * s[i] : s[i]
                }
                p[i] -= step.learningRate * d
            }
        case .adam, .adamw:
            let (c1, c2) = step.biasCorrections
            let m = s, v = s + stateStride
            for i in 0..<count {
                var d = g[i]
                if step.kind == .adamw {
                    p[i] *= 1 - step.learningRate * step.weightDecay
                } else {
                    d += step.weightDecay * p[i]
                }
                m[i] = step.beta1 * m[i] + (1 - step.beta1) * d
                v[i] = step.beta2 * v[i] + (1 - step.beta2) * d * d
                let mHat = m[i] / c1
                let vHat = v[i] / c2
                p[i] -= step.learningRate * mHat / (vHat.squareRoot() + step.epsilon)
            }
        }
        update.gatherAfterwards(on: self)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#else
import Darwin
#endif
@inline(__always) func _exp(_ x: Float) -> Float { expf(x) }
@inline(__always) func _log(_ x: Float) -> Float { logf(x) }
