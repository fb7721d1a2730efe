import Foundation
import MNIST

/// A backend that forwards every operation to another and measures how long each takes, to show where the time of
/// a training step goes. Each operation is followed by `synchronize()` (free on the CPU; on a GPU it serialises
/// the stream, so the total is an upper bound there).
public final class ProfilingBackend: ComposedLayers {
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
    public func makeBatchUploader(buffers: Int, bytes: Int) throws -> any BatchUploader {
        try inner.makeBatchUploader(buffers: buffers, bytes: bytes)
    }
    public var memoryAvailable: (free: Int, total: Int)? { inner.memoryAvailable }

    public func gatherBatch(_ gather: BatchGather) {
        measure("gather \(gather.indices.count)×\(gather.features)") { inner.gatherBatch(gather) }
    }

    public func gemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: DevicePointer<Float>, lda: Int, b: DevicePointer<Float>, ldb: Int, beta: Float, c: DevicePointer<Float>, ldc: Int) {
        measure("gemm \(m)×\(n)×\(k) \(transposeA ? "T" : "N")\(transposeB ? "T" : "N")") {
            inner.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        }
    }

    /// The inner backend's parts (it conforms to `ComposedLayers`, as every backend here does), each measured.
    private var parts: any ComposedLayers {
        guard let parts = inner as? any ComposedLayers else {
            preconditionFailure("the \(inner.name) backend does not fuse its layers and has no parts to compose them from")
        }
        return parts
    }

    public func biasActivationForward(values: DevicePointer<Float>, bias: DevicePointer<Float>, rows: Int, columns: Int, activation: Activation) {
        measure("bias+\(activation.rawValue) \(rows)×\(columns)") {
            parts.biasActivationForward(values: values, bias: bias, rows: rows, columns: columns, activation: activation)
        }
    }

    public func activationBackward(gradient: DevicePointer<Float>, biasGradient: DevicePointer<Float>, outputs: DevicePointer<Float>, rows: Int, columns: Int, activation: Activation) {
        measure("\(activation.rawValue) backward+bias grad \(rows)×\(columns)") {
            parts.activationBackward(gradient: gradient, biasGradient: biasGradient, outputs: outputs, rows: rows, columns: columns, activation: activation)
        }
    }

    public func lossForwardBackward(gradient: DevicePointer<Float>?, metrics: DevicePointer<Float>, predictions: DevicePointer<Int32>?, outputs: DevicePointer<Float>, labels: DevicePointer<Int32>, rows: Int, columns: Int, loss: Loss, gradientScale: Float) {
        measure("loss \(loss.rawValue) \(rows)×\(columns)") {
            parts.lossForwardBackward(gradient: gradient, metrics: metrics, predictions: predictions, outputs: outputs, labels: labels, rows: rows, columns: columns, loss: loss, gradientScale: gradientScale)
        }
    }

    public func regressionLoss(gradient: DevicePointer<Float>?, metrics: DevicePointer<Float>, outputs: DevicePointer<Float>, targets: RegressionTargets, rows: Int, columns: Int, loss: Loss, gradientScale: Float) {
        measure("loss \(loss.rawValue) \(rows)×\(columns)") {
            parts.regressionLoss(gradient: gradient, metrics: metrics, outputs: outputs, targets: targets, rows: rows, columns: columns, loss: loss, gradientScale: gradientScale)
        }
    }

    public var fusedOperations: FusedOperations { inner.fusedOperations }

    public func denseForward(outputs: DevicePointer<Float>, inputs: DevicePointer<Float>, weights: DevicePointer<Float>, bias: DevicePointer<Float>, rows: Int, inputSize: Int, outputSize: Int, activation: Activation) {
        guard fusedOperations.contains(.denseLayers) else {
            // Time the parts: this backend's own gemm and bias+activation, each measured.
            return composedDenseForward(outputs: outputs, inputs: inputs, weights: weights, bias: bias, rows: rows, inputSize: inputSize, outputSize: outputSize, activation: activation)
        }
        measure("dense forward \(rows)×\(outputSize)×\(inputSize) +bias \(activation.rawValue)") {
            inner.denseForward(outputs: outputs, inputs: inputs, weights: weights, bias: bias, rows: rows, inputSize: inputSize, outputSize: outputSize, activation: activation)
        }
    }

    public func denseBackward(weightGradient: DevicePointer<Float>, inputGradient: DevicePointer<Float>, inputBiasGradient: DevicePointer<Float>, gradient: DevicePointer<Float>, inputs: DevicePointer<Float>, weights: DevicePointer<Float>, rows: Int, inputSize: Int, outputSize: Int, inputActivation: Activation) {
        guard fusedOperations.contains(.denseLayers) else {
            return composedDenseBackward(weightGradient: weightGradient, inputGradient: inputGradient, inputBiasGradient: inputBiasGradient, gradient: gradient, inputs: inputs, weights: weights, rows: rows, inputSize: inputSize, outputSize: outputSize, inputActivation: inputActivation)
        }
        measure("dense backward \(rows)×\(inputSize)×\(outputSize) (dW, dX·\(inputActivation.rawValue)', bias grad)") {
            inner.denseBackward(weightGradient: weightGradient, inputGradient: inputGradient, inputBiasGradient: inputBiasGradient, gradient: gradient, inputs: inputs, weights: weights, rows: rows, inputSize: inputSize, outputSize: outputSize, inputActivation: inputActivation)
        }
    }

    public func outputLayerLoss(outputs: DevicePointer<Float>, gradient: DevicePointer<Float>?, biasGradient: DevicePointer<Float>?, metrics: DevicePointer<Float>, predictions: DevicePointer<Int32>?, inputs: DevicePointer<Float>, weights: DevicePointer<Float>, bias: DevicePointer<Float>, labels: DevicePointer<Int32>, rows: Int, inputSize: Int, outputSize: Int, loss: Loss, gradientScale: Float, backward: LayerBackward?) {
        guard fusedOperations.contains(.outputLayer) else {
            // Time the parts (this wrapper's own denseForward, loss and denseBackward).
            return composedOutputLayerLoss(outputs: outputs, gradient: gradient, biasGradient: biasGradient, metrics: metrics, predictions: predictions, inputs: inputs, weights: weights, bias: bias, labels: labels, rows: rows, inputSize: inputSize, outputSize: outputSize, loss: loss, gradientScale: gradientScale, backward: backward)
        }
        let label = backward.map { " + backward (dW, dX·\($0.inputActivation.rawValue)', bias grads)" } ?? (gradient == nil ? "" : " + gradient, bias grad")
        measure("output layer \(rows)×\(outputSize)×\(inputSize) + \(loss.rawValue)\(label)") {
            inner.outputLayerLoss(outputs: outputs, gradient: gradient, biasGradient: biasGradient, metrics: metrics, predictions: predictions, inputs: inputs, weights: weights, bias: bias, labels: labels, rows: rows, inputSize: inputSize, outputSize: outputSize, loss: loss, gradientScale: gradientScale, backward: backward)
        }
    }

    public func optimizerUpdate(_ update: ParameterUpdate) {
        measure("\(update.step.kind.rawValue) update \(update.count)") {
            var alone = update
            alone.thenGather = nil
            inner.optimizerUpdate(alone)
        }
        update.gatherAfterwards(on: self)
    }
}
