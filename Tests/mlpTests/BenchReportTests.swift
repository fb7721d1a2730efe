@testable import mlp
import Testing

/// `mlp bench --rounds`: the rounds' timed runs pooled per implementation, and ours ÷ each peer round by round.
@Suite struct BenchReportTests {
    static func row(_ implementation: String, _ workload: String, _ rates: [Double], device: String = "cpu") -> BenchReport.Training {
        let summary = Summary(rates)
        return BenchReport.Training(implementation: implementation, workload: workload, precision: "fp32", samplesPerSecond: summary,
                                    stepMicroseconds: 128 / summary.median * 1e6, gflops: summary.median * 0.003, testAccuracy: 0.97,
                                    note: "", device: device)
    }

    @Test func roundsArePooledAndTheirRatiosKept() {
        // A slow second round for everyone: the ratios stay near 1.2 and 0.9 whatever the phase.
        let rounds = [
            [Self.row("cpu", "small-128", [60_000, 61_000, 59_000]), Self.row("jax (scan)", "small-128", [50_000, 50_500, 49_500]),
             Self.row("torch", "small-128", [66_000, 67_000, 65_000])],
            [Self.row("cpu", "small-128", [36_000, 37_000, 35_000]), Self.row("jax (scan)", "small-128", [30_000, 30_500, 29_500]),
             Self.row("torch", "small-128", [40_000, 41_000, 39_000])],
            [Self.row("cpu", "small-128", [61_000, 62_000, 60_000]), Self.row("jax (scan)", "small-128", [51_000, 50_000, 52_000]),
             Self.row("torch", "small-128", [67_000, 68_000, 66_000])],
        ]
        let pooled = BenchReport.pooled(rounds)
        #expect(pooled.map(\.implementation) == ["cpu", "jax (scan)", "torch"])
        #expect(pooled[0].samplesPerSecond.values.count == 9)
        #expect(pooled[0].samplesPerSecond.median == 60_000)
        #expect(pooled[0].samplesPerSecond.min == 35_000 && pooled[0].samplesPerSecond.max == 62_000)
        // Derived figures follow the pooled median.
        #expect(abs(pooled[0].stepMicroseconds - 128 / 60_000 * 1e6) < 1e-6)
        #expect(abs(pooled[0].gflops - 60_000 * 0.003) < 1e-9)

        let lines = BenchReport.ratiosByRound(rounds)
        #expect(lines == [
            "small-128: cpu ÷ jax (scan): 1.20, 1.20, 1.20 (median 1.20)",
            "small-128: cpu ÷ torch: 0.91, 0.90, 0.91 (median 0.91)",
        ])
    }

    @Test func aPeerMissingFromARoundIsLeftOutOfThatRound() {
        let rounds = [
            [Self.row("cpu", "small-1024", [80_000]), Self.row("numpy", "small-1024", [40_000])],
            [Self.row("cpu", "small-1024", [70_000])],
        ]
        #expect(BenchReport.ratiosByRound(rounds) == ["small-1024: cpu ÷ numpy: 2.00 (median 2.00)"])
        #expect(BenchReport.pooled(rounds)[1].samplesPerSecond.values == [40_000])
    }

    /// Each framework is counted at its fastest variant (issue 28: JAX in both weight layouts, PyTorch eager and
    /// graphed), per workload, against the cuda backend where it ran.
    @Test func eachFrameworkCountsAtItsFastestVariant() {
        var report = BenchReport(machine: MachineInfo.current(commit: "test"), command: "test")
        report.training = [
            Self.row("cuda", "small-128", [2_600_000], device: "cuda"), Self.row("jax (scan, x@W)", "small-128", [2_150_000], device: "cuda"),
            Self.row("jax (scan, x@w.T)", "small-128", [2_000_000], device: "cuda"), Self.row("torch eager", "small-128", [100_000], device: "cuda"),
            Self.row("torch cuda graph", "small-128", [500_000], device: "cuda"),
            Self.row("cuda", "small-1024", [8_000_000], device: "cuda"), Self.row("jax (scan, x@W)", "small-1024", [7_000_000], device: "cuda"),
            Self.row("jax (scan, x@w.T)", "small-1024", [7_400_000], device: "cuda"),
        ]
        let fastest = report.fastestPeers()
        #expect(fastest.map { "\($0.workload) \($0.framework): \($0.fastest.implementation)" } == [
            "small-128 jax: jax (scan, x@W)", "small-128 torch: torch cuda graph", "small-1024 jax: jax (scan, x@w.T)",
        ])
        #expect(fastest.map { $0.oursOverIt.map { (($0 * 100).rounded() / 100) } } == [1.21, 5.2, 1.08])
        let table = report.fastestPeersTable()
        #expect(table.contains("| small-1024 | fp32 | jax | jax (scan, x@w.T) |"))
        #expect(BenchReport.framework(of: "cpu-dense") == nil && BenchReport.framework(of: "numpy") == "numpy")
    }

    /// `mlp bench --precision bf16,tf32`: the cuda backend's rows in each precision are compared with the peers of the
    /// same precision only, and each row's share of the peak is of its own precision's measured rate.
    @Test func eachPrecisionIsComparedWithinItself() {
        func row(_ implementation: String, _ precision: String, _ rate: Double) -> BenchReport.Training {
            var t = Self.row(implementation, "wide-1024", [rate], device: "cuda")
            t.precision = precision
            return t
        }
        var report = BenchReport(machine: MachineInfo.current(commit: "test"), command: "test")
        report.training = [row("cuda", "bf16", 3_000_000), row("cuda", "tf32", 1_700_000),
                           row("jax (scan, x@W, bf16 activations)", "bf16", 2_000_000), row("jax (scan, x@W)", "tf32", 1_500_000)]
        report.peak.gpuGFLOPs = 600_000
        report.peak.gpuGFLOPsByPrecision = ["bf16": 600_000, "tf32": 300_000]
        let fastest = report.fastestPeers()
        #expect(fastest.map { "\($0.precision) \($0.fastest.implementation)" } == ["bf16 jax (scan, x@W, bf16 activations)", "tf32 jax (scan, x@W)"])
        #expect(fastest.map { $0.oursOverIt.map { (($0 * 100).rounded() / 100) } } == [1.5, 1.13])
        // gflops is 0.003 × samples/s: 9,000 GFLOP/s of bf16's 600,000 is 2%, 5,100 of tf32's 300,000 is 2% (1.7).
        let table = report.markdownTable()
        #expect(table.contains("| wide-1024 | cuda (bf16) | 3,000,000 |") && table.contains("| 9000.0 | 2% |"))
        #expect(table.contains("| wide-1024 | cuda (tf32) | 1,700,000 |") && table.contains("| 5100.0 | 2% |"))
        #expect(report.peakLines().contains("600000 GFLOP/s in bf16, 300000 GFLOP/s in tf32"))
    }

    /// On the CPU, bf16 peers are compared with the cpu backend's bf16 row, fp32 peers with its fp32 row.
    @Test func cpuBF16PeersAreComparedWithCPUBF16() {
        func row(_ implementation: String, _ precision: String, _ rate: Double) -> BenchReport.Training {
            var t = Self.row(implementation, "small-1024", [rate])
            t.precision = precision
            return t
        }
        var report = BenchReport(machine: MachineInfo.current(commit: "test"), command: "test")
        report.training = [row("cpu", "fp32", 100_000), row("cpu-bf16", "bf16", 140_000), row("jax (scan, x@W)", "fp32", 70_000),
                           row("jax (scan, x@W, bf16 activations)", "bf16", 56_000), row("torch", "bf16", 40_000)]
        #expect(report.fastestPeers().map { $0.oursOverIt.map { (($0 * 100).rounded() / 100) } } == [1.43, 2.5, 3.5])
        #expect(BenchReport.ratiosByRound([report.training]) == [
            "small-1024: cpu ÷ jax (scan, x@W): 1.43 (median 1.43)",
            "small-1024: cpu-bf16 ÷ jax (scan, x@W, bf16 activations) (bf16): 2.50 (median 2.50)",
            "small-1024: cpu-bf16 ÷ torch (bf16): 3.50 (median 3.50)",
        ])
    }

    /// A variant that trains wrongly (PyTorch's hand-captured compiled step on an H100: 56% after four epochs) is not
    /// counted as its framework's fastest, and the table says it was left out.
    @Test func aVariantThatDidNotTrainIsLeftOut() {
        var report = BenchReport(machine: MachineInfo.current(commit: "test"), command: "test")
        var broken = Self.row("torch compile graph", "small-128", [1_200_000], device: "cuda")
        broken.testAccuracy = 0.563
        report.training = [Self.row("cuda", "small-128", [2_600_000], device: "cuda"), broken,
                           Self.row("torch cuda graph", "small-128", [800_000], device: "cuda")]
        #expect(report.untrained().map(\.implementation) == ["torch compile graph"])
        #expect(report.fastestPeers().map(\.fastest.implementation) == ["torch cuda graph"])
        #expect(report.fastestPeersTable().contains("Left out, as not trained (test accuracy more than 5 points below the workload's best): small-128 torch compile graph at 56.30%"))
    }
}
