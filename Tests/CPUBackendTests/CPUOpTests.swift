import CPUBackend
import CPUKernels
import Foundation
import MLPCore
import MNIST
import NaiveBackend
import Testing
import TestSupport

/// Every cpu operation, for every kernel set the CPU supports and several thread counts, against Double
/// computations of the definitions (the same checks the naive backend passes), on awkward sizes.
@Suite struct CPUOpTests {
    static let kernelNames = CPUFeatures.supportedKernels.map(\.name)
    static let shapes = [(1, 1, 1), (3, 17, 5), (17, 3, 127), (127, 33, 17), (5, 1, 64), (61, 70, 300), (200, 45, 33)]

    static func backend(_ kernels: String, threads: Int) throws -> CPUBackend {
        try CPUBackend(threads: threads, gemm: .own, kernels: CPUFeatures.kernels(named: kernels)!)
    }

    @Test(arguments: kernelNames, [1, 3])
    func gemmEveryTranspose(kernels: String, threads: Int) throws {
        var checks = BackendOpChecks(try Self.backend(kernels, threads: threads))
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            for (m, n, k) in Self.shapes {
                let r = try checks.gemm(transposeA: ta, transposeB: tb, m: m, n: n, k: k)
                #expect(r.error < 1e-5, "\(kernels) gemm tA=\(ta) tB=\(tb) \(m)×\(n)×\(k)")
                #expect(r.paddingIntact)
                let s = try checks.gemm(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 0.7, beta: -1.3)
                #expect(s.error < 1e-5 && s.paddingIntact, "\(kernels) gemm with alpha, beta tA=\(ta) tB=\(tb) \(m)×\(n)×\(k)")
            }
        }
    }

    @Test(arguments: kernelNames, Activation.allCases)
    func biasActivationAndBackward(kernels: String, activation: Activation) throws {
        var checks = BackendOpChecks(try Self.backend(kernels, threads: 3))
        for (rows, columns) in [(1, 1), (3, 17), (127, 5), (17, 33), (300, 127)] {
            #expect(try checks.biasActivation(rows: rows, columns: columns, activation: activation) < 1e-6)
            #expect(try checks.activationBackward(rows: rows, columns: columns, activation: activation) < 1e-5)
        }
        for (rows, inputSize, hiddenSize, outputSize) in [(1, 3, 5, 2), (17, 33, 127, 10)] {
            #expect(try checks.denseLayers(rows: rows, inputSize: inputSize, hiddenSize: hiddenSize, outputSize: outputSize, activation: activation) < 1e-5)
        }
    }

    @Test(arguments: [Float(1), 30, 1e4])
    func lossIsStableAndExact(scale: Float) throws {
        var checks = BackendOpChecks(try CPUBackend(threads: 2))
        for (rows, columns) in [(1, 2), (3, 10), (127, 17)] {
            let r = try checks.loss(rows: rows, columns: columns, loss: .softmaxCrossEntropy, scale: scale)
            #expect(r.lossError < 1e-5 && r.gradientError < 1e-5 && r.countsExact)
        }
        let mse = try checks.loss(rows: 17, columns: 10, loss: .meanSquaredError, scale: 1)
        #expect(mse.lossError < 1e-5 && mse.gradientError < 1e-6 && mse.countsExact)
        for loss in Loss.classificationCases {
            let r = try checks.outputLayerLoss(rows: 37, inputSize: 33, outputSize: 10, loss: loss)
            #expect(r.error < 1e-5 && r.countsExact)
            for activation in Activation.allCases {
                let b = try checks.outputLayerBackward(rows: 37, inputSize: 33, outputSize: 10, loss: loss, activation: activation)
                #expect(b.error < 1e-5 && b.countsExact, "\(loss) \(activation)")
            }
        }
    }

    /// A regression's output layer through the cpu backend's own products and passes, rows split over threads.
    @Test(arguments: Loss.regressionCases)
    func regressionOutputLayer(loss: Loss) throws {
        var checks = BackendOpChecks(try CPUBackend(threads: 3))
        for (rows, inputSize, outputSize) in [(1, 3, 1), (130, 257, 3), (1025, 100, 2)] {
            #expect(try checks.regressionOutputLayer(rows: rows, inputSize: inputSize, outputSize: outputSize, tableRows: 2 * rows + 5, loss: loss) < 1e-5)
        }
    }

    /// The fused output layer (`outputLayerRows`) on shapes that reach each of its paths: four vectors of inputs at a
    /// time and the vector and scalar leftovers, outputs in groups of four and the rest, a single output, the widest
    /// fused layer and one past it (the default composition), rows split over three threads.
    @Test(arguments: [(37, 300, 10), (5, 129, 1), (17, 70, 16), (3, 20, 17), (64, 1000, 3)])
    func fusedOutputLayerOnAwkwardShapes(rows: Int, inputSize: Int, outputSize: Int) throws {
        var checks = BackendOpChecks(try CPUBackend(threads: 3))
        for loss in Loss.classificationCases {
            for activation in Activation.allCases {
                let b = try checks.outputLayerBackward(rows: rows, inputSize: inputSize, outputSize: outputSize, loss: loss, activation: activation)
                #expect(b.error < 1e-5 && b.countsExact, "\(loss) \(activation)")
            }
        }
    }

    @Test func gather() throws {
        var checks = BackendOpChecks(try CPUBackend(threads: 3))
        #expect(try checks.gather(samples: 50, features: 17, batch: 33))
        #expect(try checks.gather(samples: 300, features: 784, batch: 127))
        #expect(try checks.gather(samples: 50, features: 17, batch: 33, valueType: .float32))
        #expect(try checks.gather(samples: 300, features: 35, batch: 127, valueType: .float32))
    }

    @Test(arguments: kernelNames)
    func optimizersMatchTheFormula(kernels: String) throws {
        var checks = BackendOpChecks(try Self.backend(kernels, threads: 3), seed: 5)
        let configurations = [
            try OptimizerConfiguration(kind: .sgd, learningRate: 0.1),
            try OptimizerConfiguration(kind: .sgd, learningRate: 0.1, momentum: 0.9, weightDecay: 0.01),
            try OptimizerConfiguration(kind: .sgd, learningRate: 0.1, momentum: 0.8, nesterov: true, weightDecay: 1e-3),
            try OptimizerConfiguration(kind: .adam, learningRate: 0.1, weightDecay: 0.1, beta1: 0.8, beta2: 0.99, epsilon: 1e-6),
            try OptimizerConfiguration(kind: .adamw, learningRate: 0.1, weightDecay: 0.05),
        ]
        for configuration in configurations {
            for count in [1, 17, 70_001] {
                // The whole buffer, and one layer's part of a larger one (state slots 3 floats further apart).
                for gap in [0, 3] {
                    let r = try checks.optimizer(configuration, count: count, gap: gap, step: 3, learningRate: 0.1)
                    #expect(r.parameters < 1e-5 && r.state < 1e-6, "\(configuration.kind) count \(count) gap \(gap)")
                }
            }
        }
    }

    @Test func blasProductsMatchWhereABLASIsInstalled() throws {
        guard let backend = try? CPUBackend(threads: 2, gemm: .blas) else { return }  // no BLAS here: nothing to compare
        var checks = BackendOpChecks(backend)
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            for (m, n, k) in Self.shapes {
                #expect(try checks.gemm(transposeA: ta, transposeB: tb, m: m, n: n, k: k).error < 1e-5)
            }
        }
    }

    @Test func aMissingBLASIsExplained() {
        let options = CPUOptions(environment: ["MLP_BLAS": "/nonexistent/libblas.so"])
        let error = #expect(throws: CPUBackendError.self) { try BLASLibrary.load(options.blasLibrary) }
        #expect(error?.description.contains("/nonexistent/libblas.so") == true)
        #expect(error?.description.contains("MLP_BLAS") == true)
    }

    /// The switches are read from the environment given, and a value a switch does not take is reported.
    @Test func theOptionsComeFromTheEnvironment() throws {
        #expect(CPUOptions(environment: [:]).skipsInputZeros && CPUOptions(environment: [:]).blasLibrary == nil)
        let set = CPUOptions(environment: ["MLP_CPU_SKIP_ZEROS": "0", "MLP_BLAS": "libblis.so.4"])
        #expect(!set.skipsInputZeros && set.blasLibrary == "libblis.so.4" && set.problems.isEmpty)
        #expect(set.description == "MLP_CPU_SKIP_ZEROS=0 MLP_BLAS=libblis.so.4")
        let odd = CPUOptions(environment: ["MLP_CPU_SKIP_ZEROS": "no"])
        #expect(odd.skipsInputZeros && odd.problems.count == 1)
        #expect(try CPUBackend(threads: 1, options: set).skipsInputZeros == false)
    }
}

