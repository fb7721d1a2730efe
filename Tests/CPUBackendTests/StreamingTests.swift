import CPUBackend
import Foundation
@testable import MLPCore
import MNIST
import NaiveBackend
import Synchronization
import Testing
import TestSupport

/// Data streamed from host memory a batch at a time (`StreamedDataset`) against the same data resident: the same
/// batches in the same order, gathered the same way, so the same weights bit for bit; passes that stop early, a
/// producer that fails, and the choice between the two (`DataPlacement`).
@Suite struct StreamingTests {
    /// 203 digits of 784 bytes in 10 classes: batches of 17 leave a last batch of 16, and a validation split of 31.
    static let images = LabeledSamples(syntheticImages(count: 203, rows: 28, columns: 28, classes: 10, seed: 11))

    /// 157 rows of 13 float features and two targets.
    static func table() throws -> LabeledSamples {
        var g = SeededGenerator(seed: 21)
        var values = [Float](), targets = [Float]()
        for _ in 0..<157 {
            let x = (0..<13).map { _ in Float(g.gaussian()) }
            values += x
            targets += [x[0] * x[1] + 0.3 * x[2], sin(x[3]) - x[4]]
        }
        return try LabeledSamples(values: .floats(values), sampleShape: [13], targets: targets, targetNames: ["a", "b"])
    }

    struct Run: Equatable {
        var weights: [Float]
        var history: [EpochMetrics]
    }

    /// Three epochs with a validation split evaluated after each (the training source serves both passes).
    /// - Parameter producers: the streamed source's producer threads (nil: the default for this machine).
    static func train(_ set: LabeledSamples, spec: NetworkSpec, on backend: any Backend, streamed: Bool, producers: Int? = nil) throws -> Run {
        let configuration = try TrainingConfiguration(
            network: spec, optimizer: .adam(learningRate: 2e-3), schedule: LearningRateSchedule(base: 2e-3),
            epochs: 3, batchSize: 17, seed: 4)
        let network = try Network(spec: spec, optimizer: configuration.optimizer, backend: backend, maxBatch: 40)
        var g = configuration.initializationGenerator
        network.setParameters(ParameterLayout(spec).initialParameters(for: spec, using: &g))
        let data: any BatchSource = streamed
            ? try StreamedDataset(set, on: backend, batchCapacity: network.maxBatch, uploader: nil, producers: producers)
            : try ResidentDataset(set, on: backend)
        let split = try ValidationSplit(count: set.count, validationCount: 31, seed: 4)
        let trainer = try Trainer(network: network, configuration: configuration, trainingData: data,
                                  trainingIndices: split.training, evaluation: (data, split.validation, "validation"))
        _ = try trainer.warmUp()
        var history = try trainer.run()
        for i in history.indices { history[i].seconds = 0; history[i].samplesPerSecond = 0 }
        return Run(weights: network.parameterValues() + network.optimizerStateValues(), history: history)
    }

    @Test(arguments: ["cpu", "naive"])
    func streamedTrainingGivesTheResidentWeights(backendName: String) throws {
        let backend: any Backend = backendName == "cpu" ? try CPUBackend(threads: 2) : NaiveBackend()
        let spec = try NetworkSpec(layerSizes: [784, 23, 10])
        let resident = try Self.train(Self.images, spec: spec, on: backend, streamed: false)
        // One producer thread, and three taking the batches in turn (six host buffers), as a GPU host runs four.
        for producers in [1, 3] {
            let streamed = try Self.train(Self.images, spec: spec, on: backend, streamed: true, producers: producers)
            #expect(streamed == resident, "\(producers) producers")
        }
        #expect(resident.history.last!.trainLoss < resident.history.first!.trainLoss, "the runs compared trained")
    }

    @Test func streamedRegressionGivesTheResidentWeightsAndErrors() throws {
        let backend = try CPUBackend(threads: 2)
        let spec = try NetworkSpec(layerSizes: [13, 19, 2], activation: .tanh, loss: .huber)
        let set = try Self.table()
        let resident = try Self.train(set, spec: spec, on: backend, streamed: false)
        let streamed = try Self.train(set, spec: spec, on: backend, streamed: true)
        #expect(streamed == resident)
        #expect(resident.history.last!.testRMSE != nil)
    }

