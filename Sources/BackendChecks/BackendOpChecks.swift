import Foundation
import MLPCore
import MNIST

/// Checks of each `Backend` operation against a Double computation of its definition, on random inputs, for any
/// backend. Each returns the relative error ‖out − ref‖/‖ref‖ (the gather, exact, returns whether it matched); a test
/// or `mlp check` compares it with its tolerance. Output buffers are filled with NaN first, so an element left
/// unwritten shows.
public struct BackendOpChecks {
    public let backend: any Backend
    public var generator: SeededGenerator

    public init(_ backend: any Backend, seed: UInt64 = 1) {
        self.backend = backend
        self.generator = SeededGenerator(seed: seed)
    }

    mutating func random(_ n: Int, scale: Float = 1) -> [Float] {
        (0..<n).map { _ in Float(generator.gaussian()) * scale }
    }

    func upload(_ values: [Float]) throws -> DevicePointer<Float> { try backend.allocate(copying: values) }

    /// The backend's elementwise and loss passes, for the checks of those parts.
    func parts() throws -> any ComposedLayers {
        guard let parts = backend as? any ComposedLayers else {
            throw ConfigurationError(flag: "--backend", value: backend.name, expected: "a backend with elementwise passes (ComposedLayers)")
        }
        return parts
    }
    func poisoned(_ n: Int) throws -> DevicePointer<Float> { try upload([Float](repeating: .nan, count: max(n, 1))) }

