import Foundation
import MNIST

/// A backend that forwards every operation to another and measures how long each takes, to show where the time of
/// a training step goes. Each operation is followed by `synchronize()` (free on the CPU; on a GPU it serialises
/// the stream, so the total is an upper bound there).
public final class ProfilingBackend: Backend {
    public let inner: any Backend
    public var name: String { inner.name }
    public var deviceDescription: String { inner.deviceDescription }
    public var isHostMemory: Bool { inner.isHostMemory }

    /// Seconds and calls per operation label ("gemm 128×512×784 NT", "optimizer", …).
    public private(set) var totals: [String: (seconds: Double, calls: Int)] = [:]

    public init(_ inner: any Backend) { self.inner = inner }

    /// Forgets what was measured.
    public func reset() { totals = [:] }

    @inline(__always)
    private func measure(_ label: @autoclosure () -> String, _ body: () -> Void) {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        try? inner.synchronize()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let key = label()
        let old = totals[key] ?? (0, 0)
        totals[key] = (old.seconds + seconds, old.calls + 1)
    }

    public func allocate<T>(_ type: T.Type, count: Int) throws -> DevicePointer<T> { try inner.allocate(type, count: count) }
    public func free<T>(_ pointer: DevicePointer<T>) { inner.free(pointer) }
    public func upload<T>(_ source: UnsafeBufferPointer<T>, to destination: DevicePointer<T>) {
        measure("upload") { inner.upload(source, to: destination) }
    }
    public func download<T>(_ source: DevicePointer<T>, count: Int, into destination: UnsafeMutableBufferPointer<T>) {
        measure("download") { inner.download(source, count: count, into: destination) }
    }
    public func synchronize() throws { try inner.synchronize() }

    public func gatherBatch(inputs: DevicePointer<Float>, labels: DevicePointer<Int32>, pixels: DevicePointer<UInt8>, sourceLabels: DevicePointer<UInt8>, indices: UnsafeBufferPointer<Int32>, features: Int, normalization: Normalization) {
        measure("gather \(indices.count)×\(features)") {
            inner.gatherBatch(inputs: inputs, labels: labels, pixels: pixels, sourceLabels: sourceLabels, indices: indices, features: features, normalization: normalization)
        }
    }

