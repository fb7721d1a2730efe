import MLPCore
import NaiveBackend
import Testing
import TestSupport

/// The reference backend's operations against Double computations of their definitions.
@Suite struct NaiveOpTests {
    static let shapes = [(1, 1, 1), (3, 17, 5), (17, 3, 127), (127, 33, 17), (5, 1, 64)]

    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func gemmEveryTranspose(transposeA: Bool, transposeB: Bool) throws {
        var checks = BackendOpChecks(NaiveBackend())
        for (m, n, k) in Self.shapes {
            let r = try checks.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k)
            #expect(r.error < 1e-5, "gemm \(m)×\(n)×\(k)")
            #expect(r.paddingIntact)
            let s = try checks.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 0.7, beta: -1.3)
            #expect(s.error < 1e-5 && s.paddingIntact)
        }
    }

    @Test(arguments: Activation.allCases)
    func biasActivationAndBackward(activation: Activation) throws {
        var checks = BackendOpChecks(NaiveBackend())
        for (rows, columns) in [(1, 1), (3, 17), (127, 5), (17, 33)] {
            #expect(try checks.biasActivation(rows: rows, columns: columns, activation: activation) < 1e-6)
            #expect(try checks.activationBackward(rows: rows, columns: columns, activation: activation) < 1e-5)
        }
        #expect(try checks.denseLayers(rows: 17, inputSize: 33, hiddenSize: 127, outputSize: 10, activation: activation) < 1e-5)
    }

    @Test(arguments: [Float(1), 30, 1e4])
    func softmaxCrossEntropyIsStableAndExact(scale: Float) throws {
        var checks = BackendOpChecks(NaiveBackend())
        for (rows, columns) in [(1, 2), (3, 10), (127, 17)] {
            let r = try checks.loss(rows: rows, columns: columns, loss: .softmaxCrossEntropy, scale: scale)
            #expect(r.lossError < 1e-5, "loss \(rows)×\(columns) scale \(scale)")
            #expect(r.gradientError < 1e-5, "grad \(rows)×\(columns) scale \(scale)")
            #expect(r.countsExact)
        }
        let r = try checks.outputLayerLoss(rows: 17, inputSize: 33, outputSize: 10, loss: .softmaxCrossEntropy)
        #expect(r.error < 1e-5 && r.countsExact)
        for activation in Activation.allCases {
            let b = try checks.outputLayerBackward(rows: 17, inputSize: 33, outputSize: 10, loss: .softmaxCrossEntropy, activation: activation)
            #expect(b.error < 1e-5 && b.countsExact, "\(activation)")
        }
    }

    /// A regression's output layer and its loss against the Double definition: one output and several, rows whose
    /// targets are anywhere in a larger table, both of Huber's regimes.
    @Test(arguments: Loss.regressionCases)
    func regressionOutputLayer(loss: Loss) throws {
        var checks = BackendOpChecks(NaiveBackend())
        for (rows, inputSize, outputSize) in [(1, 3, 1), (37, 29, 1), (45, 70, 3)] {
            #expect(try checks.regressionOutputLayer(rows: rows, inputSize: inputSize, outputSize: outputSize, tableRows: 2 * rows + 5, loss: loss) < 1e-5)
        }
    }

    @Test func meanSquaredError() throws {
        var checks = BackendOpChecks(NaiveBackend())
        let r = try checks.loss(rows: 17, columns: 10, loss: .meanSquaredError, scale: 1)
        #expect(r.lossError < 1e-5 && r.gradientError < 1e-6 && r.countsExact)
    }

    @Test func gatherNormalisesTheIndexedSamples() throws {
        var checks = BackendOpChecks(NaiveBackend())
        #expect(try checks.gather(samples: 50, features: 17, batch: 33))
        #expect(try checks.gather(samples: 1, features: 1, batch: 1))
        #expect(try checks.gather(samples: 50, features: 17, batch: 33, valueType: .float32))
    }
}
