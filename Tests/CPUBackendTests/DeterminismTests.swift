import CPUBackend
import Foundation
import MLPCore
import MNIST
import NaiveBackend
import Testing
import TestSupport

/// The same seed gives bit-identical weights: on the cpu backend across runs and across thread counts (each output
/// element of every product and reduction is computed by one thread in a fixed order, whatever the number of
/// threads), and on the naive backend across runs. The cpu and naive backends agree only to rounding (their sums
/// run in different orders), as do the cpu backend's AVX-512 and AVX2 kernels.
@Suite struct DeterminismTests {
    static func train(_ backend: any Backend) throws -> [Float] {
        let configuration = try TrainingConfiguration(
            network: NetworkSpec(layerSizes: [784, 70, 33, 10]), optimizer: .adam(learningRate: 2e-3),
            schedule: LearningRateSchedule(base: 2e-3), epochs: 2, batchSize: 61, seed: 5)
        let data = try ResidentDataset(syntheticImages(count: 400, rows: 28, columns: 28, classes: 10, seed: 3), on: backend)
        let network = try Network(spec: configuration.network, optimizer: configuration.optimizer, backend: backend, maxBatch: 61)
        var g = configuration.initializationGenerator
        network.setParameters(ParameterLayout(configuration.network).initialParameters(for: configuration.network, using: &g))
        let trainer = try Trainer(network: network, configuration: configuration, trainingData: data,
                                  trainingIndices: (0..<Int32(data.count)).map { $0 }, evaluation: nil)
        try trainer.run()
        return network.parameterValues() + network.optimizerStateValues()
    }

    @Test func cpuWeightsAreBitIdenticalAcrossRunsAndThreadCounts() throws {
        let reference = try Self.train(CPUBackend(threads: 1, gemm: .own))
        for threads in [1, 2, 3, 5] {
            let weights = try Self.train(CPUBackend(threads: threads, gemm: .own))
            #expect(weights == reference, "\(threads) threads: \(zip(weights, reference).filter { $0 != $1 }.count) values differ from 1 thread's")
        }
    }

    @Test func naiveWeightsAreBitIdenticalAcrossRuns() throws {
        #expect(try Self.train(NaiveBackend()) == Self.train(NaiveBackend()))
    }
}
