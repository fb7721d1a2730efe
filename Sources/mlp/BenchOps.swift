import CPUBackend
import Foundation
import MLPCore
import MNIST

/// Each matrix product of a workload's step, and each fused elementwise pass, timed on its own.
enum OpBenchmarks {
    static func time(repeats: Int = 20, _ body: () -> Void) -> Double {
        body()  // warm
        var samples = [Double]()
        for _ in 0..<repeats {
            let t = now()
            body()
            samples.append(now() - t)
        }
        return Summary(samples).median
    }

    static func run(workload: Workload, threads: Int?, data: LabeledImages? = nil) throws -> [BenchReport.Op] {
        var results = [BenchReport.Op]()
        let own = try CPUBackend(threads: threads, gemm: .own)
        let blas = try? CPUBackend(threads: threads, gemm: .blas)
        var g = SeededGenerator(seed: 3)
        func buffer(_ backend: CPUBackend, _ n: Int) throws -> DevicePointer<Float> {
            let p = try backend.allocate(Float.self, count: n)
            for i in 0..<n { p.host[i] = Float(g.unitDouble()) - 0.5 }
            return p
        }
        // Every product on our GEMM first, then on the BLAS: a BLAS's threads keep spinning for a while after a
        // call and would slow down whatever runs next.
        for backend in [own] + (blas.map { [$0] } ?? []) {
            for product in workload.products {
                let (m, n, k) = (product.m, product.n, product.k)
                let flops = 2.0 * Double(m * n * k)
                let a = try buffer(backend, m * k), b = try buffer(backend, k * n), c = try buffer(backend, m * n)
                defer { backend.free(a); backend.free(b); backend.free(c) }
                let lda = product.transposeA ? m : k, ldb = product.transposeB ? k : n
                let seconds = time {
                    backend.gemm(transposeA: product.transposeA, transposeB: product.transposeB, m: m, n: n, k: k, alpha: 1,
                                 a: a, lda: lda, b: b, ldb: ldb, beta: 0, c: c, ldc: n)
                }
                let name = backend.gemmProvider == .own ? "own \(backend.kernels.name)" : "BLAS \(backend.blas!.name)"
                results.append(.init(workload: workload.name, operation: "gemm \(product.label)", implementation: name,
                                     microseconds: seconds * 1e6, gflops: flops / seconds / 1e9, gigabytesPerSecond: nil))
            }
        }
        if blas != nil { letBLASThreadsSettle() }
        if let data, own.skipsInputZeros { results += try inputLayerProducts(workload: workload, backend: own, data: data) }
        // Elementwise passes on the widest hidden layer and the whole parameter buffer.
        let rows = workload.batch, columns = workload.layers[1]
        let count = ParameterLayout(workload.spec).count
        let values = try buffer(own, rows * columns), gradient = try buffer(own, rows * columns), bias = try buffer(own, columns)
        let p = try buffer(own, count), grad = try buffer(own, count), state = try own.allocate(Float.self, count: 2 * count)
        defer { for x in [values, gradient, bias, p, grad, state] { own.free(x) } }
        let activationBytes = Double(rows * columns * 4)
        let elementwise: [(String, Double, () -> Void)] = [
            ("bias+relu forward \(rows)×\(columns)", 2 * activationBytes, {
                own.biasActivationForward(values: values, bias: bias, rows: rows, columns: columns, activation: .relu) }),
            ("relu backward + bias gradient \(rows)×\(columns)", 3 * activationBytes, {
                own.activationBackward(gradient: gradient, biasGradient: bias, outputs: values, rows: rows, columns: columns, activation: .relu) }),
            ("adam update \(count) parameters", Double(count) * 4 * 7, {
                own.optimizerUpdate(ParameterUpdate(parameters: p, gradients: grad, state: state, count: count, step: OptimizerConfiguration.adam().step(10, learningRate: 1e-3))) }),
        ]
        for (label, bytes, body) in elementwise {
            let seconds = time(body)
            results.append(.init(workload: workload.name, operation: label, implementation: "own \(own.kernels.name)",
                                 microseconds: seconds * 1e6, gflops: nil, gigabytesPerSecond: bytes / seconds / 1e9))
        }
        return results
    }