    @Test func streamedEvaluationKeepsThePredictionsInOrder() throws {
        let backend = try CPUBackend(threads: 2)
        let spec = try NetworkSpec(layerSizes: [784, 31, 10])
        let network = try Network(spec: spec, optimizer: .adam(learningRate: 1e-3), backend: backend, maxBatch: 45)
        var g = SeededGenerator(seed: 8)
        network.setParameters(ParameterLayout(spec).initialParameters(for: spec, using: &g))
        // An order of its own (not ascending), 4 batches of 45 and one of 23.
        var indices = (0..<Int32(Self.images.count)).map { $0 }
        g.shuffle(&indices)
        let resident = network.evaluate(try ResidentDataset(Self.images, on: backend), indices: indices, keepPredictions: true)
        let stream = try StreamedDataset(Self.images, on: backend, batchCapacity: 45)
        let streamed = try network.evaluate(source: stream, indices: indices, keepPredictions: true)
        #expect(streamed.predictions == resident.predictions && streamed.loss == resident.loss && streamed.accuracy == resident.accuracy)
        #expect(streamed.predictions.count == indices.count)
        // Evaluated twice in a row (a second pass over the same windows): the same.
        #expect(try network.evaluate(source: stream, indices: indices).loss == resident.loss)
    }

    /// A pass ended after two of forty batches stops its producers (no hang), and the next pass is unaffected.
    @Test func aPassEndedEarlyStopsItsProducers() throws {
        let backend = try CPUBackend(threads: 2)
        let stream = try StreamedDataset(Self.images, on: backend, batchCapacity: 5, uploader: nil, producers: 2)
        let batches = (0..<40).map { b in Array((0..<5).map { Int32((b * 5 + $0) % Self.images.count) })[...] }
        let pass = try stream.pass(batches)
        _ = try pass.next()
        _ = try pass.next()
        pass.end()
        #expect(try pass.next() == nil)
        // A new pass while an old one is still running ends the old one.
        let abandoned = try stream.pass(batches)
        _ = try abandoned.next()
        let fresh = try stream.pass(Array(batches.prefix(3)))
        var seen = [[UInt8]]()
        while let batch = try fresh.next() {
            let window = UnsafeBufferPointer(start: batch.data.values.host, count: batch.rows.count * 784)
            seen.append(Array(window))
        }
        fresh.end()
        guard case .bytes(let all) = Self.images.values else { Issue.record("images are bytes"); return }
        let expected = batches.prefix(3).map { batch in batch.flatMap { all[Int($0) * 784..<(Int($0) + 1) * 784] } }
        #expect(seen == expected)
    }

    /// An interrupted streamed run, resumed, gives the weights of a run never stopped.
    @Test func anInterruptedStreamedRunResumesExactly() throws {
        let backend = try CPUBackend(threads: 2)
        let spec = try NetworkSpec(layerSizes: [784, 23, 10])
        let configuration = try TrainingConfiguration(
            network: spec, optimizer: .adam(learningRate: 2e-3), schedule: LearningRateSchedule(base: 2e-3),
            epochs: 2, batchSize: 17, seed: 4)
        func trainer(_ progress: TrainingProgress?, _ parameters: [Float]?, _ state: [Float]?) throws -> Trainer {
            let network = try Network(spec: spec, optimizer: configuration.optimizer, backend: backend, maxBatch: 17)
            var g = configuration.initializationGenerator
            network.setParameters(parameters ?? ParameterLayout(spec).initialParameters(for: spec, using: &g))
            if let state { network.setOptimizerState(state) }
            return try Trainer(network: network, configuration: configuration,
                               trainingData: try StreamedDataset(Self.images, on: backend, batchCapacity: 17),
                               trainingIndices: (0..<Int32(Self.images.count)).map { $0 }, evaluation: nil, progress: progress)
        }
        let whole = try trainer(nil, nil, nil)
        try whole.run()
        let stopped = try trainer(nil, nil, nil)
        var steps = 0
        stopped.shouldStop = { steps += 1; return steps == 5 }
        var progress: TrainingProgress?
        do {
            try stopped.run()
        } catch TrainingError.interrupted(let p) {
            progress = p
        }
        #expect(progress?.stepInEpoch == 5)
        let resumed = try trainer(progress, stopped.network.parameterValues(), stopped.network.optimizerStateValues())
        try resumed.run()
        #expect(resumed.network.parameterValues() == whole.network.parameterValues())
    }

    struct CopyFailed: Error {}

