import CUDABackend
import Foundation
import MLPCore
import Testing
import TestSupport

/// The cuda backend's operations against the float64 reference, where a GPU and its libraries are present; where
/// they are not, the error that explains why.
@Suite struct CUDABackendTests {
    /// The backend, or why it cannot start here.
    nonisolated(unsafe) static let started: Result<CUDABackend, Error> = Result { try CUDABackend() }
    static var available: Bool { (try? started.get()) != nil }
    static var reason: String {
        if case .failure(let error) = started { return "no usable CUDA device here: \(error)" }
        return ""
    }

    @Test(.enabled(if: available, Comment(rawValue: reason)))
    func everyOperationMatchesTheReference() throws {
        var checks = BackendOpChecks(try Self.started.get(), seed: 3)
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            for (m, n, k) in [(1, 1, 1), (3, 17, 5), (127, 33, 17), (61, 70, 300)] {
                let r = try checks.gemm(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 0.7, beta: -1.3)
                #expect(r.error < 1e-5 && r.paddingIntact)
            }
        }
        for activation in Activation.allCases {
            #expect(try checks.biasActivation(rows: 127, columns: 33, activation: activation) < 1e-5)
            #expect(try checks.activationBackward(rows: 300, columns: 127, activation: activation) < 1e-5)
            // The fused path (cuBLASLt epilogues) for ReLU and identity; the composed one for the others.
            #expect(try checks.denseLayers(rows: 37, inputSize: 300, hiddenSize: 129, outputSize: 45, activation: activation) < 1e-5)
        }
        for (rows, outputSize) in [(37, 10), (300, 16), (61, 17)] {
            let r = try checks.outputLayerLoss(rows: rows, inputSize: 129, outputSize: outputSize, loss: .softmaxCrossEntropy)
            #expect(r.error < 1e-5 && r.countsExact)
            // With the backward: one kernel up to 16 outputs (19 blocks at 300 rows: the last block's sums in eights
            // and a remainder), the composition at 17.
            for activation in Activation.allCases {
                let b = try checks.outputLayerBackward(rows: rows, inputSize: 300, outputSize: outputSize, loss: .softmaxCrossEntropy, activation: activation)
                #expect(b.error < 1e-5 && b.countsExact, "\(rows)×300→\(outputSize) \(activation)")
            }
        }
        // output_layer_wide (ten outputs, an even number of inputs from 2048 on): 2 groups of 8 rows and one of 3.
        for activation in Activation.allCases {
            let b = try checks.outputLayerBackward(rows: 19, inputSize: 2050, outputSize: 10, loss: .softmaxCrossEntropy, activation: activation)
            #expect(b.error < 1e-5 && b.countsExact, "19×2050→10 \(activation)")
        }
        let loss = try checks.loss(rows: 127, columns: 17, loss: .softmaxCrossEntropy, scale: 1e4)
        #expect(loss.lossError < 1e-5 && loss.gradientError < 1e-5 && loss.countsExact)
        #expect(try checks.gather(samples: 300, features: 784, batch: 127))
        #expect(try checks.gather(samples: 300, features: 35, batch: 127, valueType: .float32))
        for loss in Loss.regressionCases {
            #expect(try checks.regressionOutputLayer(rows: 130, inputSize: 257, outputSize: 3, tableRows: 300, loss: loss) < 1e-5, "\(loss)")
        }
        let adam = try checks.optimizer(try OptimizerConfiguration(kind: .adamw, learningRate: 0.1, weightDecay: 0.05), count: 70_001, step: 3, learningRate: 0.1)
        #expect(adam.parameters < 1e-5 && adam.state < 1e-6)
    }

    /// Without a driver, the error names the library and every path tried (this is what runs in CI).
    @Test(.enabled(if: !available, "a CUDA device is present"))
    func aMissingDriverIsExplained() {
        let text = Self.reason
        #expect(text.contains("libcuda.so.1") || text.contains("cuInit"), "\(text)")
        if text.contains("could not be loaded") {
            #expect(text.contains("/usr/local/cuda/lib64/libcuda.so.1") || text.contains("tried"))
        }
    }
}
