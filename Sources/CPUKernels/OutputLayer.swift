import MLPCore

/// The operands of `outputLayerRows`, in one value so that a kernel set can carry the function.
public struct OutputLayerArguments {
    public var outputs: UnsafeMutablePointer<Float>, gradient: UnsafeMutablePointer<Float>
    public var inputGradient: UnsafeMutablePointer<Float>, inputs: UnsafePointer<Float>
    public var transposedWeights: UnsafePointer<Float>, bias: UnsafePointer<Float>, labels: UnsafePointer<Int32>
    public var inputSize: Int, outputSize: Int
    public var loss: Loss, gradientScale: Float, inputActivation: Activation

    @inlinable
    public init(outputs: UnsafeMutablePointer<Float>, gradient: UnsafeMutablePointer<Float>, inputGradient: UnsafeMutablePointer<Float>,
                inputs: UnsafePointer<Float>, transposedWeights: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                labels: UnsafePointer<Int32>, inputSize: Int, outputSize: Int, loss: Loss, gradientScale: Float,
                inputActivation: Activation) {
        self.outputs = outputs; self.gradient = gradient; self.inputGradient = inputGradient; self.inputs = inputs
        self.transposedWeights = transposedWeights; self.bias = bias; self.labels = labels
        self.inputSize = inputSize; self.outputSize = outputSize
        self.loss = loss; self.gradientScale = gradientScale; self.inputActivation = inputActivation
    }
}

