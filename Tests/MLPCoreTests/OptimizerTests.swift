import Foundation
import MLPCore
import MNIST
import NaiveBackend
import Testing
import TestSupport

@Suite struct OptimizerTests {
    static let configurations: [OptimizerConfiguration] = [
        try! OptimizerConfiguration(kind: .sgd, learningRate: 0.1),
        try! OptimizerConfiguration(kind: .sgd, learningRate: 0.05, momentum: 0.9, weightDecay: 0.01),
        try! OptimizerConfiguration(kind: .sgd, learningRate: 0.05, momentum: 0.8, nesterov: true, weightDecay: 1e-3),
        try! OptimizerConfiguration(kind: .adam, learningRate: 1e-3),
        try! OptimizerConfiguration(kind: .adam, learningRate: 3e-3, weightDecay: 0.1, beta1: 0.8, beta2: 0.99, epsilon: 1e-6),
        try! OptimizerConfiguration(kind: .adamw, learningRate: 2e-3, weightDecay: 0.05),
    ]

    /// One step of each optimizer on the naive backend against the closed-form formula (in Double), at the first
    /// step and a later one (Adam's bias corrections differ). The learning rate is large (0.1) so that the change is
    /// far above the rounding of the Float parameters and a wrong update cannot hide in it.
    @Test(arguments: configurations)
    func oneStepMatchesTheFormula(configuration: OptimizerConfiguration) throws {
        var checks = BackendOpChecks(NaiveBackend(), seed: 5)
        for step in [1, 7] {
            // The whole buffer, and one layer's part of a larger one (its state slots 131 + 45 floats apart).
            for gap in [0, 45] {
                let r = try checks.optimizer(configuration, count: 131, gap: gap, step: step, learningRate: 0.1)
                #expect(r.parameters < 1e-5, "step \(step), gap \(gap)")
                #expect(r.state < 1e-6, "step \(step), gap \(gap)")
            }
        }
    }

    @Test func invalidHyperparametersNameTheFlag() {
        let cases: [(() throws -> OptimizerConfiguration, String)] = [
            ({ try OptimizerConfiguration(kind: .adam, learningRate: -1) }, "--lr -1.0: expected a finite number above 0"),
            ({ try OptimizerConfiguration(kind: .adam, learningRate: .nan) }, "--lr nan: expected a finite number above 0"),
            ({ try OptimizerConfiguration(kind: .sgd, learningRate: 0.1, momentum: 1) }, "--momentum 1.0: expected a number in [0, 1)"),
            ({ try OptimizerConfiguration(kind: .adam, learningRate: 0.1, beta2: 1) }, "--beta2 1.0: expected a number in [0, 1)"),
            ({ try OptimizerConfiguration(kind: .adam, learningRate: 0.1, epsilon: 0) }, "--epsilon 0.0: expected a finite number above 0"),
            ({ try OptimizerConfiguration(kind: .sgd, learningRate: 0.1, nesterov: true) }, "--nesterov set: expected a --momentum above 0 (Nesterov needs momentum)"),
            ({ try OptimizerConfiguration(kind: .sgd, learningRate: 0.1, weightDecay: -0.1) }, "--weight-decay -0.1: expected a finite number ≥ 0"),
        ]
        for (make, message) in cases {
            let error = #expect(throws: ConfigurationError.self) { _ = try make() }
            #expect(error?.description == message)
        }
    }
}

@Suite struct ScheduleTests {
    @Test func constant() throws {
        let s = try LearningRateSchedule(base: 0.1)
        #expect([0, 1, 1000].map(s.rate(atStep:)) == [0.1, 0.1, 0.1])
    }

    @Test func stepDecay() throws {
        let s = try LearningRateSchedule(base: 1, decay: .step(stepSize: 10, gamma: 0.5))
        #expect(s.rate(atStep: 0) == 1 && s.rate(atStep: 9) == 1)
        #expect(s.rate(atStep: 10) == 0.5 && s.rate(atStep: 25) == 0.25)
    }

    @Test func cosineWithWarmup() throws {
        let s = try LearningRateSchedule(base: 0.2, decay: .cosine(totalSteps: 100, minimum: 0.02), warmupSteps: 4)
        #expect(s.rate(atStep: 0) == 0.05)
        #expect(s.rate(atStep: 3) == 0.2)
        #expect(s.rate(atStep: 4) == 0.2)  // the decay starts after the warm-up
        #expect(abs(s.rate(atStep: 54) - 0.11) < 1e-6)  // half way: the mean of 0.2 and 0.02
        #expect(abs(s.rate(atStep: 104) - 0.02) < 1e-7)
        #expect(s.rate(atStep: 10_000) == 0.02)
    }

