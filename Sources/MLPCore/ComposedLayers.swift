/// A backend built from plain parts: it implements the elementwise and loss passes below, and gets the layer
/// operations of `Backend` as their compositions (which are also the definitions a fusing backend must match, and
/// what it falls back to where it does not fuse).
public protocol ComposedLayers: Backend {
    /// Forward of a layer's bias and activation, in place: `values[r, c] = f(values[r, c] + bias[c])`.
    /// - Parameters: values `[rows, columns]`; bias `[columns]`.
    func biasActivationForward(
        values: DevicePointer<Float>, bias: DevicePointer<Float>, rows: Int, columns: Int, activation: Activation)

    /// Backward of `biasActivationForward`, fused with the bias gradient:
    /// `gradient[r, c] *= f'(z)` (from the stored outputs), then `biasGradient[c] = Σ_r gradient[r, c]`.
    /// - Parameters: gradient `[rows, columns]`, in place; biasGradient `[columns]`, overwritten;
    ///   outputs `[rows, columns]`, the forward's `values`.
    func activationBackward(
        gradient: DevicePointer<Float>, biasGradient: DevicePointer<Float>, outputs: DevicePointer<Float>,
        rows: Int, columns: Int, activation: Activation)

    /// The loss of a batch, and optionally its gradient, in one pass.
    ///
    /// - Parameters:
    ///   - gradient: `[rows, columns]`, if given: `gradientScale × ∂loss_r/∂outputs[r, c]` (the trainer passes 1/B
    ///     so that the gradient is of the batch mean).
    ///   - metrics: `[2]`, accumulated: `metrics[0] += Σ_r loss_r`, `metrics[1] += number of rows whose largest
    ///     output is at the label` (the first maximum wins ties).
    ///   - predictions: `[rows]`, if given: the index of each row's largest output.
    ///   - outputs: `[rows, columns]`, the last layer's values (logits for cross-entropy).
    ///   - labels: `[rows]`, each in `0..<columns`.
    ///   - rows: the batch's rows.
    ///   - columns: the outputs per row (classes).
    ///   - loss: softmax cross-entropy (on logits) or squared error (against the one-hot label).
    ///   - gradientScale: the factor applied to the gradient.
    func lossForwardBackward(
        gradient: DevicePointer<Float>?, metrics: DevicePointer<Float>, predictions: DevicePointer<Int32>?,
        outputs: DevicePointer<Float>, labels: DevicePointer<Int32>, rows: Int, columns: Int,
        loss: Loss, gradientScale: Float)

    /// The regression loss of a batch (`loss` is `.squaredError` or `.huber`), and optionally its gradient, in one
    /// pass over `d = outputs[r, c] − targets.table[targets.rows[r], c]`:
    /// - `loss_r = (1/columns) Σ_c loss.regressionTerm(d)`; `metrics[0] += Σ_r loss_r`;
    /// - `metrics[1] += Σ_r Σ_c d²` (the squared error, whatever the loss: the trainer reports it as an RMSE);
    /// - `gradient[r, c] = gradientScale × loss.regressionDerivative(d) / columns`, if given.
    func regressionLoss(
        gradient: DevicePointer<Float>?, metrics: DevicePointer<Float>, outputs: DevicePointer<Float>,
        targets: RegressionTargets, rows: Int, columns: Int, loss: Loss, gradientScale: Float)
}

extension ComposedLayers {
    public func denseForward(
        outputs: DevicePointer<Float>, inputs: DevicePointer<Float>, weights: DevicePointer<Float>,
        bias: DevicePointer<Float>, rows: Int, inputSize: Int, outputSize: Int, activation: Activation
    ) {
        composedDenseForward(outputs: outputs, inputs: inputs, weights: weights, bias: bias, rows: rows,
                             inputSize: inputSize, outputSize: outputSize, activation: activation)
    }

    public func denseBackward(
        weightGradient: DevicePointer<Float>, inputGradient: DevicePointer<Float>,
        inputBiasGradient: DevicePointer<Float>, gradient: DevicePointer<Float>, inputs: DevicePointer<Float>,
        weights: DevicePointer<Float>, rows: Int, inputSize: Int, outputSize: Int, inputActivation: Activation
    ) {
        composedDenseBackward(
            weightGradient: weightGradient, inputGradient: inputGradient, inputBiasGradient: inputBiasGradient,
            gradient: gradient, inputs: inputs, weights: weights, rows: rows, inputSize: inputSize,
            outputSize: outputSize, inputActivation: inputActivation)
    }

