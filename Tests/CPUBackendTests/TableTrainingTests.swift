import CPUBackend
import Foundation
import MLPCore
import MNIST
import NaiveBackend
import Testing
import TestSupport

/// A table (float features on unlike scales, standardised, any number of features and classes) learned by the cpu
/// backend to the same losses as the naive one, epoch by epoch; and the class rule it holds learned at all.
@Suite struct TableTrainingTests {
    /// 331 rows of 13 features on scales from 1e-3 to 1e4, five classes by a rule of three of them.
    static func table() throws -> LabeledSamples {
        var g = SeededGenerator(seed: 21)
        let rows = 331, f = 13
        var values = [Float](), labels = [Int32]()
        for _ in 0..<rows {
            let row = (0..<f).map { j in Float(g.gaussian() * pow(10, Double(j % 8) - 3) + Double(j) * 100) }
            values += row
            let score = Double(row[1] - 100) * 10 + Double(row[4] - 400) / 10 - Double(row[9] - 900) * 1e3
            labels.append(Int32(min(4, max(0, Int((score + 2.5).rounded(.down))))))
        }
        var set = try LabeledSamples(values: .floats(values), sampleShape: [f], labels: labels, classNames: ["a", "b", "c", "d", "e"])
        Standardization(fitting: set).apply(to: &set)
        return set
    }

    func losses(_ backend: any Backend, _ set: LabeledSamples) throws -> [EpochMetrics] {
        let configuration = try TrainingConfiguration(
            network: NetworkSpec(layerSizes: [13, 19, 7, 5]), optimizer: .adam(learningRate: 1e-2),
            schedule: LearningRateSchedule(base: 1e-2), epochs: 4, batchSize: 17, seed: 3)
        return try Trainer(configuration: configuration, backend: backend, training: set).run()
    }

    @Test func theCPUBackendLearnsATableAsTheNaiveOneDoes() throws {
        let set = try Self.table()
        let naive = try losses(NaiveBackend(), set)
        let cpu = try losses(CPUBackend(threads: 2), set)
        for (a, b) in zip(naive, cpu) {
            #expect(abs(a.trainLoss - b.trainLoss) <= 1e-4 * max(1, a.trainLoss), "epoch \(a.epoch): naive \(a.trainLoss), cpu \(b.trainLoss)")
        }
        #expect(naive.last!.trainLoss < naive.first!.trainLoss * 0.7)
    }
}
