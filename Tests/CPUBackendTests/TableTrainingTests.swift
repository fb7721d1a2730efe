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

    /// 403 rows of 9 features on unlike scales and two real-valued targets, a smooth function of four of them and a
    /// product of two, in units far from 1 (thousands, thousandths): standardised like `mlp train` does.
    static func regressionTable() throws -> (set: LabeledSamples, targetScale: [Double]) {
        var g = SeededGenerator(seed: 5)
        let rows = 403, f = 9
        var values = [Float](), targets = [Float]()
        for _ in 0..<rows {
            let row = (0..<f).map { j in Float(g.gaussian() * pow(10, Double(j % 5) - 2) + Double(j) * 10) }
            values += row
            let a = Double(row[0]) * 100, b = Double(row[2] - 20), c = Double(row[3] - 30) / 10, d = Double(row[7] - 70) * 10
            targets += [Float(3000 + 2000 * (sin(a) + 0.5 * b * b + c)), Float(0.001 * (a * d) + 0.0005 * Double(g.gaussian()))]
        }
        var set = try LabeledSamples(values: .floats(values), sampleShape: [f], targets: targets, targetNames: ["cost", "rate"])
        Standardization(fitting: set).apply(to: &set)
        let scaling = Standardization(fittingTargetsOf: set)
        scaling.applyToTargets(of: &set)
        return (set, scaling.standardDeviation)
    }

    func regressionRun(_ backend: any Backend, _ set: LabeledSamples, scale: [Double], loss: Loss, epochs: Int) throws -> [EpochMetrics] {
        let configuration = try TrainingConfiguration(
            network: NetworkSpec(layerSizes: [9, 33, 17, 2], activation: .tanh, loss: loss), optimizer: .adam(learningRate: 1e-2),
            schedule: LearningRateSchedule(base: 1e-2), epochs: epochs, batchSize: 31, seed: 4)
        let trainer = try Trainer(configuration: configuration, backend: backend, training: set, evaluation: set)
        trainer.targetScale = scale
        return try trainer.run()
    }

    /// A regression of two targets: the cpu backend's losses and errors follow the naive backend's epoch by epoch
    /// (squared error and Huber), and the function is learned (R² on the training rows well above a constant's 0).
    @Test(arguments: Loss.regressionCases)
    func theCPUBackendLearnsARegressionAsTheNaiveOneDoes(loss: Loss) throws {
        let (set, scale) = try Self.regressionTable()
        let naive = try regressionRun(NaiveBackend(), set, scale: scale, loss: loss, epochs: 4)
        let cpu = try regressionRun(CPUBackend(threads: 2), set, scale: scale, loss: loss, epochs: 4)
        for (a, b) in zip(naive, cpu) {
            #expect(abs(a.trainLoss - b.trainLoss) <= 1e-4 * max(1, a.trainLoss), "epoch \(a.epoch): naive \(a.trainLoss), cpu \(b.trainLoss)")
            #expect(abs(a.testRMSE! - b.testRMSE!) <= 1e-4 * a.testRMSE!, "epoch \(a.epoch): naive RMSE \(a.testRMSE!), cpu \(b.testRMSE!)")
            #expect(a.trainAccuracy == nil && a.testAccuracy == nil)
        }
        let long = try regressionRun(CPUBackend(threads: 2), set, scale: scale, loss: loss, epochs: 40)
        #expect(long.last!.testR2! > 0.9, "R² \(long.last!.testR2!)")
        #expect(long.last!.trainLoss < long.first!.trainLoss * 0.3)
    }
}
