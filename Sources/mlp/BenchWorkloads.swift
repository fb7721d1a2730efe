import Foundation
import MLPCore
import MNIST

/// A benchmark workload of BENCHMARKS.md: layers and batch, trained with Adam 1e-3 on the MNIST training set.
struct Workload: Sendable, Equatable {
    var name: String
    var layers: [Int]
    var batch: Int

    static let all = [
        Workload(name: "small-128", layers: [784, 512, 256, 10], batch: 128),
        Workload(name: "small-1024", layers: [784, 512, 256, 10], batch: 1024),
        Workload(name: "wide-1024", layers: [784, 4096, 4096, 10], batch: 1024),
        // Not in BENCHMARKS.md: the small network's depth with almost no arithmetic, so that a step's time is the
        // fixed cost of each implementation's pipeline (launches, dependencies, the host), the floor under small-128.
        Workload(name: "latency-128", layers: [784, 16, 16, 10], batch: 128),
    ]

    static func named(_ name: String) throws -> Workload {
        guard let w = all.first(where: { $0.name == name }) else {
            throw ConfigurationError(flag: "--workloads", value: name, expected: "one of \(all.map(\.name).joined(separator: ", "))")
        }
        return w
    }

    var spec: NetworkSpec { try! NetworkSpec(layerSizes: layers) }

    /// The matrix products of one training step, as (label, transA, transB, m, n, k), in the order the step runs them.
    var products: [(label: String, transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int)] {
        var out = [(String, Bool, Bool, Int, Int, Int)]()
        // As `Network` issues them (weights stored [in, out]).
        for l in 0..<layers.count - 1 {
            out.append(("fwd L\(l) \(batch)×\(layers[l + 1])×\(layers[l]) NN", false, false, batch, layers[l + 1], layers[l]))
        }
        for l in stride(from: layers.count - 2, through: 0, by: -1) {
            out.append(("dW L\(l) \(layers[l])×\(layers[l + 1])×\(batch) TN", true, false, layers[l], layers[l + 1], batch))
            if l > 0 { out.append(("dX L\(l) \(batch)×\(layers[l])×\(layers[l + 1]) NT", false, true, batch, layers[l], layers[l + 1])) }
        }
        return out
    }
}

/// Median and spread of repeated measurements.
struct Summary: Codable, Sendable {
    var median: Double
    var min: Double
    var max: Double
    var values: [Double]

    init(_ values: [Double]) {
        let s = values.sorted()
        self.values = values
        median = s.isEmpty ? .nan : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2)
        min = s.first ?? .nan
        max = s.last ?? .nan
    }
}

/// Seconds since an arbitrary start, monotonic.
@inline(__always) func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