    public func outputLayerLoss(
        outputs: DevicePointer<Float>, gradient: DevicePointer<Float>?, biasGradient: DevicePointer<Float>?,
        metrics: DevicePointer<Float>, predictions: DevicePointer<Int32>?, inputs: DevicePointer<Float>,
        weights: DevicePointer<Float>, bias: DevicePointer<Float>, labels: DevicePointer<Int32>,
        rows: Int, inputSize: Int, outputSize: Int, loss: Loss, gradientScale: Float, backward: LayerBackward?
    ) {
        composedOutputLayerLoss(
            outputs: outputs, gradient: gradient, biasGradient: biasGradient, metrics: metrics,
            predictions: predictions, inputs: inputs, weights: weights, bias: bias, labels: labels, rows: rows,
            inputSize: inputSize, outputSize: outputSize, loss: loss, gradientScale: gradientScale, backward: backward)
    }

    public func regressionOutputLayerLoss(
        outputs: DevicePointer<Float>, gradient: DevicePointer<Float>?, biasGradient: DevicePointer<Float>?,
        metrics: DevicePointer<Float>, inputs: DevicePointer<Float>, weights: DevicePointer<Float>,
        bias: DevicePointer<Float>, targets: RegressionTargets, rows: Int, inputSize: Int, outputSize: Int,
        loss: Loss, gradientScale: Float, backward: LayerBackward?
    ) {
        composedRegressionOutputLayerLoss(
            outputs: outputs, gradient: gradient, biasGradient: biasGradient, metrics: metrics, inputs: inputs,
            weights: weights, bias: bias, targets: targets, rows: rows, inputSize: inputSize, outputSize: outputSize,
            loss: loss, gradientScale: gradientScale, backward: backward)
    }

    /// `denseForward`, `regressionLoss`, the gradient's column sums, then `denseBackward` with `backward`: the
    /// definition of `regressionOutputLayerLoss`.
    public func composedRegressionOutputLayerLoss(
        outputs: DevicePointer<Float>, gradient: DevicePointer<Float>?, biasGradient: DevicePointer<Float>?,
        metrics: DevicePointer<Float>, inputs: DevicePointer<Float>, weights: DevicePointer<Float>,
        bias: DevicePointer<Float>, targets: RegressionTargets, rows: Int, inputSize: Int, outputSize: Int,
        loss: Loss, gradientScale: Float, backward: LayerBackward?
    ) {
        precondition(loss.isRegression, "\(loss.rawValue) is not a regression loss")
        denseForward(outputs: outputs, inputs: inputs, weights: weights, bias: bias, rows: rows,
                     inputSize: inputSize, outputSize: outputSize, activation: .identity)
        regressionLoss(gradient: gradient, metrics: metrics, outputs: outputs, targets: targets, rows: rows,
                       columns: outputSize, loss: loss, gradientScale: gradientScale)
        composedOutputLayerBackward(gradient: gradient, biasGradient: biasGradient, outputs: outputs, inputs: inputs,
                                    weights: weights, rows: rows, inputSize: inputSize, outputSize: outputSize, backward: backward)
    }

    /// `gemm` then `biasActivationForward`: the definition of `denseForward`.
    public func composedDenseForward(
        outputs: DevicePointer<Float>, inputs: DevicePointer<Float>, weights: DevicePointer<Float>,
        bias: DevicePointer<Float>, rows: Int, inputSize: Int, outputSize: Int, activation: Activation
    ) {
        // Z [B, out] = X [B, in] · W [in, out]
        gemm(transposeA: false, transposeB: false, m: rows, n: outputSize, k: inputSize,
             alpha: 1, a: inputs, lda: inputSize, b: weights, ldb: outputSize, beta: 0, c: outputs, ldc: outputSize)
        biasActivationForward(values: outputs, bias: bias, rows: rows, columns: outputSize, activation: activation)
    }

