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

    static func run(workload: Workload, threads: Int?) throws -> [BenchReport.Op] {
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
                own.optimizerUpdate(parameters: p, gradients: grad, state: state, count: count, step: OptimizerConfiguration.adam().step(10, learningRate: 1e-3)) }),
        ]
        for (label, bytes, body) in elementwise {
            let seconds = time(body)
            results.append(.init(workload: workload.name, operation: label, implementation: "own \(own.kernels.name)",
                                 microseconds: seconds * 1e6, gflops: nil, gigabytesPerSecond: bytes / seconds / 1e9))
        }
        return results
    }
}