    /// `C = alpha·op(A)·op(B) + beta·C` with row strides larger than the rows (`lda = cols + 3`), so padding is
    /// never read or written. Returns the relative error of C, and whether the padding kept its values.
    /// `magnitudeError` is ‖out − ref‖ over the norm of each element's magnitude, `|alpha|·Σ|a||b| + |beta||c|`: the
    /// measure for products whose operands are rounded (bf16), where `alpha·AB` and `beta·C` may cancel and leave a
    /// result far smaller than the rounding of its terms.
    public mutating func gemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0) throws
        -> (error: Double, magnitudeError: Double, paddingIntact: Bool) {
        let (aRows, aCols) = transposeA ? (k, m) : (m, k)
        let (bRows, bCols) = transposeB ? (n, k) : (k, n)
        let (lda, ldb, ldc) = (aCols + 3, bCols + 2, n + 1)
        let a = random(aRows * lda), b = random(bRows * ldb)
        var c0 = random(m * ldc)
        if beta == 0 { for i in 0..<m { for j in 0..<n { c0[i * ldc + j] = .nan } } }
        let (pa, pb, pc) = (try upload(a), try upload(b), try upload(c0))
        defer { backend.free(pa); backend.free(pb); backend.free(pc) }
        backend.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: pa, lda: lda, b: pb, ldb: ldb, beta: beta, c: pc, ldc: ldc)
        let c = backend.download(pc, count: m * ldc)
        var out = [Double](), ref = [Double](), magnitude = [Double]()
        var paddingIntact = true
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0, size = 0.0
                for p in 0..<k {
                    let x = transposeA ? a[p * lda + i] : a[i * lda + p]
                    let y = transposeB ? b[j * ldb + p] : b[p * ldb + j]
                    s += Double(x) * Double(y)
                    size += abs(Double(x) * Double(y))
                }
                ref.append(Double(alpha) * s + (beta == 0 ? 0 : Double(beta) * Double(c0[i * ldc + j])))
                magnitude.append(abs(Double(alpha)) * size + (beta == 0 ? 0 : abs(Double(beta) * Double(c0[i * ldc + j]))))
                out.append(Double(c[i * ldc + j]))
            }
            if !(c[i * ldc + n].bitPattern == c0[i * ldc + n].bitPattern) { paddingIntact = false }
        }
        let difference = zip(out, ref).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
        let size = magnitude.reduce(0.0) { $0 + $1 * $1 }.squareRoot()
        return (relativeError(out, ref), size > 0 ? difference / size : difference, paddingIntact)
    }

    /// `values = f(values + bias)`.
    public mutating func biasActivation(rows: Int, columns: Int, activation: Activation) throws -> Double {
        let v = random(rows * columns, scale: 2), bias = random(columns)
        let (pv, pb) = (try upload(v), try upload(bias))
        defer { backend.free(pv); backend.free(pb) }
        try parts().biasActivationForward(values: pv, bias: pb, rows: rows, columns: columns, activation: activation)
        let out = backend.download(pv, count: rows * columns).map(Double.init)
        let ref = (0..<rows * columns).map { i in ReferenceMLP.activate(Double(v[i]) + Double(bias[i % columns]), activation) }
        return relativeError(out, ref)
    }

    /// `gradient *= f'(z)` from the outputs, and the column sums into `biasGradient`. Returns the larger of the
    /// two relative errors.
    public mutating func activationBackward(rows: Int, columns: Int, activation: Activation) throws -> Double {
        let z = random(rows * columns, scale: 2)
        let outputs = z.map { Float(ReferenceMLP.activate(Double($0), activation)) }
        let g = random(rows * columns)
        let (pg, po, pdb) = (try upload(g), try upload(outputs), try poisoned(columns))
        defer { backend.free(pg); backend.free(po); backend.free(pdb) }
        try parts().activationBackward(gradient: pg, biasGradient: pdb, outputs: po, rows: rows, columns: columns, activation: activation)
        let dz = backend.download(pg, count: rows * columns).map(Double.init)
        let db = backend.download(pdb, count: columns).map(Double.init)
        let refDz = (0..<rows * columns).map { i in Double(g[i]) * ReferenceMLP.derivative(fromOutput: Double(outputs[i]), activation) }
        let refDb = (0..<columns).map { c in (0..<rows).reduce(0.0) { $0 + refDz[$1 * columns + c] } }
        return max(relativeError(dz, refDz), relativeError(db, refDb))
    }

    /// The fused layer operations, as a training step uses them: `denseForward` of a layer
    /// (`[rows, inputSize] → [rows, hiddenSize]`, activation `activation`) and then `denseBackward` of the layer after
    /// it (`hiddenSize → outputSize`), whose input gradient goes back through that activation. Returns the largest
    /// relative error of the forward outputs, the weight gradient, the input gradient and the bias gradient. The
    /// backward's references are computed from the backend's own forward outputs, so an error in the forward is
    /// not counted twice.
    public mutating func denseLayers(rows: Int, inputSize: Int, hiddenSize: Int, outputSize: Int, activation: Activation) throws -> Double {
        let x = random(rows * inputSize), w1 = random(inputSize * hiddenSize, scale: 0.5), b1 = random(hiddenSize)
        let w2 = random(hiddenSize * outputSize, scale: 0.5), dz2 = random(rows * outputSize)
        let (px, pw1, pb1, pw2, pdz2) = (try upload(x), try upload(w1), try upload(b1), try upload(w2), try upload(dz2))
        let (pa1, pdw2, pdz1, pdb1) = (try poisoned(rows * hiddenSize), try poisoned(hiddenSize * outputSize), try poisoned(rows * hiddenSize), try poisoned(hiddenSize))
        defer { for p in [px, pw1, pb1, pw2, pdz2, pa1, pdw2, pdz1, pdb1] { backend.free(p) } }
        backend.denseForward(outputs: pa1, inputs: px, weights: pw1, bias: pb1, rows: rows, inputSize: inputSize, outputSize: hiddenSize, activation: activation)
        backend.denseBackward(weightGradient: pdw2, inputGradient: pdz1, inputBiasGradient: pdb1, gradient: pdz2, inputs: pa1, weights: pw2, rows: rows, inputSize: hiddenSize, outputSize: outputSize, inputActivation: activation)
        let a1 = backend.download(pa1, count: rows * hiddenSize)
        let dw2 = backend.download(pdw2, count: hiddenSize * outputSize).map(Double.init)
        let dz1 = backend.download(pdz1, count: rows * hiddenSize).map(Double.init)
        let db1 = backend.download(pdb1, count: hiddenSize).map(Double.init)
        var refA1 = [Double](), refDw2 = [Double](repeating: 0, count: hiddenSize * outputSize)
        var refDz1 = [Double](repeating: 0, count: rows * hiddenSize), refDb1 = [Double](repeating: 0, count: hiddenSize)
        for r in 0..<rows {
            for h in 0..<hiddenSize {
                var z = Double(b1[h])
                for i in 0..<inputSize { z += Double(x[r * inputSize + i]) * Double(w1[i * hiddenSize + h]) }
                refA1.append(ReferenceMLP.activate(z, activation))
                let a = Double(a1[r * hiddenSize + h])
                var g = 0.0
                for o in 0..<outputSize {
                    let d = Double(dz2[r * outputSize + o])
                    refDw2[h * outputSize + o] += a * d
                    g += d * Double(w2[h * outputSize + o])
                }
                let derivative = ReferenceMLP.derivative(fromOutput: a, activation)
                refDz1[r * hiddenSize + h] = g * derivative
                refDb1[h] += g * derivative
            }
        }
        return [relativeError(a1.map(Double.init), refA1), relativeError(dw2, refDw2), relativeError(dz1, refDz1), relativeError(db1, refDb1)].max()!
    }

    /// `outputLayerLoss`: logits, loss sum, gradient, bias gradient, correct count and predictions against a Double
    /// computation (with `withGradient` false, only the metrics and predictions, the evaluation's use). Returns
    /// the largest relative error and whether the counts and predictions are exact.
    public mutating func outputLayerLoss(rows: Int, inputSize: Int, outputSize: Int, loss: Loss, withGradient: Bool = true) throws -> (error: Double, countsExact: Bool) {
        let x = random(rows * inputSize), w = random(inputSize * outputSize, scale: Self.outputWeightScale(inputSize)), b = random(outputSize)
        let labels = (0..<rows).map { _ in Int32(generator.uniform(below: outputSize)) }
        let (px, pw, pb) = (try upload(x), try upload(w), try upload(b))
        let pl = try backend.allocate(copying: labels)
        let (pz, pg, pdb) = (try poisoned(rows * outputSize), try poisoned(rows * outputSize), try poisoned(outputSize))
        let pm = try upload([0.5, 2])
        let pp = try backend.allocate(copying: [Int32](repeating: -1, count: rows))
        defer { for p in [px, pw, pb, pz, pg, pdb, pm] { backend.free(p) }; backend.free(pl); backend.free(pp) }
        let scale = 1 / Float(rows)
        backend.outputLayerLoss(outputs: pz, gradient: withGradient ? pg : nil, biasGradient: withGradient ? pdb : nil, metrics: pm, predictions: pp, inputs: px, weights: pw, bias: pb, labels: pl, rows: rows, inputSize: inputSize, outputSize: outputSize, loss: loss, gradientScale: scale, backward: nil)
        let z = backend.download(pz, count: rows * outputSize).map(Double.init)
        let metrics = backend.download(pm, count: 2)
        let predictions: [Int32] = backend.download(pp, count: rows)
        var refZ = [Double](), refGrad = [Double](), refDb = [Double](repeating: 0, count: outputSize)
        var refLoss = 0.0, refCorrect = 0
        var refPredictions = [Int32]()
        for r in 0..<rows {
            let reference = Self.referenceOutputRow(r, x: x, w: w, b: b, inputSize: inputSize, outputSize: outputSize,
                                                    label: Int(labels[r]), loss: loss, scale: scale)
            refZ += reference.logits
            let best = Self.prediction(fromRow: r, of: z, outputSize: outputSize)
            refPredictions.append(Int32(best))
            if best == Int(labels[r]) { refCorrect += 1 }
            refLoss += reference.loss
            refGrad += reference.gradient
            for c in 0..<outputSize { refDb[c] += reference.gradient[c] }
        }
        var errors = [relativeError(z, refZ), abs(Double(metrics[0]) - 0.5 - refLoss) / max(abs(refLoss), 1)]
        if withGradient {
            errors.append(relativeError(backend.download(pg, count: rows * outputSize).map(Double.init), refGrad, floor: 1e-3))
            errors.append(relativeError(backend.download(pdb, count: outputSize).map(Double.init), refDb, floor: 1e-3))
        }
        return (errors.max()!, metrics[1] == Float(2 + refCorrect) && predictions == refPredictions)
    }

    /// The standard deviation of the output layer's random weights: 0.5, or 1/√inputSize when smaller, as a layer's
    /// initialization would make it, so that the logits stay of order one. With 0.5 at thousands of inputs the
    /// logits were some 30 apart, the softmax saturated, and its gradient magnified the products' rounding: in TF32
    /// (a 10-bit mantissa) 2.6e-3 relative error at 3700 inputs against the 1e-3 bound, where fp32 was at 8.7e-7.
    static func outputWeightScale(_ inputSize: Int) -> Float { min(0.5, 1 / Float(inputSize).squareRoot()) }

    /// Row `r` of the output layer in Double: its logits `b + x_r · w`, its loss and its gradient times `scale`.
    static func referenceOutputRow(_ r: Int, x: [Float], w: [Float], b: [Float], inputSize: Int, outputSize: Int,
                                   label: Int, loss: Loss, scale: Float) -> (logits: [Double], loss: Double, gradient: [Double]) {
        let row = (0..<outputSize).map { c in
            (0..<inputSize).reduce(Double(b[c])) { $0 + Double(x[r * inputSize + $1]) * Double(w[$1 * outputSize + c]) }
        }
        switch loss {
        case .softmaxCrossEntropy:
            let m = row.max()!
            let lse = m + Foundation.log(row.map { Foundation.exp($0 - m) }.reduce(0, +))
            return (row, lse - row[label], (0..<outputSize).map { c in Double(scale) * (Foundation.exp(row[c] - lse) - (c == label ? 1 : 0)) })
        case .meanSquaredError:
            let d = (0..<outputSize).map { c in row[c] - (c == label ? 1 : 0) }
            return (row, d.reduce(0) { $0 + $1 * $1 }, d.map { Double(scale) * 2 * $0 })
        case .squaredError, .huber:
            preconditionFailure("\(loss.rawValue) is a regression loss: checked by regressionOutputLayerLoss")
        }
    }

    /// The largest of row `r`'s outputs in the backend's own logits `z` (the first on ties): a near tie must not
    /// fail a check on rounding.
    static func prediction(fromRow r: Int, of z: [Double], outputSize: Int) -> Int {
        let own = Array(z[r * outputSize..<(r + 1) * outputSize])
        return own.indices.max { own[$0] < own[$1] || (own[$0] == own[$1] && $0 > $1) }!
    }

    /// `outputLayerLoss` with its `backward`, as a training step uses it: the output layer (`inputSize → outputSize`) whose
    /// inputs are a previous layer's outputs through `activation`, its loss, gradient and bias gradient, then its
    /// weight gradient, input gradient (through `activation`'s derivative) and the previous layer's bias gradient,
    /// each against a Double computation. Returns the largest relative error and whether the correct count is exact.
    public mutating func outputLayerBackward(rows: Int, inputSize: Int, outputSize: Int, loss: Loss, activation: Activation) throws -> (error: Double, countsExact: Bool) {
        // The inputs as the previous layer would store them: activated (ReLU's zeros included).
        let x = random(rows * inputSize, scale: 2).map { Float(ReferenceMLP.activate(Double($0), activation)) }
        let w = random(inputSize * outputSize, scale: Self.outputWeightScale(inputSize)), b = random(outputSize)
        let labels = (0..<rows).map { _ in Int32(generator.uniform(below: outputSize)) }
        let (px, pw, pb) = (try upload(x), try upload(w), try upload(b))
        let pl = try backend.allocate(copying: labels)
        let (pz, pg, pdb) = (try poisoned(rows * outputSize), try poisoned(rows * outputSize), try poisoned(outputSize))
        let (pdw, pdx, pdbx) = (try poisoned(inputSize * outputSize), try poisoned(rows * inputSize), try poisoned(inputSize))
        let pm = try upload([0.5, 2])
        defer { for p in [px, pw, pb, pz, pg, pdb, pdw, pdx, pdbx, pm] { backend.free(p) }; backend.free(pl) }
        let scale = 1 / Float(rows)
        backend.outputLayerLoss(
            outputs: pz, gradient: pg, biasGradient: pdb, metrics: pm, predictions: nil, inputs: px, weights: pw, bias: pb,
            labels: pl, rows: rows, inputSize: inputSize, outputSize: outputSize, loss: loss, gradientScale: scale,
            backward: LayerBackward(weightGradient: pdw, inputGradient: pdx, inputBiasGradient: pdbx, inputActivation: activation))
        let z = backend.download(pz, count: rows * outputSize).map(Double.init)
        let metrics = backend.download(pm, count: 2)
        var refZ = [Double](), refGrad = [Double](), refDb = [Double](repeating: 0, count: outputSize)
        var refDw = [Double](repeating: 0, count: inputSize * outputSize)
        var refDx = [Double](repeating: 0, count: rows * inputSize), refDbx = [Double](repeating: 0, count: inputSize)
        var refLoss = 0.0, refCorrect = 0
        for r in 0..<rows {
            let reference = Self.referenceOutputRow(r, x: x, w: w, b: b, inputSize: inputSize, outputSize: outputSize,
                                                    label: Int(labels[r]), loss: loss, scale: scale)
            refZ += reference.logits
            if Self.prediction(fromRow: r, of: z, outputSize: outputSize) == Int(labels[r]) { refCorrect += 1 }
            refLoss += reference.loss
            let g = reference.gradient
            refGrad += g
            for c in 0..<outputSize { refDb[c] += g[c] }
            for i in 0..<inputSize {
                var d = 0.0
                for c in 0..<outputSize {
                    refDw[i * outputSize + c] += Double(x[r * inputSize + i]) * g[c]
                    d += g[c] * Double(w[i * outputSize + c])
                }
                d *= ReferenceMLP.derivative(fromOutput: Double(x[r * inputSize + i]), activation)
                refDx[r * inputSize + i] = d
                refDbx[i] += d
            }
        }
        let errors = [
            relativeError(z, refZ), abs(Double(metrics[0]) - 0.5 - refLoss) / max(abs(refLoss), 1),
            relativeError(backend.download(pg, count: rows * outputSize).map(Double.init), refGrad, floor: 1e-3),
            relativeError(backend.download(pdb, count: outputSize).map(Double.init), refDb, floor: 1e-3),
            relativeError(backend.download(pdw, count: inputSize * outputSize).map(Double.init), refDw, floor: 1e-3),
            relativeError(backend.download(pdx, count: rows * inputSize).map(Double.init), refDx, floor: 1e-3),
            relativeError(backend.download(pdbx, count: inputSize).map(Double.init), refDbx, floor: 1e-3),
        ]
        return (errors.map { $0.isNaN ? .infinity : $0 }.max()!, metrics[1] == Float(2 + refCorrect))
    }

    /// Loss, gradient, correct count and predictions of `lossForwardBackward` with logits of scale `scale`
    /// (1e4 tests overflow). Returns the relative errors of the loss sum and gradient, and whether the counts
    /// and predictions are exact.
    public mutating func loss(rows: Int, columns: Int, loss: Loss, scale: Float) throws -> (lossError: Double, gradientError: Double, countsExact: Bool) {
        let z = random(rows * columns, scale: scale)
        let labels = (0..<rows).map { _ in Int32(generator.uniform(below: columns)) }
        let pz = try upload(z)
        let pl = try backend.allocate(copying: labels)
        let pg = try poisoned(rows * columns)
        let pm = try upload([0.5, 2])  // accumulates onto what is there
        let pp = try backend.allocate(copying: [Int32](repeating: -1, count: rows))
        defer { backend.free(pz); backend.free(pl); backend.free(pg); backend.free(pm); backend.free(pp) }
        let scaleFactor = 1 / Float(rows)
        try parts().lossForwardBackward(gradient: pg, metrics: pm, predictions: pp, outputs: pz, labels: pl, rows: rows, columns: columns, loss: loss, gradientScale: scaleFactor)
        let grad = backend.download(pg, count: rows * columns).map(Double.init)
        let metrics = backend.download(pm, count: 2)
        let predictions: [Int32] = backend.download(pp, count: rows)
        var refLoss = 0.0, refCorrect = 0
        var refGrad = [Double]()
        var refPredictions = [Int32]()
        for r in 0..<rows {
            let row = z[r * columns..<(r + 1) * columns].map(Double.init)
            let best = row.indices.max { row[$0] < row[$1] || (row[$0] == row[$1] && $0 > $1) }!
            refPredictions.append(Int32(best))
            if best == Int(labels[r]) { refCorrect += 1 }
            switch loss {
            case .softmaxCrossEntropy:
                let m = row.max()!
                let lse = m + Foundation.log(row.map { Foundation.exp($0 - m) }.reduce(0, +))
                refLoss += lse - row[Int(labels[r])]
                for c in 0..<columns { refGrad.append(Double(scaleFactor) * (Foundation.exp(row[c] - lse) - (c == Int(labels[r]) ? 1 : 0))) }
            case .meanSquaredError:
                for c in 0..<columns {
                    let d = row[c] - (c == Int(labels[r]) ? 1 : 0)
                    refLoss += d * d
                    refGrad.append(Double(scaleFactor) * 2 * d)
                }
            case .squaredError, .huber:
                preconditionFailure("\(loss.rawValue) is a regression loss: checked by regressionLoss")
            }
        }
        let lossError = abs(Double(metrics[0]) - 0.5 - refLoss) / max(abs(refLoss), 1)
        let countsExact = metrics[1] == Float(2 + refCorrect) && predictions == refPredictions
        // Each entry of the gradient (p - y, or 2(z - y), times the scale) is a difference of numbers up to about 1
        // computed in fp32, so its error is of the order of fp32's rounding of 1 (6e-8) times the scale, however small
        // the entry: a saturated softmax (one row of two logits times 30) has entries near 1e-3 whose relative error
        // is 1e-5 for that reason alone. The norm is held relative to at least 0.01 × scale per entry, the smallest
        // norm those roundings leave at 1e-5 relative.
        let floor = max(1e-3, 0.01 * Double(scaleFactor) * Double(rows * columns).squareRoot())
        return (lossError, relativeError(grad, refGrad, floor: floor), countsExact)
    }

    /// A regression's output layer (`regressionOutputLayerLoss`, without the backward: that is `denseBackward`'s
    /// check): its outputs, the loss's gradient, the bias gradient and both metrics, against a Double computation,
    /// with each batch row's targets at a random row of a table of `tableRows`. Targets are spread wider than the
    /// outputs, so Huber's two regimes both occur. Returns the largest relative error.
    public mutating func regressionOutputLayer(rows: Int, inputSize: Int, outputSize: Int, tableRows: Int, loss: Loss) throws -> Double {
        let x = random(rows * inputSize), w = random(inputSize * outputSize, scale: 1 / Float(inputSize).squareRoot())
        let b = random(outputSize), table = random(tableRows * outputSize, scale: 1.5)
        let sampleRows = (0..<rows).map { _ in Int32(generator.uniform(below: tableRows)) }
        let (px, pw, pb, pt) = (try upload(x), try upload(w), try upload(b), try upload(table))
        let pr = try backend.allocate(copying: sampleRows)
        let (pz, pg, pdb) = (try poisoned(rows * outputSize), try poisoned(rows * outputSize), try poisoned(outputSize))
        let pm = try upload([0.5, 2])  // accumulates onto what is there
        defer { for p in [px, pw, pb, pt, pz, pg, pdb, pm] { backend.free(p) }; backend.free(pr) }
        let scale = 1 / Float(rows)
        backend.regressionOutputLayerLoss(
            outputs: pz, gradient: pg, biasGradient: pdb, metrics: pm, inputs: px, weights: pw, bias: pb,
            targets: RegressionTargets(rows: pr, table: pt), rows: rows, inputSize: inputSize, outputSize: outputSize,
            loss: loss, gradientScale: scale, backward: nil)
        let z = backend.download(pz, count: rows * outputSize).map(Double.init)
        let g = backend.download(pg, count: rows * outputSize).map(Double.init)
        let db = backend.download(pdb, count: outputSize).map(Double.init)
        let m = backend.download(pm, count: 2)
        var refZ = [Double](), refG = [Double](), refDB = [Double](repeating: 0, count: outputSize)
        var refLoss = 0.0, refSquares = 0.0
        for r in 0..<rows {
            for c in 0..<outputSize {
                let v = (0..<inputSize).reduce(Double(b[c])) { $0 + Double(x[r * inputSize + $1]) * Double(w[$1 * outputSize + c]) }
                let d = v - Double(table[Int(sampleRows[r]) * outputSize + c])
                let huber = loss == .huber
                refZ.append(v)
                refLoss += (huber ? (abs(d) <= 1 ? 0.5 * d * d : abs(d) - 0.5) : d * d) / Double(outputSize)
                refSquares += d * d
                let grad = Double(scale) * (huber ? min(max(d, -1), 1) : 2 * d) / Double(outputSize)
                refG.append(grad)
                refDB[c] += grad
            }
        }
        let errors = [
            relativeError(z, refZ), relativeError(g, refG, floor: 1e-3), relativeError(db, refDB, floor: 1e-3),
            abs(Double(m[0]) - 0.5 - refLoss) / max(refLoss, 1), abs(Double(m[1]) - 2 - refSquares) / max(refSquares, 1),
        ]
        return errors.map { $0.isNaN ? .infinity : $0 }.max()!
    }

    /// The batch gather from values of `valueType` (bytes, or floats of any sign and scale): returns whether inputs and
    /// labels are exactly what the definition gives.
    public mutating func gather(samples: Int, features: Int, batch: Int, valueType: SampleValueType = .uint8) throws -> Bool {
        let bytes = (0..<samples * features).map { _ in UInt8(generator.uniform(below: 256)) }
        let floats = (0..<samples * features).map { _ in Float(generator.gaussian() * 40) }
        let labels = (0..<samples).map { _ in Int32(generator.uniform(below: 300)) }
        let indices = (0..<batch).map { _ in Int32(generator.uniform(below: samples)) }
        let normalization = Normalization(scale: 0.0123, shift: -0.37)
        let values = valueType == .uint8 ? try backend.allocate(copying: bytes)
            : DevicePointer(address: try backend.allocate(copying: floats).address)
        let pl = try backend.allocate(copying: labels)
        let px = try poisoned(batch * features)
        let py = try backend.allocate(copying: [Int32](repeating: -1, count: batch))
        defer { backend.free(values); backend.free(pl); backend.free(px); backend.free(py) }
        indices.withUnsafeBufferPointer {
            backend.gatherBatch(BatchGather(inputs: px, labels: py, values: values, valueType: valueType, sourceLabels: pl,
                                            indices: $0, features: features, normalization: normalization))
        }
        let x = backend.download(px, count: batch * features)
        let y: [Int32] = backend.download(py, count: batch)
        for r in 0..<batch {
            let s = Int(indices[r])
            if y[r] != labels[s] { return false }
            for f in 0..<features {
                let i = s * features + f
                let expected = valueType == .uint8 ? normalization.apply(bytes[i]) : normalization.apply(value: floats[i])
                if x[r * features + f] != expected { return false }
            }
        }
        return true
    }

    /// The first layer's two products on a gathered batch of mostly-zero images (what a backend that skips the
    /// inputs' zeros sees): `Z = alpha·X·W + beta·Z` and `dW = alpha·Xᵀ·dZ + beta·dW`, X the batch `[batch,
    /// features]`. About an eighth of the pixels are nonzero, and some images and some pixels are zero throughout, so
    /// whole tiles of rows (or columns) of X are zero. Returns the larger relative error of the two results.
    public mutating func inputLayerProducts(samples: Int, features: Int, batch: Int, outputs: Int, alpha: Float = 1, beta: Float = 0) throws -> Double {
        var pixels = [UInt8](repeating: 0, count: samples * features)
        for s in 0..<samples where s % 7 != 3 {  // every seventh image blank
            for f in 0..<features where f % 11 >= 4 && generator.uniform(below: 10) < 2 {  // pixels 0–3 of 11 always 0
                pixels[s * features + f] = UInt8(1 + generator.uniform(below: 255))
            }
        }
        let labels = (0..<samples).map { _ in Int32(generator.uniform(below: 10)) }
        let indices = (0..<batch).map { _ in Int32(generator.uniform(below: samples)) }
        let (pp, pl) = (try backend.allocate(copying: pixels), try backend.allocate(copying: labels))
        let px = try poisoned(batch * features)
        let py = try backend.allocate(copying: [Int32](repeating: -1, count: batch))
        defer { backend.free(pp); backend.free(pl); backend.free(px); backend.free(py) }
        indices.withUnsafeBufferPointer {
            backend.gatherBatch(BatchGather(inputs: px, labels: py, values: pp, valueType: .uint8, sourceLabels: pl, indices: $0,
                                            features: features, normalization: .unit))
        }
        let x = backend.download(px, count: batch * features)
        // Forward: Z [batch, outputs] = X [batch, features] · W [features, outputs].
        let w = random(features * outputs), z0 = random(batch * outputs)
        // Weight gradient: dW [features, outputs] = Xᵀ [features, batch] · dZ [batch, outputs].
        let dz = random(batch * outputs), dw0 = random(features * outputs)
        let (pw, pz, pdz, pdw) = (try upload(w), try upload(beta == 0 ? [Float](repeating: .nan, count: z0.count) : z0),
                                  try upload(dz), try upload(beta == 0 ? [Float](repeating: .nan, count: dw0.count) : dw0))
        defer { backend.free(pw); backend.free(pz); backend.free(pdz); backend.free(pdw) }
        backend.gemm(transposeA: false, transposeB: false, m: batch, n: outputs, k: features, alpha: alpha, a: px, lda: features,
                     b: pw, ldb: outputs, beta: beta, c: pz, ldc: outputs)
        backend.gemm(transposeA: true, transposeB: false, m: features, n: outputs, k: batch, alpha: alpha, a: px, lda: features,
                     b: pdz, ldb: outputs, beta: beta, c: pdw, ldc: outputs)
        let z = backend.download(pz, count: batch * outputs).map(Double.init)
        let dwOut = backend.download(pdw, count: features * outputs).map(Double.init)
        var zRef = [Double](), dwRef = [Double]()
        for r in 0..<batch {
            for j in 0..<outputs {
                var sum = 0.0
                for f in 0..<features { sum += Double(x[r * features + f]) * Double(w[f * outputs + j]) }
                zRef.append(Double(alpha) * sum + (beta == 0 ? 0 : Double(beta) * Double(z0[r * outputs + j])))
            }
        }
        for f in 0..<features {
            for j in 0..<outputs {
                var sum = 0.0
                for r in 0..<batch { sum += Double(x[r * features + f]) * Double(dz[r * outputs + j]) }
                dwRef.append(Double(alpha) * sum + (beta == 0 ? 0 : Double(beta) * Double(dw0[f * outputs + j])))
            }
        }
        return max(relativeError(z, zRef), relativeError(dwOut, dwRef))
    }

    /// One optimizer update against the closed-form formula computed in Double. Returns the relative errors of
    /// the parameters and of the state.
    ///
    /// With a `gap`, the state's slots are `count + gap` floats apart (one layer's part of a network's buffer,
    /// `stateStride`), and the state error is infinite if a float of the gaps changed.
    public mutating func optimizer(_ configuration: OptimizerConfiguration, count: Int, gap: Int = 0, step: Int, learningRate: Float) throws -> (parameters: Double, state: Double) {
        let p = random(count), g = random(count)
        let slots = configuration.stateSlots, stride = count + gap
        // Adam's second moment must be non-negative.
        var s = random(slots * stride, scale: 0.1)
        if slots == 2 { for i in stride..<2 * stride { s[i] = abs(s[i]) } }
        let (pp, pg, ps) = (try upload(p), try upload(g), try upload(s.isEmpty ? [0] : s))
        defer { backend.free(pp); backend.free(pg); backend.free(ps) }
        let update = configuration.step(step, learningRate: learningRate)
        backend.optimizerUpdate(ParameterUpdate(parameters: pp, gradients: pg, state: ps, count: count, stateStride: stride, step: update))
        let outP = backend.download(pp, count: count).map(Double.init)
        let all = backend.download(ps, count: slots * stride)
        for slot in 0..<slots where all[slot * stride + count..<(slot + 1) * stride] != s[slot * stride + count..<(slot + 1) * stride] {
            return (.infinity, .infinity)
        }
        let outS = (0..<slots).flatMap { all[$0 * stride..<$0 * stride + count] }.map(Double.init)
        s = (0..<slots).flatMap { s[$0 * stride..<$0 * stride + count] }
        var refP = [Double](), refS = s.map(Double.init)
        let (lr, wd) = (Double(learningRate), Double(configuration.weightDecay))
        for i in 0..<count {
            var param = Double(p[i])
            var d = Double(g[i])
            switch configuration.kind {
            case .sgd:
                d += wd * param
                if slots == 1 {
                    let mu = Double(configuration.momentum)
                    refS[i] = mu * refS[i] + d
                    d = configuration.nesterov ? d + mu * refS[i] : refS[i]
                }
                param -= lr * d
            case .adam, .adamw:
                if configuration.kind == .adamw { param *= 1 - lr * wd } else { d += wd * param }
                let (b1, b2) = (Double(configuration.beta1), Double(configuration.beta2))
                refS[i] = b1 * refS[i] + (1 - b1) * d
                refS[count + i] = b2 * refS[count + i] + (1 - b2) * d * d
                let mHat = refS[i] / (1 - Foundation.pow(b1, Double(step)))
                let vHat = refS[count + i] / (1 - Foundation.pow(b2, Double(step)))
                param -= lr * mHat / (vHat.squareRoot() + Double(configuration.epsilon))
            }
            refP.append(param)
        }
        // Relative error of the *change*, so that a wrong update is not hidden by the size of the parameters.
        let change = zip(outP, p).map { $0 - Double($1) }, refChange = zip(refP, p).map { $0 - Double($1) }
        return (relativeError(change, refChange), slots == 0 ? 0 : relativeError(outS, refS))
    }
}
