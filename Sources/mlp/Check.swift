import ArgumentParser
import BackendChecks
import CPUBackend
import CUDABackend
import Foundation
import MLPCore
import MNIST
import NaiveBackend

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every operation of a backend against a Double reference, and a short training run against the naive backend.",
        discussion: """
            Fresh random inputs (never zeros) at awkward sizes (1, 3, 17, 127, … : not multiples of a vector or a \
            tile); outputs are poisoned with NaN first, so an element left unwritten fails. Prints one line per check \
            with ‖out − ref‖ / ‖ref‖ and its tolerance, and exits with status 1 if any fails.
            """)

    @OptionGroup var backendOptions: BackendOptions
    @OptionGroup var data: DatasetOptions

    @Option(help: "Seed of the random inputs.")
    var seed: UInt64 = 1

    func run() throws {
        let logger = backendOptions.makeLogger()
        let backend = try backendOptions.makeBackend(logger: logger)
        print("checking the \(backend.name) backend: \(backend.deviceDescription)")
        var checks = BackendOpChecks(backend, seed: seed)
        var failures = 0
        func report(_ name: String, _ error: Double, _ tolerance: Double, _ extra: Bool = true) {
            let ok = error.isFinite && error <= tolerance && extra
            if !ok { failures += 1 }
            // Names in a column of 56; a longer one is printed whole (cut, two checks could read alike).
            let column = name.count < 56 ? name.padding(toLength: 56, withPad: " ", startingAt: 0) : name
            print("\(ok ? "ok  " : "FAIL") \(column) \(String(format: "%.2e", error)) (tolerance \(String(format: "%.0e", tolerance)))")
        }
        // TF32 products keep 10 bits of mantissa: ‖out − ref‖/‖ref‖ lands near 3e-4 instead of 1e-7.
        let bf16 = backendOptions.precision == .bf16
        var tolerance = backendOptions.backend == .cuda && backendOptions.precision == .tf32 ? 1e-3 : 1e-5
        if bf16 {
            // bf16 keeps 8 bits of mantissa: each operand is off by up to 2^-9 (1.95e-3) of itself, so a product's
            // terms by up to about 3.9e-3, and over a depth of sums of mixed signs ‖out − ref‖/‖ref‖ lands near 2e-3
            // to 4e-3, whatever the depth (the sums are fp32).
            tolerance = 1e-2
            print("bf16 products: operands rounded to 8-bit mantissas (unit roundoff 2^-9 = 1.95e-3), fp32 sums; tolerance 1e-2 on every operation, 5e-2 on the training runs' losses")
        }
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            // The last four are tall enough for the cpu backend's bf16 products (at least 128 rows).
            for (m, n, k) in [(1, 1, 1), (3, 17, 5), (17, 3, 127), (127, 33, 17), (61, 70, 300), (128, 10, 256), (200, 45, 33), (257, 70, 33), (300, 45, 785)] {
                let r = try checks.gemm(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 0.7, beta: -1.3)
                // bf16: against the terms' magnitude, where alpha·AB and beta·C may cancel (`magnitudeError`).
                report("gemm \(ta ? "T" : "N")\(tb ? "T" : "N") \(m)×\(n)×\(k) (alpha 0.7, beta -1.3)\(bf16 ? ", of |terms|" : "")",
                       bf16 ? r.magnitudeError : r.error, tolerance, r.paddingIntact)
                let z = try checks.gemm(transposeA: ta, transposeB: tb, m: m, n: n, k: k)
                report("gemm \(ta ? "T" : "N")\(tb ? "T" : "N") \(m)×\(n)×\(k)", z.error, tolerance, z.paddingIntact)
            }
        }
        for activation in Activation.allCases {
            for (rows, columns) in [(1, 1), (3, 17), (127, 5), (300, 127)] {
                report("bias+\(activation.rawValue) forward \(rows)×\(columns)", try checks.biasActivation(rows: rows, columns: columns, activation: activation), tolerance)
                report("\(activation.rawValue) backward + bias gradient \(rows)×\(columns)", try checks.activationBackward(rows: rows, columns: columns, activation: activation), tolerance)
            }
        }
        for activation in Activation.allCases {
            for (rows, inputSize, hiddenSize, outputSize) in [(1, 3, 5, 2), (17, 33, 127, 10), (127, 300, 129, 45), (128, 784, 512, 256)] {
                report("dense \(activation.rawValue) forward \(rows)×\(inputSize)→\(hiddenSize), backward ←\(outputSize)", try checks.denseLayers(rows: rows, inputSize: inputSize, hiddenSize: hiddenSize, outputSize: outputSize, activation: activation), tolerance)
            }
        }
        for loss in Loss.classificationCases {
            for (rows, inputSize, outputSize) in [(1, 3, 2), (37, 256, 10), (45, 300, 10), (300, 129, 16), (130, 5000, 7), (1030, 4099, 10), (1027, 4096, 10), (9, 2050, 10), (40, 5600, 10), (70, 3700, 16), (61, 33, 17)] {
                for withGradient in [true, false] {
                    let r = try checks.outputLayerLoss(rows: rows, inputSize: inputSize, outputSize: outputSize, loss: loss, withGradient: withGradient)
                    report("output layer + \(loss.rawValue) \(rows)×\(inputSize)→\(outputSize)\(withGradient ? " + gradient" : "")", r.error, tolerance, r.countsExact)
                }
            }
        }
        // The output layer with its backward (the cuda backend's one kernel up to 16 outputs and the weights its
        // shared memory takes: 46.5 KB, or 225 KB with the opt-in on Hopper, which takes 1030×4099→10; 8 warps a
        // block from 513 rows; 10 outputs compiled apart, loading 16 inputs at once from 512 inputs and 4 below, in
        // full batches and a last partial one; 3700×16 and 17 outputs take the composition). With the opt-in, ten
        // outputs and an even number of inputs from 2048 on take output_layer_wide, 8 rows a block: 600×2100 and
        // 1027×4096 (129 groups of rows for 128 blocks, the last of 3 rows), 13×2050 (threads past the inputs'
        // end), 40×5600 (weights the warp-per-row kernel cannot stage).
        for loss in Loss.classificationCases {
            for (rows, inputSize, outputSize) in [(1, 3, 2), (37, 256, 10), (45, 300, 10), (300, 129, 16), (150, 1000, 10), (1030, 256, 10), (600, 2100, 10), (1030, 4099, 10), (1027, 4096, 10), (13, 2050, 10), (40, 5600, 10), (70, 3700, 16), (61, 33, 17)] {
                for activation in rows == 37 || rows == 13 ? Activation.allCases : [.relu] {
                    let r = try checks.outputLayerBackward(rows: rows, inputSize: inputSize, outputSize: outputSize, loss: loss, activation: activation)
                    report("output layer + \(loss == .softmaxCrossEntropy ? "xent" : "mse") + backward·\(activation.rawValue)' \(rows)×\(inputSize)→\(outputSize)", r.error, tolerance, r.countsExact)
                }
            }
        }
        for scale: Float in [1, 30, 1e4] {
            for (rows, columns) in [(1, 2), (3, 10), (127, 17)] {
                let r = try checks.loss(rows: rows, columns: columns, loss: .softmaxCrossEntropy, scale: scale)
                report("softmax cross-entropy \(rows)×\(columns), logits ×\(Int(scale))", max(r.lossError, r.gradientError), tolerance, r.countsExact)
            }
        }
        let mse = try checks.loss(rows: 17, columns: 10, loss: .meanSquaredError, scale: 1)
        report("mean squared error 17×10", max(mse.lossError, mse.gradientError), tolerance, mse.countsExact)
        for loss in Loss.regressionCases {
            for (rows, inputSize, outputSize) in [(1, 3, 1), (37, 64, 1), (130, 257, 3), (1025, 100, 2)] {
                report("regression output layer + \(loss.rawValue) \(rows)×\(inputSize)→\(outputSize)",
                       try checks.regressionOutputLayer(rows: rows, inputSize: inputSize, outputSize: outputSize, tableRows: 2 * rows + 5, loss: loss), tolerance)
            }
        }
        report("gather 33 of 50 samples × 17 features (exact)", 0, 0, try checks.gather(samples: 50, features: 17, batch: 33))
        report("gather 127 of 300 samples × 784 features (exact)", 0, 0, try checks.gather(samples: 300, features: 784, batch: 127))
        report("gather 1025 of 1100 samples × 20 features (exact)", 0, 0, try checks.gather(samples: 1100, features: 20, batch: 1025))
        report("gather 4099 of 5000 samples × 20 features (exact)", 0, 0, try checks.gather(samples: 5000, features: 20, batch: 4099))
        report("gather 33 of 50 float samples × 17 features (exact)", 0, 0, try checks.gather(samples: 50, features: 17, batch: 33, valueType: .float32))
        report("gather 1025 of 1100 float samples × 13 features (exact)", 0, 0, try checks.gather(samples: 1100, features: 13, batch: 1025, valueType: .float32))
        // The first layer's products on gathered batches of mostly-zero images (the cpu backend skips their zeros),
        // with a batch past the weight gradient's depth block of 256 rows.
        for (samples, features, batch, outputs) in [(90, 130, 37, 33), (400, 784, 300, 70)] {
            let e = try checks.inputLayerProducts(samples: samples, features: features, batch: batch, outputs: outputs, alpha: 0.7, beta: -1.3)
            report("first layer, sparse batch \(batch)×\(features), \(outputs) outputs", e, tolerance)
        }
        let optimizers: [OptimizerConfiguration] = [
            try .init(kind: .sgd, learningRate: 0.1),
            try .init(kind: .sgd, learningRate: 0.1, momentum: 0.9, weightDecay: 0.01),
            try .init(kind: .sgd, learningRate: 0.1, momentum: 0.8, nesterov: true, weightDecay: 1e-3),
            try .init(kind: .adam, learningRate: 0.1, weightDecay: 0.1, beta1: 0.8, beta2: 0.99, epsilon: 1e-6),
            try .init(kind: .adamw, learningRate: 0.1, weightDecay: 0.05),
        ]
        for configuration in optimizers {
            // The whole buffer, and (a gap) one layer's part of a network's, its state slots further apart.
            for (count, gap) in [(17, 0), (70_001, 0), (70_001, 1234)] {
                let r = try checks.optimizer(configuration, count: count, gap: gap, step: 3, learningRate: 0.1)
                let label = "\(configuration.kind.rawValue)\(configuration.momentum > 0 ? " momentum \(configuration.momentum)" : "")\(configuration.nesterov ? " nesterov" : "") update, \(count) parameters\(gap > 0 ? ", state slots \(count + gap) apart" : "")"
                report(label, max(r.parameters, r.state), tolerance)
            }
        }
        // Training against a reference backend. With TF32 products a run drifts from the fp32 reference by about 1e-3
        // (measured on an H100); fp32 backends agree to about 1e-6.
        let trainingTolerance = bf16 ? 5e-2 : tolerance > 1e-5 ? 1e-2 : 1e-4
        let dataset = try data.load(logger: logger)
        let subset = dataset.train.subset(0..<800)
        if let cuda = backend as? CUDABackend {
            let allocated = try allocationsInWarmSteps(cuda, subset)
            report("device allocations in 20 warmed-up training steps", Double(allocated), 0)
            // The workload's network at its batch sizes, through the recorded and replayed step (products on two
            // streams at once, algorithms that split k): the change in every parameter after 6 SGD steps, against
            // the cpu backend (itself checked against the naive one). SGD, so the change is the gradients' sum.
            let reference = try CPUBackend()
            for batch in [128, 1024] {
                let steps = try sgdSteps(cuda, reference, dataset.train.subset(0..<(2 * batch)), hidden: [512, 256], batch: batch)
                report("6 SGD steps of 784-512-256-10, batch \(batch), vs cpu", steps, trainingTolerance)
            }
            // The same with each step told the next one's batch, which the cuda backend then gathers inside the
            // step's update (batches of up to 960 rows): the recorded steps that gather, that find their batch
            // gathered, and that gather the next, with new indices at each replay. Against the cpu backend, and
            // against the same steps not told (the same arithmetic: identical parameters and optimizer states).
            let toldNext = try sgdSteps(cuda, reference, dataset.train.subset(0..<256), hidden: [512, 256], batch: 128, toldNext: true)
            report("6 SGD steps of 784-512-256-10, batch 128, each gathering the next batch, vs cpu", toldNext, trainingTolerance)
            for (hidden, batch, eachLayer) in [([512, 256], 57, false), ([300, 70], 128, true)] {
                let difference = try gatheringNext(cuda, dataset.train.subset(0..<(2 * batch)), hidden: hidden, batch: batch, updatesEachLayer: eachLayer)
                report("6 Adam steps of 784-\(hidden.map(String.init).joined(separator: "-"))-10, batch \(batch)\(eachLayer ? ", layer by layer" : ""), gathering the next batch, vs not: largest difference", difference, 0)
            }
            // Wider layers, recorded: an output layer whose weights (80 KB) fit in the one-kernel version's shared
            // memory only with the opt-in, at 1024 rows (8 warps a block); and an output layer too wide for any
            // shared memory (234 KB: the composition).
            for (hidden, batch) in [([2048, 2048], 1024), ([300, 6000], 128)] {
                let steps = try sgdSteps(cuda, reference, dataset.train.subset(0..<(2 * batch)), hidden: hidden, batch: batch)
                report("6 SGD steps of 784-\(hidden.map(String.init).joined(separator: "-"))-10, batch \(batch), vs cpu", steps, trainingTolerance)
            }
            // Each layer's update on its own, beside the backward of the layers below (large networks), against one
            // update at the end: the same network, bit for bit.
            let eachLayer = try layerByLayer(cuda, dataset.train.subset(0..<512))
            report("6 Adam steps of 784-2048-2048-10 updating layer by layer, vs at once: largest difference", eachLayer, 0)
            if bf16 {
                // The bf16 copies' bookkeeping (which copy is current, which kernel writes one beside its output)
                // against converting every operand before each product: the same steps, bit for bit.
                for (hidden, batch, eachLayer) in [([512, 256], 1024, false), ([300, 70], 128, true), ([2048, 2048], 256, true)] {
                    let difference = try bf16CopiesKept(cuda, dataset.train.subset(0..<(2 * batch)), hidden: hidden, batch: batch, updatesEachLayer: eachLayer)
                    report("6 Adam steps of 784-\(hidden.map(String.init).joined(separator: "-"))-10, batch \(batch)\(eachLayer ? ", layer by layer" : ""), bf16 copies kept vs converted at each product: largest difference", difference, 0)
                }
            }
        }
        // A short training run: the losses of each epoch against the naive backend's.
        let reference = try shortRun(NaiveBackend(), subset).metrics
        let (candidate, residentParameters) = try shortRun(backend, subset)
        for (a, b) in zip(reference, candidate) {
            report("training, epoch \(a.epoch): loss \(String(format: "%.5f", b.trainLoss)), naive \(String(format: "%.5f", a.trainLoss))", abs(a.trainLoss - b.trainLoss), trainingTolerance)
        }
        // A regression (float samples, two targets, Huber's loss): each epoch's loss and evaluation RMSE against the
        // naive backend's, the cuda backend's steps recorded after the warm-up as for a classifier.
        let regressionReference = try regressionRun(NaiveBackend()).metrics
        let (regression, regressionParameters) = try regressionRun(backend)
        for (a, b) in zip(regressionReference, regression) {
            report("regression, epoch \(a.epoch): loss \(String(format: "%.5f", b.trainLoss)), naive \(String(format: "%.5f", a.trainLoss))", abs(a.trainLoss - b.trainLoss), trainingTolerance)
            report("regression, epoch \(a.epoch): rmse \(String(format: "%.5f", b.testRMSE ?? .nan)), naive \(String(format: "%.5f", a.testRMSE ?? .nan))",
                   abs((a.testRMSE ?? .nan) - (b.testRMSE ?? .nan)) / max(a.testRMSE ?? 1, 1e-9), trainingTolerance)
        }
        // The same runs with the data streamed from host memory a batch at a time (`StreamedDataset`): the same batches
        // in the same order, gathered the same way from a window in backend memory, so the same weights bit for bit.
        let streamed = try shortRun(backend, subset, streamed: true)
        report("streamed training vs resident, largest difference", largestDifference(streamed.parameters, residentParameters), 0)
        let streamedRegression = try regressionRun(backend, streamed: true)
        report("streamed regression vs resident, largest difference", largestDifference(streamedRegression.parameters, regressionParameters), 0,
               zip(streamedRegression.metrics, regression).allSatisfy { $0.testRMSE == $1.testRMSE })
        print(failures == 0 ? "all checks passed" : "\(failures) check(s) failed")
        if failures > 0 { throw ExitCode(1) }
    }

    /// Trains 5 steps, each told the next one's batch (the first two run directly, one gathering its batch and one
    /// finding it gathered, and time the products' algorithms; the next three record the step's graphs), then counts
    /// the device allocations of 20 more.
    func allocationsInWarmSteps(_ backend: CUDABackend, _ images: LabeledImages) throws -> Int {
        let spec = try NetworkSpec(layerSizes: [images.featureCount, 40, 23, images.classCount])
        let optimizer = OptimizerConfiguration.adam(learningRate: 1e-3)
        let network = try Network(spec: spec, optimizer: optimizer, backend: backend, maxBatch: 64)
        var generator = SeededGenerator(seed: seed)
        network.setParameters(ParameterLayout(spec).initialParameters(for: spec, using: &generator))
        let data = try ResidentDataset(images, on: backend)
        let batch = (0..<Int32(64)).map { $0 }
        for step in 1...5 { network.trainStep(data, batch: batch[...], step: optimizer.step(step, learningRate: 1e-3), next: batch[...]) }
        try backend.synchronize()
        let before = backend.deviceAllocations
        for step in 6...25 { network.trainStep(data, batch: batch[...], step: optimizer.step(step, learningRate: 1e-3), next: batch[...]) }
        try backend.synchronize()
        return backend.deviceAllocations - before
    }

    /// Trains the same network (`hidden` layers between the images and the classes) 6 SGD steps on `backend` and
    /// `reference` and returns ‖Δp − Δp_ref‖ / ‖Δp_ref‖.
    /// With `toldNext`, each step but the last is told the next step's batch (`Network.trainStep`'s `next`).
    func sgdSteps(_ backend: any Backend, _ reference: any Backend, _ images: LabeledImages, hidden: [Int], batch: Int, toldNext: Bool = false) throws -> Double {
        let spec = try NetworkSpec(layerSizes: [images.featureCount] + hidden + [images.classCount])
        let optimizer = try OptimizerConfiguration(kind: .sgd, learningRate: 0.05)
        var generator = SeededGenerator(seed: seed)
        let initial = ParameterLayout(spec).initialParameters(for: spec, using: &generator)
        var changes = [[Double]]()
        for b in [backend, reference] {
            let network = try Network(spec: spec, optimizer: optimizer, backend: b, maxBatch: batch)
            network.setParameters(initial)
            let data = try ResidentDataset(images, on: b)
            let batches = Self.stepBatches(batch)
            for step in 1...6 {
                network.trainStep(data, batch: batches[step][...], step: optimizer.step(step, learningRate: 0.05),
                                  next: toldNext && step < 6 ? batches[step + 1][...] : nil)
            }
            try b.synchronize()
            changes.append(zip(network.parameterValues(), initial).map { Double($0) - Double($1) })
        }
        return relativeError(changes[0], changes[1])
    }

    /// The batches of steps 0 to 7 of the checks that train 6 steps: the first or the second half of `2 × batch`
    /// samples, each step's in an order of its own (a permutation: 5 and the batch sizes used are coprime).
    static func stepBatches(_ batch: Int) -> [[Int32]] {
        precondition(batch % 5 != 0, "a batch of \(batch) rows: the order would repeat samples")
        return (0...7).map { step in (0..<Int32(batch)).map { Int32((step % 2) * batch) + ($0 * 5 + Int32(step)) % Int32(batch) } }
    }

    /// Trains a network six Adam steps of `batch` rows, each step but the last told the next one's batch, and again
    /// not told, and returns the largest difference between the two's parameters and optimizer states.
    func gatheringNext(_ backend: CUDABackend, _ images: LabeledImages, hidden: [Int], batch: Int, updatesEachLayer: Bool) throws -> Double {
        let told = try sixAdamSteps(backend, images, hidden: hidden, batch: batch, updatesEachLayer: updatesEachLayer, toldNext: true)
        let notTold = try sixAdamSteps(backend, images, hidden: hidden, batch: batch, updatesEachLayer: updatesEachLayer, toldNext: false)
        return largestDifference(told, notTold)
    }

    /// The same six steps (each told the next batch) with the backend's bf16 copies kept while current and again
    /// converted before every product: the largest difference between the two's parameters and optimizer states.
    func bf16CopiesKept(_ backend: CUDABackend, _ images: LabeledImages, hidden: [Int], batch: Int, updatesEachLayer: Bool) throws -> Double {
        defer { backend.bf16KeepsCopies = true }
        let kept = try sixAdamSteps(backend, images, hidden: hidden, batch: batch, updatesEachLayer: updatesEachLayer, toldNext: true)
        backend.bf16KeepsCopies = false
        let converted = try sixAdamSteps(backend, images, hidden: hidden, batch: batch, updatesEachLayer: updatesEachLayer, toldNext: true)
        return largestDifference(kept, converted)
    }

    /// Six Adam steps of `batch` rows (`stepBatches`) from the seed's initial parameters, each step but the last told
    /// the next one's batch where `toldNext`: the parameters and optimizer states after them.
    func sixAdamSteps(_ backend: any Backend, _ images: LabeledImages, hidden: [Int], batch: Int, updatesEachLayer: Bool, toldNext: Bool) throws -> [Float] {
        let spec = try NetworkSpec(layerSizes: [images.featureCount] + hidden + [images.classCount])
        let optimizer = OptimizerConfiguration.adam(learningRate: 1e-3)
        var generator = SeededGenerator(seed: seed)
        let initial = ParameterLayout(spec).initialParameters(for: spec, using: &generator)
        let data = try ResidentDataset(images, on: backend)
        let batches = Self.stepBatches(batch)
        let network = try Network(spec: spec, optimizer: optimizer, backend: backend, maxBatch: batch,
                                  schedule: StepSchedule(updatesEachLayer: updatesEachLayer, gathersNextBatch: true))
        network.setParameters(initial)
        for step in 1...6 {
            network.trainStep(data, batch: batches[step][...], step: optimizer.step(step, learningRate: 1e-3),
                              next: toldNext && step < 6 ? batches[step + 1][...] : nil)
        }
        try backend.synchronize()
        return network.parameterValues() + network.optimizerStateValues()
    }

    /// Trains 784-2048-2048-10 six Adam steps of 256 rows with every layer updated at once at the end of the step and
    /// with each layer updated as soon as its gradients are final, and returns the largest difference between the
    /// two's parameters and optimizer states.
    func layerByLayer(_ backend: CUDABackend, _ images: LabeledImages) throws -> Double {
        let spec = try NetworkSpec(layerSizes: [images.featureCount, 2048, 2048, images.classCount])
        let optimizer = OptimizerConfiguration.adam(learningRate: 1e-3)
        var generator = SeededGenerator(seed: seed)
        let initial = ParameterLayout(spec).initialParameters(for: spec, using: &generator)
        let data = try ResidentDataset(images, on: backend)
        var results = [[Float]]()
        for eachLayer in [false, true] {
            let network = try Network(spec: spec, optimizer: optimizer, backend: backend, maxBatch: 256,
                                      schedule: StepSchedule(updatesEachLayer: eachLayer, gathersNextBatch: false))
            network.setParameters(initial)
            for step in 1...6 {
                let first = Int32((step % 2) * 256)
                network.trainStep(data, batch: Array(first..<first + 256)[...], step: optimizer.step(step, learningRate: 1e-3))
            }
            try backend.synchronize()
            results.append(network.parameterValues() + network.optimizerStateValues())
        }
        return zip(results[0], results[1]).reduce(0) { max($0, Double(abs($1.0 - $1.1))) }
    }

    /// 3 epochs of a 13-37-2 tanh network with Huber's loss on 611 seeded rows of float features and two smooth
    /// targets (standardised), batches of 29, evaluated on the same rows after each epoch.
    func regressionRun(_ backend: any Backend, streamed: Bool = false) throws -> (metrics: [EpochMetrics], parameters: [Float]) {
        var g = SeededGenerator(seed: seed ^ 0x5EED)
        let rows = 611, f = 13
        var values = [Float](), targets = [Float]()
        for _ in 0..<rows {
            let x = (0..<f).map { _ in Float(g.gaussian()) }
            values += x
            targets += [sin(2 * x[0]) + x[1] * x[2], x[3] - 0.5 * x[4] + 0.1 * Float(g.gaussian())]
        }
        var set = try LabeledSamples(values: .floats(values), sampleShape: [f], targets: targets, targetNames: ["a", "b"])
        Standardization(fittingTargetsOf: set).applyToTargets(of: &set)
        let spec = try NetworkSpec(layerSizes: [f, 37, 2], activation: .tanh, loss: .huber)
        let configuration = try TrainingConfiguration(
            network: spec, optimizer: .adam(learningRate: 3e-3), schedule: LearningRateSchedule(base: 3e-3),
            epochs: 3, batchSize: 29, seed: seed)
        let network = try Network(spec: spec, optimizer: configuration.optimizer, backend: backend, maxBatch: 1000)
        var initial = configuration.initializationGenerator
        network.setParameters(ParameterLayout(spec).initialParameters(for: spec, using: &initial))
        let data = try (streamed ? DataPlacement.Kind.streamed : .resident).source(set, on: backend, batchCapacity: network.maxBatch)
        let all = (0..<Int32(rows)).map { $0 }
        let trainer = try Trainer(network: network, configuration: configuration, trainingData: data, trainingIndices: all,
                                  evaluation: (data, all, "training rows"))
        _ = try trainer.warmUp()
        return (try trainer.run(), network.parameterValues())
    }

    /// 3 epochs of a 784-40-23-10 network on `images`, batches of 37 (the last one partial), the data resident or
    /// streamed.
    func shortRun(_ backend: any Backend, _ images: LabeledImages, streamed: Bool = false) throws -> (metrics: [EpochMetrics], parameters: [Float]) {
        let spec = try NetworkSpec(layerSizes: [images.featureCount, 40, 23, images.classCount])
        let configuration = try TrainingConfiguration(
            network: spec, optimizer: .adam(learningRate: 2e-3), schedule: LearningRateSchedule(base: 2e-3),
            epochs: 3, batchSize: 37, seed: seed)
        let network = try Network(spec: spec, optimizer: configuration.optimizer, backend: backend, maxBatch: 37)
        var g = configuration.initializationGenerator
        network.setParameters(ParameterLayout(spec).initialParameters(for: spec, using: &g))
        let data = try (streamed ? DataPlacement.Kind.streamed : .resident).source(LabeledSamples(images), on: backend, batchCapacity: 37)
        let trainer = try Trainer(
            network: network, configuration: configuration, trainingData: data,
            trainingIndices: (0..<Int32(images.count)).map { $0 }, evaluation: nil)
        // As `mlp train` does: on the cuda backend the warm-up chooses the products' algorithms inside whole steps
        // (`TrainingStep.tunes`), so the run below checks those choices, and that the warm-up leaves nothing behind.
        _ = try trainer.warmUp()
        return (try trainer.run(), network.parameterValues())
    }

    func largestDifference(_ a: [Float], _ b: [Float]) -> Double {
        a.count != b.count ? .infinity : zip(a, b).reduce(0) { max($0, Double(abs($1.0 - $1.1))) }
    }
}
