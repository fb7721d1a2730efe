import Foundation
import MLPCore
import MNIST
import NaiveBackend
import Testing
import TestSupport

/// Gradients of a 3-layer network against central finite differences.
@Suite struct GradientTests {
    static let specs: [NetworkSpec] = [
        try! NetworkSpec(layerSizes: [7, 6, 5, 4], activation: .relu),
        try! NetworkSpec(layerSizes: [7, 6, 5, 4], activation: .tanh),
        try! NetworkSpec(layerSizes: [7, 6, 5, 4], activation: .sigmoid),
        try! NetworkSpec(layerSizes: [7, 6, 5, 4], activation: .tanh, loss: .meanSquaredError),
        // Regression: one target and three; Huber's targets spread wide enough for both of its regimes.
        try! NetworkSpec(layerSizes: [7, 6, 5, 1], activation: .tanh, loss: .squaredError),
        try! NetworkSpec(layerSizes: [7, 6, 5, 3], activation: .sigmoid, loss: .huber),
    ]

    struct Problem {
        var parameters: [Double]
        var inputs: [Double]
        var labels: [Int]
        /// `[rows, outputs]`, for regression specs (values a Float holds exactly).
        var targets: [Double]
    }

    static func problem(_ spec: NetworkSpec, rows: Int = 5, seed: UInt64 = 7) -> Problem {
        var g = SeededGenerator(seed: seed)
        let layout = ParameterLayout(spec)
        // Biases random too (not zero), so their gradients are exercised in general position.
        let p = (0..<layout.count).map { _ in g.gaussian() * 0.6 }
        let x = (0..<rows * spec.inputSize).map { _ in g.unitDouble() * 2 - 1 }
        let y = (0..<rows).map { _ in g.uniform(below: spec.outputSize) }
        let t = spec.loss.isRegression ? (0..<rows * spec.outputSize).map { _ in Double(Float(g.gaussian() * 2)) } : []
        return Problem(parameters: p, inputs: x, labels: y, targets: t)
    }

    /// Float64: the analytic gradient of the reference against central differences, relative error < 1e-4.
    @Test(arguments: specs)
    func referenceGradientMatchesFiniteDifferencesInDouble(spec: NetworkSpec) {
        let reference = ReferenceMLP(spec)
        let problem = Self.problem(spec)
        let analytic = reference.lossAndGradient(parameters: problem.parameters, inputs: problem.inputs, labels: problem.labels, targets: problem.targets).gradient
        let h = 1e-6
        var numeric = [Double](repeating: 0, count: analytic.count)
        for i in 0..<analytic.count {
            var plus = problem.parameters, minus = problem.parameters
            plus[i] += h
            minus[i] -= h
            let lp = reference.lossAndGradient(parameters: plus, inputs: problem.inputs, labels: problem.labels, targets: problem.targets, gradient: false).loss
            let lm = reference.lossAndGradient(parameters: minus, inputs: problem.inputs, labels: problem.labels, targets: problem.targets, gradient: false).loss
            numeric[i] = (lp - lm) / (2 * h)
        }
        #expect(relativeError(analytic, numeric) < 1e-4)
    }

    /// Float32: every parameter's gradient from the naive backend's training step against central differences of
    /// the backend's own Float loss (relative error < 1e-2), and against the Double reference.
    @Test(arguments: specs)
    func naiveBackendGradientMatchesFiniteDifferencesInFloat(spec: NetworkSpec) throws {
        let problem = Self.problem(spec)
        let rows = problem.labels.count
        // Inputs travel as bytes through the dataset path: quantise them, and use the same bytes for the reference.
        let bytes = problem.inputs.map { UInt8(($0 + 1) / 2 * 255) }
        let normalization = Normalization(scale: 2 / 255, shift: -1)
        let inputs = bytes.map { Double(normalization.apply($0)) }
        let images = spec.loss.isRegression
            ? try LabeledSamples(values: .bytes(bytes), sampleShape: [spec.inputSize], targets: problem.targets.map(Float.init),
                                 targetNames: (0..<spec.outputSize).map { "y\($0)" })
            : LabeledSamples(try LabeledImages(pixels: bytes, labels: problem.labels.map(UInt8.init), rows: 1, columns: spec.inputSize, classCount: spec.outputSize))
        let backend = NaiveBackend()
        let sgd = try OptimizerConfiguration(kind: .sgd, learningRate: 1e-30)  // a step that leaves the weights as they are
        let network = try Network(spec: spec, optimizer: sgd, backend: backend, maxBatch: rows)
        network.normalization = normalization
        let data = try ResidentDataset(images, on: backend)
        let all = (0..<Int32(rows)).map { $0 }
        let p32 = problem.parameters.map(Float.init)
        network.setParameters(p32)
        network.trainStep(data, batch: all[...], step: sgd.step(1, learningRate: 0))
        let analytic = network.gradientValues().map(Double.init)

        func loss(_ p: [Float]) -> Double {
            network.setParameters(p)
            return network.evaluate(data, indices: all).loss
        }
        let h: Float = 1e-2
        var numeric = [Double](repeating: 0, count: p32.count)
        for i in 0..<p32.count {
            var plus = p32, minus = p32
            plus[i] += h
            minus[i] -= h
            numeric[i] = (loss(plus) - loss(minus)) / Double(2 * h)
        }
        #expect(relativeError(analytic, numeric) < 1e-2)
        let reference = ReferenceMLP(spec).lossAndGradient(parameters: p32.map(Double.init), inputs: inputs, labels: problem.labels, targets: problem.targets).gradient
        #expect(relativeError(analytic, reference) < 1e-5)
    }
}