    @Test func invalidSchedulesAreRejected() {
        #expect(throws: ConfigurationError.self) { try LearningRateSchedule(base: 0.1, decay: .step(stepSize: 0, gamma: 0.1)) }
        #expect(throws: ConfigurationError.self) { try LearningRateSchedule(base: 0.1, decay: .cosine(totalSteps: 10, minimum: 0.5)) }
        #expect(throws: ConfigurationError.self) { try LearningRateSchedule(base: 0.1, warmupSteps: -1) }
    }

    /// An extended schedule: the steps before the extension keep their rates, those after follow its own decay from
    /// its start; a schedule never extended encodes as it always did; a decoded one is checked like a new one.
    @Test func extensionsKeepTheStepsBeforeThem() throws {
        var s = try LearningRateSchedule(base: 0.2, decay: .cosine(totalSteps: 100, minimum: 0.02), warmupSteps: 4)
        let before = (0..<104).map { s.rate(atStep: $0) }
        let plain = String(decoding: try JSONEncoder().encode(s), as: UTF8.self)
        #expect(!plain.contains("extensions"))
        s.extensions = [.init(fromStep: 104, base: 0.2, decay: .cosine(totalSteps: 50, minimum: 0))]
        #expect((0..<104).map { s.rate(atStep: $0) } == before)
        #expect(s.rate(atStep: 104) == 0.2)
        #expect(abs(s.rate(atStep: 129) - 0.1) < 1e-6)  // half way through the new cosine
        #expect(s.rate(atStep: 500) == 0)
        s.extensions.append(.init(fromStep: 154, base: 0.05, decay: .constant))
        #expect(s.rate(atStep: 153) < 1e-3 && s.rate(atStep: 154) == 0.05 && s.rate(atStep: 10_000) == 0.05)
        let decoded = try JSONDecoder().decode(LearningRateSchedule.self, from: JSONEncoder().encode(s))
        #expect(decoded == s)
        var bad = s
        bad.extensions = [.init(fromStep: 200, base: 0.1, decay: .constant), .init(fromStep: 150, base: 0.1, decay: .step(stepSize: 0, gamma: 0.5))]
        #expect(throws: ConfigurationError.self) { try bad.validate() }
        bad.extensions = [.init(fromStep: 200, base: 0.1, decay: .step(stepSize: 0, gamma: 0.5))]
        #expect(throws: ConfigurationError.self) { try bad.validate() }
    }
}

@Suite struct NetworkSpecTests {
    @Test func layersAreValidatedWithTheFlagName() throws {
        #expect(try NetworkSpec.parseSizes("784, 512,10") == [784, 512, 10])
        let e1 = #expect(throws: ConfigurationError.self) { try NetworkSpec(layerSizes: [784, 0, 10]) }
        #expect(e1?.description == "--layers 784,0,10: expected sizes of at least 1 (found 0)")
        let e2 = #expect(throws: ConfigurationError.self) { try NetworkSpec(layerSizes: [784]) }
        #expect(e2?.flag == "--layers")
        let e3 = #expect(throws: ConfigurationError.self) { try NetworkSpec.parseSizes("784,,10") }
        #expect(e3?.description.contains("'' is not one") == true)
    }

    @Test func layoutIsPyTorchLinearOrder() throws {
        let layout = ParameterLayout(try NetworkSpec(layerSizes: [3, 5, 2]))
        #expect(layout.count == 3 * 5 + 5 + 5 * 2 + 2)
        #expect(layout.layers[0].weightOffset == 0 && layout.layers[0].biasOffset == 15)
        #expect(layout.layers[1].weightOffset == 20 && layout.layers[1].biasOffset == 30)
    }

    @Test func heInitialisationHasTheRightSpread() throws {
        let spec = try NetworkSpec(layerSizes: [400, 300, 10])
        var g = SeededGenerator(seed: 3)
        let p = ParameterLayout(spec).initialParameters(for: spec, using: &g)
        let w = p[0..<120_000].map(Double.init)
        let variance = w.map { $0 * $0 }.reduce(0, +) / Double(w.count)
        #expect(abs(variance - 2.0 / 400) / (2.0 / 400) < 0.02)
        #expect(p[120_000..<120_300].allSatisfy { $0 == 0 })
    }
}
