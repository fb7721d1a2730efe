import Foundation
import MLPCore
import MNIST

/// Where the time of a training step goes: 50 real steps through a `ProfilingBackend`.
enum StepProfile {
    struct Entry: Codable {
        var workload: String
        var operation: String
        var callsPerStep: Double
        var microsecondsPerStep: Double
        var share: Double

        var line: String {
            "\(workload.padding(toLength: max(11, workload.count), withPad: " ", startingAt: 0)) \(operation.padding(toLength: 44, withPad: " ", startingAt: 0)) \(String(format: "%9.1f µs/step %5.1f%%", microsecondsPerStep, 100 * share))"
        }
    }

    static func run(workload: Workload, backend: any Backend, dataset: Dataset, steps: Int = 50) throws -> [Entry] {
        let profiler = ProfilingBackend(backend)
        let spec = workload.spec
        let optimizer = OptimizerConfiguration.adam()
        let network = try Network(spec: spec, optimizer: optimizer, backend: profiler, maxBatch: workload.batch)
        let train = try ResidentDataset(dataset.train, on: profiler)
        var g = SeededGenerator(seed: 0)
        network.setParameters(ParameterLayout(spec).initialParameters(for: spec, using: &g))
        let epoch = EpochBatches(indices: (0..<Int32(dataset.train.count)).map { $0 }, batchSize: workload.batch, dropLast: true, generator: &g)
        for b in 0..<3 { network.trainStep(train, batch: epoch.order[epoch.range(ofBatch: b)], step: optimizer.step(b + 1, learningRate: 1e-3)) }
        profiler.reset()
        let n = min(steps, epoch.count - 3)
        for b in 0..<n { network.trainStep(train, batch: epoch.order[epoch.range(ofBatch: b + 3)], step: optimizer.step(b + 4, learningRate: 1e-3)) }
        let total = profiler.totals.values.reduce(0) { $0 + $1.seconds }
        return profiler.totals.sorted { $0.value.seconds > $1.value.seconds }.map {
            Entry(workload: workload.name, operation: $0.key, callsPerStep: Double($0.value.calls) / Double(n),
                  microsecondsPerStep: $0.value.seconds / Double(n) * 1e6, share: $0.value.seconds / total)
        }
    }
}
