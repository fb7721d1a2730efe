import Foundation
import MLPCore
import MNIST
import NaiveBackend
import Testing
import TestSupport

/// `Network.trainStep(_:batch:step:next:)` with a backend that gathers the next batch ahead: the steps that find
/// their batch gathered must give the same weights as steps that gather their own, and a step whose batch is not
/// the one gathered ahead (another batch, or the inputs used in between) must gather its own.
@Suite struct PrefetchTests {
    /// The naive backend, but `prefetchBatch` gathers at once and says so (the cuda backend does it on a stream of
    /// its own; what `Network` must get right is the same).
    final class GatheringAhead: Backend {
        let inner = NaiveBackend()
        var prefetches = 0, gathers = 0
        var name: String { "naive, gathering ahead" }
        var deviceDescription: String { inner.deviceDescription }
        var isHostMemory: Bool { true }
        func allocate<T>(_ type: T.Type, count: Int) throws -> DevicePointer<T> { try inner.allocate(type, count: count) }
        func free<T>(_ pointer: DevicePointer<T>) { inner.free(pointer) }
        func upload<T>(_ source: UnsafeBufferPointer<T>, to destination: DevicePointer<T>) { inner.upload(source, to: destination) }
        func download<T>(_ source: DevicePointer<T>, count: Int, into destination: UnsafeMutableBufferPointer<T>) {
            inner.download(source, count: count, into: destination)
        }
        func synchronize() throws {}
        func gatherBatch(inputs: DevicePointer<Float>, labels: DevicePointer<Int32>, pixels: DevicePointer<UInt8>, sourceLabels: DevicePointer<UInt8>, indices: UnsafeBufferPointer<Int32>, features: Int, normalization: Normalization) {
            gathers += 1
            inner.gatherBatch(inputs: inputs, labels: labels, pixels: pixels, sourceLabels: sourceLabels, indices: indices, features: features, normalization: normalization)
        }
        func prefetchBatch(inputs: DevicePointer<Float>, labels: DevicePointer<Int32>, pixels: DevicePointer<UInt8>, sourceLabels: DevicePointer<UInt8>, indices: UnsafeBufferPointer<Int32>, features: Int, normalization: Normalization) -> Bool {
            prefetches += 1
            inner.gatherBatch(inputs: inputs, labels: labels, pixels: pixels, sourceLabels: sourceLabels, indices: indices, features: features, normalization: normalization)
            return true
        }
        func gemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: DevicePointer<Float>, lda: Int, b: DevicePointer<Float>, ldb: Int, beta: Float, c: DevicePointer<Float>, ldc: Int) {
            inner.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        }
        func biasActivationForward(values: DevicePointer<Float>, bias: DevicePointer<Float>, rows: Int, columns: Int, activation: Activation) {
            inner.biasActivationForward(values: values, bias: bias, rows: rows, columns: columns, activation: activation)
        }
        func activationBackward(gradient: DevicePointer<Float>, biasGradient: DevicePointer<Float>, outputs: DevicePointer<Float>, rows: Int, columns: Int, activation: Activation) {
            inner.activationBackward(gradient: gradient, biasGradient: biasGradient, outputs: outputs, rows: rows, columns: columns, activation: activation)
        }
        func lossForwardBackward(gradient: DevicePointer<Float>?, metrics: DevicePointer<Float>, predictions: DevicePointer<Int32>?, outputs: DevicePointer<Float>, labels: DevicePointer<Int32>, rows: Int, columns: Int, loss: Loss, gradientScale: Float) {
            inner.lossForwardBackward(gradient: gradient, metrics: metrics, predictions: predictions, outputs: outputs, labels: labels, rows: rows, columns: columns, loss: loss, gradientScale: gradientScale)
        }
        func optimizerUpdate(parameters: DevicePointer<Float>, gradients: DevicePointer<Float>, state: DevicePointer<Float>, count: Int, step: OptimizerStep) {
            inner.optimizerUpdate(parameters: parameters, gradients: gradients, state: state, count: count, step: step)
        }
    }

    static let spec = try! NetworkSpec(layerSizes: [13, 9, 7, 5])

    static func images() throws -> LabeledImages {
        var g = SeededGenerator(seed: 11)
        let count = 61
        return try LabeledImages(
            pixels: (0..<count * 13).map { _ in UInt8(g.uniform(below: 256)) },
            labels: (0..<count).map { _ in UInt8(g.uniform(below: 5)) }, rows: 1, columns: 13, classCount: 5)
    }

    /// Trains `schedule` (each entry a batch, the batch offered ahead, and whether to evaluate after the step) and
    /// returns the parameters.
    static func train(_ backend: any Backend, _ schedule: [(batch: [Int32], next: [Int32]?, evaluate: Bool)]) throws -> [Float] {
        let optimizer = OptimizerConfiguration.adam(learningRate: 1e-2)
        let network = try Network(spec: spec, optimizer: optimizer, backend: backend, maxBatch: 17)
        var g = SeededGenerator(seed: 5)
        network.setParameters(ParameterLayout(spec).initialParameters(for: spec, using: &g))
        let data = try ResidentDataset(try images(), on: backend)
        for (i, s) in schedule.enumerated() {
            network.trainStep(data, batch: s.batch[...], step: optimizer.step(i + 1, learningRate: 1e-2), next: s.next?[...])
            if s.evaluate { _ = network.evaluate(data, indices: [3, 1, 4, 1, 5, 9, 2, 6]) }
        }
        return network.parameterValues()
    }

    @Test func stepsThatFindTheirBatchGatheredTrainAsIfTheyGatheredIt() throws {
        var g = SeededGenerator(seed: 2)
        let batches = (0..<7).map { b in (0..<Int32(b == 6 ? 10 : 17)).map { _ in Int32(g.uniform(below: 61)) } }
        let schedule = batches.indices.map { i in (batch: batches[i], next: i + 1 < batches.count ? batches[i + 1] : nil, evaluate: false) }
        let reference = try Self.train(NaiveBackend(), schedule)  // the default: nothing gathered ahead
        let ahead = GatheringAhead()
        #expect(try Self.train(ahead, schedule) == reference)
        #expect(ahead.gathers == 1 && ahead.prefetches == 6)
    }

    @Test func aStepWhoseBatchWasNotTheOneGatheredAheadGathersItsOwn() throws {
        var g = SeededGenerator(seed: 3)
        let batches = (0..<6).map { _ in (0..<Int32(17)).map { _ in Int32(g.uniform(below: 61)) } }
        var decoy = batches[2]
        decoy[16] = (decoy[16] + 1) % 61  // differs from batch 2 in one index only
        let schedule: [(batch: [Int32], next: [Int32]?, evaluate: Bool)] = [
            (batches[0], batches[1], true),   // an evaluation overwrites the batch gathered ahead
            (batches[1], decoy, false),       // a batch offered that is not the one that comes
            (batches[2], batches[3], false),
            (batches[3], Array(batches[4].prefix(9)), false),  // fewer rows than the step that comes
            (batches[4], batches[5], false),
            (batches[5], nil, false),
        ]
        let reference = try Self.train(NaiveBackend(), schedule)
        let ahead = GatheringAhead()
        #expect(try Self.train(ahead, schedule) == reference)
        // Four steps gather their own batch (the first, the one after the evaluation, the one after the decoy, the
        // one after the shortened batch) and the evaluation one (8 rows, in one batch of at most 17).
        #expect(ahead.gathers == 4 + 1 && ahead.prefetches == 5)
    }
}