/// The output layer, its loss and its backward as far as the previous layer's input gradient, for rows `rows` of a
/// batch, in one pass over each row (see `Backend.outputLayerLoss` with its `backward`; the bias gradients and the weight
/// gradient are left to the caller, who sums columns in row order whatever the split):
/// - `outputs[r, c] = bias[c] + Σ_k inputs[r, k] · w[k, c]`, from `transposedWeights` (`[outputSize, inputSize]`,
///   so that the sums run along contiguous memory, four outputs at a time);
/// - the loss of the row, its `gradient[r, ·]` (as `lossRows`);
/// - `inputGradient[r, k] = (Σ_c gradient[r, c] · w[k, c]) · f'(inputs[r, k])`, four vectors of `k` at a time.
///
/// For a narrow layer (a classifier's ten outputs) the products it replaces are too thin for the GEMM to run well
/// (10 columns: under 30 GFLOP/s), and each was a pass of its own over the batch.
/// Returns the rows' summed loss and correct count.
@inlinable
public func outputLayerRows<ISA: KernelISA>(
    _ isa: ISA.Type, outputs: UnsafeMutablePointer<Float>, gradient: UnsafeMutablePointer<Float>,
    inputGradient: UnsafeMutablePointer<Float>, inputs: UnsafePointer<Float>, transposedWeights wt: UnsafePointer<Float>,
    bias: UnsafePointer<Float>, labels: UnsafePointer<Int32>, rows: Range<Int>, inputSize: Int, outputSize: Int,
    loss: Loss, gradientScale: Float, inputActivation: Activation
) -> (loss: Float, correct: Float) {
    typealias V = ISA.Vector
    let w = V.scalarCount
    let vectorEnd = inputSize / w * w
    var lossSum: Float = 0, correct: Float = 0
    for r in rows {
        let x = inputs + r * inputSize
        let z = outputs + r * outputSize
        // Logits, four at a time (four independent chains of multiply-adds; x read once per group).
        var c0 = 0
        while c0 < outputSize {
            let n = min(4, outputSize - c0)
            let w0 = wt + c0 * inputSize
            let w1 = n > 1 ? w0 + inputSize : w0, w2 = n > 2 ? w0 + 2 * inputSize : w0, w3 = n > 3 ? w0 + 3 * inputSize : w0
            var a0 = V(), a1 = V(), a2 = V(), a3 = V()
            var k = 0
            while k < vectorEnd {
                let xv = V.load(x + k)
                a0 = ISA.multiplyAdd(xv, V.load(w0 + k), a0)
                a1 = ISA.multiplyAdd(xv, V.load(w1 + k), a1)
                a2 = ISA.multiplyAdd(xv, V.load(w2 + k), a2)
                a3 = ISA.multiplyAdd(xv, V.load(w3 + k), a3)
                k += w
            }
            var s = (a0.sum(), a1.sum(), a2.sum(), a3.sum())
            while k < inputSize {
                s.0 += x[k] * w0[k]; s.1 += x[k] * w1[k]; s.2 += x[k] * w2[k]; s.3 += x[k] * w3[k]
                k += 1
            }
            z[c0] = bias[c0] + s.0
            if n > 1 { z[c0 + 1] = bias[c0 + 1] + s.1 }
            if n > 2 { z[c0 + 2] = bias[c0 + 2] + s.2 }
            if n > 3 { z[c0 + 3] = bias[c0 + 3] + s.3 }
            c0 += 4
        }
        let part = lossRows(gradient: gradient, predictions: nil, outputs: UnsafePointer(outputs), labels: labels,
                            rows: r..<(r + 1), columns: outputSize, loss: loss, gradientScale: gradientScale)
        lossSum += part.loss
        correct += part.correct
        // The input gradient, four vectors of k at a time (four independent chains over the outputs).
        let g = gradient + r * outputSize
        let dx = inputGradient + r * inputSize
        var k = 0
        while k + 4 * w <= vectorEnd {
            var d0 = V(), d1 = V(), d2 = V(), d3 = V()
            for c in 0..<outputSize {
                let gc = V(repeating: g[c]), wc = wt + c * inputSize + k
                d0 = ISA.multiplyAdd(gc, V.load(wc), d0)
                d1 = ISA.multiplyAdd(gc, V.load(wc + w), d1)
                d2 = ISA.multiplyAdd(gc, V.load(wc + 2 * w), d2)
                d3 = ISA.multiplyAdd(gc, V.load(wc + 3 * w), d3)
            }
            derivativeTimes(ISA.self, d0, x + k, inputActivation).store(dx + k)
            derivativeTimes(ISA.self, d1, x + k + w, inputActivation).store(dx + k + w)
            derivativeTimes(ISA.self, d2, x + k + 2 * w, inputActivation).store(dx + k + 2 * w)
            derivativeTimes(ISA.self, d3, x + k + 3 * w, inputActivation).store(dx + k + 3 * w)
            k += 4 * w
        }
        while k < vectorEnd {
            var d = V()
            for c in 0..<outputSize { d = ISA.multiplyAdd(V(repeating: g[c]), V.load(wt + c * inputSize + k), d) }
            derivativeTimes(ISA.self, d, x + k, inputActivation).store(dx + k)
            k += w
        }
        while k < inputSize {
            var d: Float = 0
            for c in 0..<outputSize { d += g[c] * wt[c * inputSize + k] }
            dx[k] = d * inputActivation.derivative(output: x[k])
            k += 1
        }
    }
    return (lossSum, correct)
}

/// `d ⊙ f'(a)` for the activation's stored outputs `a` at `outputs` (one vector).
@inlinable @inline(__always)
func derivativeTimes<ISA: KernelISA>(_ isa: ISA.Type, _ d: ISA.Vector, _ outputs: UnsafePointer<Float>, _ activation: Activation) -> ISA.Vector {
    typealias V = ISA.Vector
    switch activation {
    case .relu: return ISA.reluGradient(d, output: V.load(outputs))
    case .tanh: let a = V.load(outputs); return ISA.multiply(d, ISA.subtract(V(repeating: 1), ISA.multiply(a, a)))
    case .sigmoid: let a = V.load(outputs); return ISA.multiply(d, ISA.multiply(a, ISA.subtract(V(repeating: 1), a)))
    case .identity: return d
    }
}