    /// Fails the host's wait for buffer reads after `after` waits.
    final class FailingUploader: BatchUploader, @unchecked Sendable {
        let inner = HostBatchUploader(count: 8, bytes: 1 << 20)  // as many buffers as any stream asks for
        let after: Int
        let waits = Mutex(0)
        init(after: Int) { self.after = after }
        var hostBuffers: [UnsafeMutableRawPointer] { inner.hostBuffers }
        var bufferBytes: Int { inner.bufferBytes }
        func waitUntilRead(_ buffer: Int) throws {
            if waits.withLock({ $0 += 1; return $0 > after }) { throw CopyFailed() }
        }
        func send(_ buffer: Int, ranges: [Range<Int>], to destination: DevicePointer<UInt8>) throws {
            try inner.send(buffer, ranges: ranges, to: destination)
        }
        func acquire(_ destination: DevicePointer<UInt8>) throws {}
        func release(_ destination: DevicePointer<UInt8>) throws {}
    }

    /// A producer's failure reaches the caller as an error (not a hang), from the batch it could not prepare.
    @Test func aProducersFailureIsThrown() throws {
        let backend = try CPUBackend(threads: 2)
        let stream = try StreamedDataset(Self.images, on: backend, batchCapacity: 5, uploader: FailingUploader(after: 3), producers: 2)
        let pass = try stream.pass((0..<20).map { b in Array((0..<5).map { Int32(b * 5 + $0) })[...] })
        var delivered = 0
        #expect(throws: CopyFailed.self) {
            while try pass.next() != nil { delivered += 1 }
        }
        #expect(delivered < 20)
        pass.end()
    }

    /// A training batch or an evaluation's batch larger than a stream's windows is refused when the trainer is made.
    @Test func batchesLargerThanTheStreamAreRefused() throws {
        let backend = try CPUBackend(threads: 2)
        let spec = try NetworkSpec(layerSizes: [784, 9, 10])
        let configuration = try TrainingConfiguration(
            network: spec, optimizer: .adam(learningRate: 1e-3), schedule: LearningRateSchedule(base: 1e-3), epochs: 1, batchSize: 17, seed: 1)
        let network = try Network(spec: spec, optimizer: configuration.optimizer, backend: backend, maxBatch: 40)
        let all = (0..<Int32(Self.images.count)).map { $0 }
        let small = try StreamedDataset(Self.images, on: backend, batchCapacity: 16)
        #expect(throws: ConfigurationError(flag: "--batch-size", value: "17", expected: "batches of at most the streamed dataset's capacity, 16 samples")) {
            try Trainer(network: network, configuration: configuration, trainingData: small, trainingIndices: all, evaluation: nil)
        }
        let resident = try ResidentDataset(Self.images, on: backend)
        #expect(throws: ConfigurationError(flag: "--batch-size", value: "40", expected: "batches of at most the streamed dataset's capacity, 16 samples")) {
            try Trainer(network: network, configuration: configuration, trainingData: resident, trainingIndices: all, evaluation: (small, all, "test"))
        }
        _ = try Trainer(network: network, configuration: configuration, trainingData: try StreamedDataset(Self.images, on: backend, batchCapacity: 40),
                        trainingIndices: all, evaluation: nil)
    }

    @Test func thePlacementFollowsTheMemory() throws {
        let backend = NaiveBackend()
        let bytes = DataPlacement.residentBytes(Self.images)
        #expect(bytes == 203 * 784 + 203 * 4)
        // A host-memory backend keeps its data resident unless told a limit.
        #expect(try DataPlacement.choose(bytes: bytes, backend: backend, forced: nil, memoryLimit: nil).kind == .resident)
        #expect(try DataPlacement.choose(bytes: bytes, backend: backend, forced: nil, memoryLimit: 2 * bytes).kind == .resident)
        let streamed = try DataPlacement.choose(bytes: bytes, backend: backend, forced: nil, memoryLimit: 2 * bytes - 1)
        #expect(streamed.kind == .streamed && streamed.reason.contains("more than half"), "\(streamed)")
        #expect(try DataPlacement.choose(bytes: bytes, backend: backend, forced: .streamed, memoryLimit: nil).kind == .streamed)
        #expect(try DataPlacement.choose(bytes: bytes, backend: backend, forced: .resident, memoryLimit: bytes).kind == .resident)
        #expect(throws: ConfigurationError.self) {
            try DataPlacement.choose(bytes: bytes, backend: backend, forced: .resident, memoryLimit: bytes - 1)
        }
        #expect(1536.bytesDescription == "1.50 KiB" && (47 << 20).bytesDescription == "47.0 MiB" && 12.bytesDescription == "12 bytes")
    }
}