    public func gemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: DevicePointer<Float>, lda: Int, b: DevicePointer<Float>, ldb: Int, beta: Float, c: DevicePointer<Float>, ldc: Int) {
        measure("gemm \(m)×\(n)×\(k) \(transposeA ? "T" : "N")\(transposeB ? "T" : "N")") {
            inner.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        }
    }

    public func biasActivationForward(values: DevicePointer<Float>, bias: DevicePointer<Float>, rows: Int, columns: Int, activation: Activation) {
        measure("bias+\(activation.rawValue) \(rows)×\(columns)") {
            inner.biasActivationForward(values: values, bias: bias, rows: rows, columns: columns, activation: activation)
        }
    }

    public func activationBackward(gradient: DevicePointer<Float>, biasGradient: DevicePointer<Float>, outputs: DevicePointer<Float>, rows: Int, columns: Int, activation: Activation) {
        measure("\(activation.rawValue) backward+bias grad \(rows)×\(columns)") {
            inner.activationBackward(gradient: gradient, biasGradient: biasGradient, outputs: outputs, rows: rows, columns: columns, activation: activation)
        }
    }

    public func lossForwardBackward(gradient: DevicePointer<Float>?, metrics: DevicePointer<Float>, predictions: DevicePointer<Int32>?, outputs: DevicePointer<Float>, labels: DevicePointer<Int32>, rows: Int, columns: Int, loss: Loss, gradientScale: Float) {
        measure("loss \(loss.rawValue) \(rows)×\(columns)") {
            inner.lossForwardBackward(gradient: gradient, metrics: metrics, predictions: predictions, outputs: outputs, labels: labels, rows: rows, columns: columns, loss: loss, gradientScale: gradientScale)
        }
    }

    public var fusesDenseLayers: Bool { inner.fusesDenseLayers }
    public var fusesOutputLayer: Bool { inner.fusesOutputLayer }

    public func denseForward(outputs: DevicePointer<Float>, inputs: DevicePointer<Float>, weights: DevicePointer<Float>, bias: DevicePointer<Float>, rows: Int, inputSize: Int, outputSize: Int, activation: Activation) {
        guard inner.fusesDenseLayers else {
            // Time the parts: this backend's own gemm and bias+activation, each measured.
            return unfusedDenseForward(outputs: outputs, inputs: inputs, weights: weights, bias: bias, rows: rows, inputSize: inputSize, outputSize: outputSize, activation: activation)
        }
        measure("dense forward \(rows)×\(outputSize)×\(inputSize) +bias \(activation.rawValue)") {
            inner.denseForward(outputs: outputs, inputs: inputs, weights: weights, bias: bias, rows: rows, inputSize: inputSize, outputSize: outputSize, activation: activation)
        }
    }

    public func denseBackward(weightGradient: DevicePointer<Float>, inputGradient: DevicePointer<Float>, inputBiasGradient: DevicePointer<Float>, gradient: DevicePointer<Float>, inputs: DevicePointer<Float>, weights: DevicePointer<Float>, rows: Int, inputSize: Int, outputSize: Int, inputActivation: Activation) {
        guard inner.fusesDenseLayers else {
            return unfusedDenseBackward(weightGradient: weightGradient, inputGradient: inputGradient, inputBiasGradient: inputBiasGradient, gradient: gradient, inputs: inputs, weights: weights, rows: rows, inputSize: inputSize, outputSize: outputSize, inputActivation: inputActivation)
        }
        measure("dense backward \(rows)×\(inputSize)×\(outputSize) (dW, dX·\(inputActivation.rawValue)', bias grad)") {
            inner.denseBackward(weightGradient: weightGradient, inputGradient: inputGradient, inputBiasGradient: inputBiasGradient, gradient: gradient, inputs: inputs, weights: weights, rows: rows, inputSize: inputSize, outputSize: outputSize, inputActivation: inputActivation)
        }
    }

    public func outputLayerLoss(outputs: DevicePointer<Float>, gradient: DevicePointer<Float>?, biasGradient: DevicePointer<Float>?, metrics: DevicePointer<Float>, predictions: DevicePointer<Int32>?, inputs: DevicePointer<Float>, weights: DevicePointer<Float>, bias: DevicePointer<Float>, labels: DevicePointer<Int32>, rows: Int, inputSize: Int, outputSize: Int, loss: Loss, gradientScale: Float) {
        guard inner.fusesOutputLayer else {
            return unfusedOutputLayerLoss(outputs: outputs, gradient: gradient, biasGradient: biasGradient, metrics: metrics, predictions: predictions, inputs: inputs, weights: weights, bias: bias, labels: labels, rows: rows, inputSize: inputSize, outputSize: outputSize, loss: loss, gradientScale: gradientScale)
        }
        measure("output layer \(rows)×\(outputSize)×\(inputSize) + \(loss.rawValue)\(gradient == nil ? "" : " + gradient, bias grad")") {
            inner.outputLayerLoss(outputs: outputs, gradient: gradient, biasGradient: biasGradient, metrics: metrics, predictions: predictions, inputs: inputs, weights: weights, bias: bias, labels: labels, rows: rows, inputSize: inputSize, outputSize: outputSize, loss: loss, gradientScale: gradientScale)
        }
    }

    public func outputLayerLossBackward(outputs: DevicePointer<Float>, gradient: DevicePointer<Float>, biasGradient: DevicePointer<Float>, metrics: DevicePointer<Float>, inputs: DevicePointer<Float>, weights: DevicePointer<Float>, bias: DevicePointer<Float>, labels: DevicePointer<Int32>, rows: Int, inputSize: Int, outputSize: Int, loss: Loss, gradientScale: Float, weightGradient: DevicePointer<Float>, inputGradient: DevicePointer<Float>, inputBiasGradient: DevicePointer<Float>, inputActivation: Activation) {
        guard inner.fusesOutputLayer else {
            // Time the parts (this wrapper's own outputLayerLoss and denseBackward).
            return unfusedOutputLayerLossBackward(outputs: outputs, gradient: gradient, biasGradient: biasGradient, metrics: metrics, inputs: inputs, weights: weights, bias: bias, labels: labels, rows: rows, inputSize: inputSize, outputSize: outputSize, loss: loss, gradientScale: gradientScale, weightGradient: weightGradient, inputGradient: inputGradient, inputBiasGradient: inputBiasGradient, inputActivation: inputActivation)
        }
        measure("output layer \(rows)×\(outputSize)×\(inputSize) + \(loss.rawValue) + backward (dW, dX·\(inputActivation.rawValue)', bias grads)") {
            inner.outputLayerLossBackward(outputs: outputs, gradient: gradient, biasGradient: biasGradient, metrics: metrics, inputs: inputs, weights: weights, bias: bias, labels: labels, rows: rows, inputSize: inputSize, outputSize: outputSize, loss: loss, gradientScale: gradientScale, weightGradient: weightGradient, inputGradient: inputGradient, inputBiasGradient: inputBiasGradient, inputActivation: inputActivation)
        }
    }

    public func optimizerUpdate(parameters: DevicePointer<Float>, gradients: DevicePointer<Float>, state: DevicePointer<Float>, count: Int, stateStride: Int, step: OptimizerStep) {
        measure("\(step.kind.rawValue) update \(count)") {
            inner.optimizerUpdate(parameters: parameters, gradients: gradients, state: state, count: count, stateStride: stateStride, step: step)
        }
    }
}