    /// The first layer's two products on a real batch (the first `batch` training images, gathered as a step
    /// gathers them), with the inputs' zeros skipped and through the dense product, timed in turn so that this
    /// machine's changes of speed fall on both alike. GFLOP/s count the dense product's operations in both, so
    /// that they compare with the lines above; the share of the inputs that is nonzero is in the label ("19%≠0").
    static func inputLayerProducts(workload: Workload, backend: CPUBackend, data: LabeledImages, repeats: Int = 30) throws -> [BenchReport.Op] {
        let rows = workload.batch, features = workload.layers[0], outputs = workload.layers[1]
        guard data.featureCount == features, data.count >= rows else { return [] }
        let resident = try ResidentDataset(data, on: backend)
        let inputs = try backend.allocate(Float.self, count: rows * features), labels = try backend.allocate(Int32.self, count: rows)
        var g = SeededGenerator(seed: 4)
        func buffer(_ n: Int) throws -> DevicePointer<Float> {
            let p = try backend.allocate(Float.self, count: n)
            for i in 0..<n { p.host[i] = Float(g.unitDouble()) - 0.5 }
            return p
        }
        // The weight gradient writes its own buffer: written into W, repeated products would grow it without bound.
        let w = try buffer(features * outputs), z = try buffer(rows * outputs), dw = try buffer(features * outputs)
        defer { for p in [inputs, w, z, dw] { backend.free(p) }; backend.free(labels) }
        (0..<Int32(rows)).map { $0 }.withUnsafeBufferPointer {
            backend.gatherBatch(BatchGather(inputs: inputs, labels: labels, from: resident, indices: $0, normalization: .unit))
        }
        guard backend.skipsZerosOfLastBatch else { return [] }
        // The same batch through the dense product: a copy, which no gather marked as sparse.
        let dense = try backend.allocate(Float.self, count: rows * features)
        defer { backend.free(dense) }
        dense.host.update(from: inputs.host, count: rows * features)
        var nonzero = 0
        for i in 0..<rows * features where inputs.host[i] != 0 { nonzero += 1 }
        let share = String(format: "%.0f%%≠0", 100 * Double(nonzero) / Double(rows * features))
        let flops = 2.0 * Double(rows * outputs * features)
        func forward(_ x: DevicePointer<Float>) {
            backend.gemm(transposeA: false, transposeB: false, m: rows, n: outputs, k: features, alpha: 1, a: x, lda: features,
                         b: w, ldb: outputs, beta: 0, c: z, ldc: outputs)
        }
        func weightGradient(_ x: DevicePointer<Float>) {
            backend.gemm(transposeA: true, transposeB: false, m: features, n: outputs, k: rows, alpha: 1, a: x, lda: features,
                         b: z, ldb: outputs, beta: 0, c: dw, ldc: outputs)
        }
        var results = [BenchReport.Op]()
        for (label, product) in [("fwd L0 \(rows)×\(outputs)×\(features) NN", forward), ("dW L0 \(features)×\(outputs)×\(rows) TN", weightGradient)] {
            product(inputs); product(dense)
            var skipping = [Double](), plain = [Double]()
            for _ in 0..<repeats {
                var t = now()
                product(inputs)
                skipping.append(now() - t)
                t = now()
                product(dense)
                plain.append(now() - t)
            }
            for (implementation, samples) in [("own \(backend.kernels.name), zeros skipped", skipping), ("own \(backend.kernels.name), dense", plain)] {
                let seconds = Summary(samples).median
                results.append(.init(workload: workload.name, operation: "gemm \(label), MNIST \(share)", implementation: implementation,
                                     microseconds: seconds * 1e6, gflops: flops / seconds / 1e9, gigabytesPerSecond: nil))
            }
        }
        return results
    }
}