/// Training on the cpu backend against the naive reference, and its independence from the thread count.
@Suite struct CPUTrainingTests {
    static func train(_ backend: any Backend, epochs: Int = 2) throws -> (history: [EpochMetrics], parameters: [Float]) {
        let spec = try NetworkSpec(layerSizes: [784, 40, 23, 10])
        let configuration = try TrainingConfiguration(
            network: spec, optimizer: .adam(learningRate: 2e-3), schedule: LearningRateSchedule(base: 2e-3),
            epochs: epochs, batchSize: 37, seed: 4)
        let data = try Dataset.load(directory: bundledMNIST).train.subset(0..<800)
        let resident = try ResidentDataset(data, on: backend)
        let network = try Network(spec: spec, optimizer: configuration.optimizer, backend: backend, maxBatch: 37)
        var g = configuration.initializationGenerator
        network.setParameters(ParameterLayout(spec).initialParameters(for: spec, using: &g))
        let trainer = try Trainer(network: network, configuration: configuration, trainingData: resident,
                                  trainingIndices: (0..<800).map(Int32.init), evaluation: nil)
        let history = try trainer.run()
        return (history, network.parameterValues())
    }

    @Test func lossesFollowTheNaiveBackend() throws {
        let naive = try Self.train(NaiveBackend())
        let cpu = try Self.train(CPUBackend(threads: 2))
        for (a, b) in zip(naive.history, cpu.history) {
            #expect(abs(a.trainLoss - b.trainLoss) < 1e-4, "epoch \(a.epoch): naive \(a.trainLoss), cpu \(b.trainLoss)")
        }
        let diff = relativeError(cpu.parameters.map(Double.init), naive.parameters.map(Double.init))
        #expect(diff < 1e-3)
    }