    /// Two `gemm`s and `activationBackward`: the definition of `denseBackward`.
    public func composedDenseBackward(
        weightGradient: DevicePointer<Float>, inputGradient: DevicePointer<Float>,
        inputBiasGradient: DevicePointer<Float>, gradient: DevicePointer<Float>, inputs: DevicePointer<Float>,
        weights: DevicePointer<Float>, rows: Int, inputSize: Int, outputSize: Int, inputActivation: Activation
    ) {
        // dW [in, out] = Xᵀ [in, B] · dZ [B, out]
        gemm(transposeA: true, transposeB: false, m: inputSize, n: outputSize, k: rows,
             alpha: 1, a: inputs, lda: inputSize, b: gradient, ldb: outputSize,
             beta: 0, c: weightGradient, ldc: outputSize)
        // dX [B, in] = dZ [B, out] · Wᵀ [out, in]
        gemm(transposeA: false, transposeB: true, m: rows, n: inputSize, k: outputSize,
             alpha: 1, a: gradient, lda: outputSize, b: weights, ldb: outputSize,
             beta: 0, c: inputGradient, ldc: inputSize)
        // dZ_prev = dX ⊙ f'(X), and its column sums, in one pass.
        activationBackward(gradient: inputGradient, biasGradient: inputBiasGradient, outputs: inputs,
                           rows: rows, columns: inputSize, activation: inputActivation)
    }

    /// `denseForward`, `lossForwardBackward`, the gradient's column sums, then `denseBackward` with `backward`: the
    /// definition of `outputLayerLoss` (each part through this backend's own operation, which may be fused).
    public func composedOutputLayerLoss(
        outputs: DevicePointer<Float>, gradient: DevicePointer<Float>?, biasGradient: DevicePointer<Float>?,
        metrics: DevicePointer<Float>, predictions: DevicePointer<Int32>?, inputs: DevicePointer<Float>,
        weights: DevicePointer<Float>, bias: DevicePointer<Float>, labels: DevicePointer<Int32>,
        rows: Int, inputSize: Int, outputSize: Int, loss: Loss, gradientScale: Float, backward: LayerBackward?
    ) {
        denseForward(outputs: outputs, inputs: inputs, weights: weights, bias: bias, rows: rows,
                     inputSize: inputSize, outputSize: outputSize, activation: .identity)
        lossForwardBackward(gradient: gradient, metrics: metrics, predictions: predictions, outputs: outputs,
                            labels: labels, rows: rows, columns: outputSize, loss: loss, gradientScale: gradientScale)
        composedOutputLayerBackward(gradient: gradient, biasGradient: biasGradient, outputs: outputs, inputs: inputs,
                                    weights: weights, rows: rows, inputSize: inputSize, outputSize: outputSize, backward: backward)
    }

    /// The tail both output layers share, given the loss's gradient: the bias gradient (the gradient's column sums),
    /// then, with `backward`, the layer's backward (`denseBackward`). Without a gradient, nothing (an evaluation).
    func composedOutputLayerBackward(
        gradient: DevicePointer<Float>?, biasGradient: DevicePointer<Float>?, outputs: DevicePointer<Float>,
        inputs: DevicePointer<Float>, weights: DevicePointer<Float>, rows: Int, inputSize: Int, outputSize: Int,
        backward: LayerBackward?
    ) {
        guard let gradient, let biasGradient else {
            return precondition(backward == nil, "an output layer's backward needs its gradient and bias gradient")
        }
        // The identity's derivative is 1: this pass only sums the columns.
        activationBackward(gradient: gradient, biasGradient: biasGradient, outputs: outputs, rows: rows,
                           columns: outputSize, activation: .identity)
        if let backward {
            denseBackward(
                weightGradient: backward.weightGradient, inputGradient: backward.inputGradient,
                inputBiasGradient: backward.inputBiasGradient, gradient: gradient, inputs: inputs,
                weights: weights, rows: rows, inputSize: inputSize, outputSize: outputSize,
                inputActivation: backward.inputActivation)
        }
    }
}

extension ParameterUpdate {
    /// The update's gather, if any, on `backend` (for backends that run the two in turn).
    public func gatherAfterwards(on backend: some Backend) {
        if let thenGather { backend.gatherBatch(thenGather) }
    }
}