    @Test func sameWeightsForEveryThreadCount() throws {
        let one = try Self.train(CPUBackend(threads: 1), epochs: 1).parameters
        for threads in [2, 3] {
            #expect(try Self.train(CPUBackend(threads: threads), epochs: 1).parameters == one, "\(threads) threads")
        }
    }
}

/// Products whose result has at most one vector of columns (the narrow path) and their neighbours, with every
/// transpose and thread count, against the Double reference; and the same bits whatever the thread count.
@Suite struct NarrowGEMMTests {
    @Test(arguments: CPUOpTests.kernelNames)
    func narrowProducts(kernels: String) throws {
        for threads in [1, 2, 3] {
            var checks = BackendOpChecks(try CPUOpTests.backend(kernels, threads: threads))
            // (50, 12, 300) and (40, 7, 1030): the transposed narrow path (≤ 12 columns) with vectors of rows and a
            // scalar tail, and a k past the general path's depth block; (33, 13, 20): one column too many for it.
            for (m, n, k) in [(128, 10, 256), (256, 10, 128), (5, 10, 7), (300, 1, 33), (97, 16, 3), (61, 17, 40), (70, 40, 9),
                              (50, 12, 300), (40, 7, 1030), (33, 13, 20)] {
                for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                    let r = try checks.gemm(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 0.5, beta: 0.25)
                    #expect(r.error < 1e-5 && r.paddingIntact, "\(kernels) \(threads) threads \(m)×\(n)×\(k) tA=\(ta) tB=\(tb)")
                }
            }
        }
    }

    @Test func sameBitsForEveryThreadCount() throws {
        var g = SeededGenerator(seed: 8)
        for (m, n, k) in [(70, 40, 9), (128, 10, 256), (61, 17, 300), (200, 90, 33)] {
            let a = randomFloats(m * k, using: &g), b = randomFloats(k * n, using: &g)
            var results = [[Float]]()
            for threads in [1, 2, 3] {
                let backend = try CPUBackend(threads: threads)
                let (pa, pb) = (try backend.allocate(copying: a), try backend.allocate(copying: b))
                let pc = try backend.allocate(Float.self, count: m * n)
                backend.gemm(transposeA: false, transposeB: false, m: m, n: n, k: k, alpha: 1, a: pa, lda: k, b: pb, ldb: n, beta: 0, c: pc, ldc: n)
                results.append(backend.download(pc, count: m * n))
                backend.free(pa); backend.free(pb); backend.free(pc)
            }
            #expect(results[0] == results[1] && results[1] == results[2], "\(m)×\(n)×\(k)")
        }
    }
}
