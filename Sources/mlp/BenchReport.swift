import ArgumentParser
import CPUBackend
import Foundation

/// What `mlp bench` measured, and how it writes it: JSON for tools, Markdown for people, SVG for the chart.
struct BenchReport: Codable {
    struct Training: Codable {
        var implementation: String
        var workload: String
        var precision: String
        var samplesPerSecond: Summary
        var stepMicroseconds: Double
        var gflops: Double
        var testAccuracy: Double?
        var note: String
        /// "cpu" or "cuda": which measured peak the "% of peak" column divides by.
        var device: String? = nil
    }

    struct Op: Codable {
        var workload: String
        var operation: String
        var implementation: String
        var microseconds: Double
        var gflops: Double?
        var gigabytesPerSecond: Double?

        var line: String {
            let rate = gflops.map { String(format: "%7.1f GFLOP/s", $0) } ?? gigabytesPerSecond.map { String(format: "%7.1f GB/s", $0) } ?? ""
            return "\(workload.padding(toLength: 11, withPad: " ", startingAt: 0)) \(operation.padding(toLength: 42, withPad: " ", startingAt: 0)) \(implementation.padding(toLength: 26, withPad: " ", startingAt: 0)) \(String(format: "%9.1f µs", microseconds)) \(rate)"
        }
    }

    struct Peak: Codable {
        var ownGFLOPs: Double
        var blasGFLOPs: Double?
        var blasName: String?
        /// The GPU's measured product rate (a 4096³ cuBLAS product in the cuda backend's precision), when a GPU ran:
        /// of the first precision measured.
        var gpuGFLOPs: Double? = nil
        /// The same, per precision, when the cuda backend ran in more than one (`--precision bf16,tf32`).
        var gpuGFLOPsByPrecision: [String: Double]? = nil

        /// The GPU's rate in `precision`.
        func gpu(_ precision: String) -> Double? { gpuGFLOPsByPrecision?[precision] ?? gpuGFLOPs }
        var best: Double { max(ownGFLOPs.isNaN ? 0 : ownGFLOPs, blasGFLOPs ?? 0) }
    }

    var machine: MachineInfo
    var command: String
    var cpuBackend = ""
    /// The GPU and its libraries, when the cuda backend ran.
    var gpu: String? = nil
    var peak = Peak(ownGFLOPs: .nan, blasGFLOPs: nil, blasName: nil)
    var ops = [Op]()
    var training = [Training]()
    /// Time per operation inside training steps (`--profile`).
    var profile = [StepProfile.Entry]()
    /// With `--rounds`: per workload, ours ÷ each other implementation in each round.
    var roundRatios: [String]? = nil

    init(machine: MachineInfo, command: String) {
        self.machine = machine
        self.command = command
    }

    static func read(from url: URL) throws -> BenchReport {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do {
            return try decoder.decode(BenchReport.self, from: Data(contentsOf: url))
        } catch {
            throw ValidationError("\(url.path): not a bench.json written by mlp bench (\(error))")
        }
    }

    /// Why a cpu backend that skips zeros can show more GFLOP/s than the measured peak.
    static let denseOperationsNote = "GFLOP/s and % of peak count the dense products' operations (2·m·n·k each) for every "
        + "implementation; the cpu backend's first-layer products skip the inputs' zeros, so its figures can pass the peak"

    /// The measured peaks, one markdown list item each: the CPU's, and the GPU's in each precision that ran.
    func peakLines() -> String {
        var md = String(format: "- measured CPU peak (2048³ SGEMM): own %.1f GFLOP/s", peak.ownGFLOPs) + (peak.blasGFLOPs.map { String(format: ", BLAS (%@) %.1f GFLOP/s", peak.blasName ?? "", $0) } ?? "") + "\n"
        if let byPrecision = peak.gpuGFLOPsByPrecision, byPrecision.count > 1 {
            md += "- measured GPU peak (4096³ cuBLAS product): " + byPrecision.sorted { $0.key < $1.key }
                .map { String(format: "%.0f GFLOP/s in %@", $0.value, $0.key) }.joined(separator: ", ") + "\n"
        } else if let gpu = peak.gpuGFLOPs {
            md += String(format: "- measured GPU peak (4096³ cuBLAS product): %.0f GFLOP/s\n", gpu)
        }
        return md
    }

    func write(to directory: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        try encoder.encode(self).write(to: directory.appendingPathComponent("bench.json"))
        var md = "# mlp bench\n\n"
        md += "- date: \(machine.date)\n- machine: \(machine.summary)\n- command: `\(command)`\n- commit: \(machine.commit)\n"
        md += "- cpu backend: \(cpuBackend)\n"
        if cpuBackend.contains(CPUBackend.skipsZerosDescription) { md += "- \(Self.denseOperationsNote)\n" }
        if let gpu { md += "- cuda backend: \(gpu)\n" }
        md += peakLines() + "\n"
        md += markdownTable() + "\n"
        md += "Test accuracy: after one untimed epoch and the timed runs' epochs, the same epochs for every implementation (Adam, learning rate 1e-3, batch of the workload; a run of a few steps, such as the naive backend's, has none).\n\n"
        let fastest = fastestPeersTable()
        if !fastest.isEmpty { md += fastest + "\n" }
        if let roundRatios {
            md += "\nOurs ÷ each implementation, round by round (the table pools the rounds' timed runs):\n\n"
            for line in roundRatios { md += "- \(line)\n" }
        }
        if !ops.isEmpty {
            md += "\n## Operations\n\n| workload | operation | implementation | µs | GFLOP/s | GB/s |\n| --- | --- | --- | ---: | ---: | ---: |\n"
            for o in ops {
                md += "| \(o.workload) | \(o.operation) | \(o.implementation) | \(String(format: "%.1f", o.microseconds)) | \(o.gflops.map { String(format: "%.1f", $0) } ?? "") | \(o.gigabytesPerSecond.map { String(format: "%.1f", $0) } ?? "") |\n"
            }
        }
        if !profile.isEmpty {
            md += "\n## Where a step's time goes (--profile)\n\n| workload | operation | calls per step | µs per step | share |\n| --- | --- | ---: | ---: | ---: |\n"
            for p in profile {
                md += "| \(p.workload) | \(p.operation) | \(String(format: "%.0f", p.callsPerStep)) | \(String(format: "%.1f", p.microsecondsPerStep)) | \(String(format: "%.1f%%", 100 * p.share)) |\n"
            }
        }
        try md.write(to: directory.appendingPathComponent("bench.md"), atomically: true, encoding: .utf8)
        try svgChart().write(to: directory.appendingPathComponent("bench.svg"), atomically: true, encoding: .utf8)
    }

    /// The rounds' results pooled: one row per implementation, workload and precision, its timed runs those of every
    /// round (the median and the figures derived from it recomputed), in the order of the first round.
    static func pooled(_ rounds: [[Training]]) -> [Training] {
        guard var pooled = rounds.first else { return [] }
        for i in pooled.indices {
            let t = pooled[i]
            let same = rounds.dropFirst().compactMap { round in
                round.first { $0.implementation == t.implementation && $0.workload == t.workload && $0.precision == t.precision }
            }
            guard !same.isEmpty else { continue }
            let summary = Summary(t.samplesPerSecond.values + same.flatMap(\.samplesPerSecond.values))
            let scale = summary.median / t.samplesPerSecond.median
            pooled[i].samplesPerSecond = summary
            pooled[i].stepMicroseconds = t.stepMicroseconds / scale
            pooled[i].gflops = t.gflops * scale
            pooled[i].testAccuracy = same.last?.testAccuracy ?? t.testAccuracy
        }
        return pooled
    }

    /// The row every other of `workload` and `precision` is compared with: the cuda backend's where it ran, else the
    /// cpu backend's in that precision (`cpu-bf16` for bf16, `cpu` otherwise; its fp32 row for tf32, which the CPU
    /// lacks).
    static func ours(workload: String, precision: String, in rows: [Training]) -> Training? {
        rows.first { $0.workload == workload && $0.implementation == "cuda" && $0.precision == precision }
            ?? rows.first { $0.workload == workload && $0.implementation == (precision == "bf16" ? "cpu-bf16" : "cpu") }
    }

    /// For each workload and precision, ours (`ours(workload:precision:in:)`) ÷ each other implementation, one figure
    /// per round, and their median.
    static func ratiosByRound(_ rounds: [[Training]]) -> [String] {
        guard let first = rounds.first else { return [] }
        var lines = [String]()
        for t in first {
            func ours(_ round: [Training]) -> Training? { Self.ours(workload: t.workload, precision: t.precision, in: round) }
            guard let mine = ours(first), mine.implementation != t.implementation || mine.precision != t.precision else { continue }
            let ratios = rounds.compactMap { round -> Double? in
                guard let o = ours(round), let other = round.first(where: { $0.implementation == t.implementation && $0.workload == t.workload && $0.precision == t.precision }) else { return nil }
                return o.samplesPerSecond.median / other.samplesPerSecond.median
            }
            guard !ratios.isEmpty else { continue }
            let label = "\(t.workload): \(mine.implementation) ÷ \(t.implementation)\(t.precision == "fp32" ? "" : " (\(t.precision))")"
            lines.append("\(label): " + ratios.map { String(format: "%.2f", $0) }.joined(separator: ", ") + String(format: " (median %.2f)", Summary(ratios).median))
        }
        return lines
    }

    /// The training results, with each result's ratio to the naive baseline and the cpu backend's ratio to it.
    func markdownTable() -> String {
        // "ours": `ours(workload:precision:in:)`.
        var md = "| workload | implementation | samples/s (median) | min–max | µs/step | GFLOP/s | % of peak | test accuracy | × naive | ours ÷ this |\n"
        md += "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        for t in training {
            let naive = training.first { $0.workload == t.workload && $0.implementation == "naive" }
            let cpu = Self.ours(workload: t.workload, precision: t.precision, in: training)
            let overNaive = naive.map { String(format: "%.1f×", t.samplesPerSecond.median / $0.samplesPerSecond.median) } ?? ""
            let cpuOver = cpu.map { String(format: "%.2f", $0.samplesPerSecond.median / t.samplesPerSecond.median) } ?? ""
            let devicePeak = t.device == "cuda" ? (peak.gpu(t.precision) ?? 0) : peak.best
            let percent = devicePeak > 0 ? String(format: "%.0f%%", 100 * t.gflops / devicePeak) : ""
            md += "| \(t.workload) | \(t.implementation)\(t.precision == "fp32" ? "" : " (\(t.precision))") | \(Int(t.samplesPerSecond.median).grouped) | \(Int(t.samplesPerSecond.min).grouped)–\(Int(t.samplesPerSecond.max).grouped) | \(String(format: "%.0f", t.stepMicroseconds)) | \(String(format: "%.1f", t.gflops)) | \(percent) | \(t.testAccuracy.map { $0.percent } ?? "—") | \(overNaive) | \(cpuOver) |\n"
        }
        return md
    }

    /// The framework of a peer's implementation: its name's first word ("jax (scan, x@W)" is JAX's, "torch cuda graph"
    /// PyTorch's); nil for ours and the naive baseline.
    static func framework(of implementation: String) -> String? {
        let name = String(implementation.prefix { $0 != " " })
        return ["naive", "cpu", "cpu-dense", "cpu-bf16", "cuda"].contains(name) ? nil : name
    }

    /// Per workload and precision, the fastest variant of each peer framework, and ours ÷ it
    /// (`ours(workload:precision:in:)`). A peer is written as its best users would write it, so this is the ratio that
    /// counts; the table of every row shows the others.
    ///
    /// A variant that did not train (`untrained()`) is left out: a fast step that learns nothing is no comparison.
    func fastestPeers() -> [(workload: String, precision: String, framework: String, fastest: Training, oursOverIt: Double?)] {
        var found = [(workload: String, precision: String, framework: String, fastest: Training, oursOverIt: Double?)]()
        let leftOut = untrained().map(\.implementation)
        for t in training {
            guard let framework = Self.framework(of: t.implementation), !leftOut.contains(t.implementation) else { continue }
            let ours = Self.ours(workload: t.workload, precision: t.precision, in: training)
            let ratio = ours.map { $0.samplesPerSecond.median / t.samplesPerSecond.median }
            if let i = found.firstIndex(where: { $0.workload == t.workload && $0.precision == t.precision && $0.framework == framework }) {
                if t.samplesPerSecond.median > found[i].fastest.samplesPerSecond.median { found[i] = (t.workload, t.precision, framework, t, ratio) }
            } else {
                found.append((t.workload, t.precision, framework, t, ratio))
            }
        }
        return found
    }

    /// `fastestPeers` as a Markdown table (empty without peers).
    func fastestPeersTable() -> String {
        let rows = fastestPeers()
        guard !rows.isEmpty else { return "" }
        var md = "Against the fastest variant of each framework:\n\n| workload | precision | framework | its fastest variant | µs/step | ours ÷ it |\n| --- | --- | --- | --- | ---: | ---: |\n"
        for r in rows {
            md += "| \(r.workload) | \(r.precision) | \(r.framework) | \(r.fastest.implementation) | \(String(format: "%.0f", r.fastest.stepMicroseconds)) | \(r.oursOverIt.map { String(format: "%.2f", $0) } ?? "") |\n"
        }
        let untrained = untrained()
        if !untrained.isEmpty {
            md += "\nLeft out, as not trained (test accuracy more than \(Int(Self.untrainedMargin * 100)) points below the workload's best): "
                + untrained.map { "\($0.workload) \($0.implementation)\($0.precision == "fp32" ? "" : " (\($0.precision))") at \($0.testAccuracy.map(\.percent) ?? "")" }
                    .joined(separator: ", ") + "\n"
        }
        return md
    }

    /// How far below the best test accuracy of its workload a peer's may fall and still count as trained.
    static let untrainedMargin = 0.05

    /// The peers' rows whose test accuracy falls more than `untrainedMargin` below the best of their workload (any
    /// implementation, any precision, after the same epochs): a variant that trains wrongly.
    func untrained() -> [Training] {
        training.filter { t in
            guard Self.framework(of: t.implementation) != nil, let accuracy = t.testAccuracy else { return false }
            let best = training.filter { $0.workload == t.workload }.compactMap(\.testAccuracy).max() ?? accuracy
            return accuracy < best - Self.untrainedMargin
        }
    }

    /// Horizontal bars, one group per workload, log-scaled samples per second, with axis, units and legend.
    func svgChart() -> String {
        let workloads = training.map(\.workload).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let implementations = training.map { $0.implementation + ($0.precision == "fp32" ? "" : " \($0.precision)") }
            .reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"]
        let barHeight = 16.0, groupGap = 22.0, left = 110.0, plotWidth = 560.0, top = 66.0
        let values = training.map(\.samplesPerSecond.median).filter { $0 > 0 }
        let lo = floor(log10(values.min() ?? 1)), hi = ceil(log10(values.max() ?? 10))
        let span = max(hi - lo, 1)
        func x(_ v: Double) -> Double { left + (log10(v) - lo) / span * plotWidth }
        var y = top
        var body = ""
        for w in workloads {
            let rows = training.filter { $0.workload == w }
            body += "<text x=\"\(left - 8)\" y=\"\(y + Double(rows.count) * barHeight / 2 + 4)\" text-anchor=\"end\" font-weight=\"bold\">\(w)</text>\n"
            for t in rows {
                let key = t.implementation + (t.precision == "fp32" ? "" : " \(t.precision)")
                let color = palette[(implementations.firstIndex(of: key) ?? 0) % palette.count]
                let v = t.samplesPerSecond.median
                body += "<rect x=\"\(left)\" y=\"\(y)\" width=\"\(max(1, x(v) - left))\" height=\"\(barHeight - 3)\" fill=\"\(color)\"><title>\(key): \(Int(v)) samples/s</title></rect>\n"
                body += "<text x=\"\(x(v) + 4)\" y=\"\(y + barHeight - 5)\" font-size=\"11\">\(Int(v).grouped)</text>\n"
                y += barHeight
            }
            y += groupGap
        }
        var axis = "<line x1=\"\(left)\" y1=\"\(y)\" x2=\"\(left + plotWidth)\" y2=\"\(y)\" stroke=\"#333\"/>\n"
        for e in Int(lo)...Int(hi) {
            let xv = left + (Double(e) - lo) / span * plotWidth
            axis += "<line x1=\"\(xv)\" y1=\"\(top - 6)\" x2=\"\(xv)\" y2=\"\(y)\" stroke=\"#ddd\"/>\n"
            axis += "<text x=\"\(xv)\" y=\"\(y + 16)\" text-anchor=\"middle\" font-size=\"11\">10^\(e)</text>\n"
        }
        axis += "<text x=\"\(left + plotWidth / 2)\" y=\"\(y + 36)\" text-anchor=\"middle\">training samples per second (log scale, median of repeats; longer is faster)</text>\n"
        var legend = ""
        for (i, name) in implementations.enumerated() {
            let lx = left + Double(i % 4) * 150, ly = y + 56 + Double(i / 4) * 18
            legend += "<rect x=\"\(lx)\" y=\"\(ly - 10)\" width=\"12\" height=\"12\" fill=\"\(palette[i % palette.count])\"/><text x=\"\(lx + 18)\" y=\"\(ly)\" font-size=\"12\">\(name)</text>\n"
        }
        let height = y + 70 + Double((implementations.count + 3) / 4) * 18
        let title = "<text x=\"\(left)\" y=\"24\" font-size=\"15\" font-weight=\"bold\">MLP training throughput (MNIST, Adam, \(Set(training.map(\.precision)).sorted().joined(separator: "/")))</text>\n"
            + "<text x=\"\(left)\" y=\"44\" font-size=\"12\">\(gpu.map { $0.components(separatedBy: ", compute").first ?? $0 } ?? "\(machine.cpuModel), \(machine.cores) cores"), \(machine.date.prefix(10)), commit \(machine.commit)</text>\n"
        return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(left + plotWidth + 120))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
            + title + axis + body + legend + "</svg>\n"
    }
}

/// The machine a benchmark ran on.
struct MachineInfo: Codable {
    var cpuModel: String
    var cores: Int
    var operatingSystem: String
    var date: String
    var commit: String

    var summary: String { "\(cpuModel), \(cores) cores, \(operatingSystem)" }

    /// This machine, and `commit` (else the source tree's, where git finds it).
    static func current(commit: String? = nil) -> MachineInfo {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last!.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
        let formatter = ISO8601DateFormatter()
        return MachineInfo(
            cpuModel: model, cores: ProcessInfo.processInfo.activeProcessorCount,
            operatingSystem: ProcessInfo.processInfo.operatingSystemVersionString, date: formatter.string(from: Date()),
            commit: commit ?? gitCommit() ?? "unknown")
    }

    static func gitCommit() -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        // The source tree the tool was built from, wherever it runs from.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        process.arguments = ["git", "-C", root.path, "rev-parse", "--short", "HEAD"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        process.waitUntilExit()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return process.terminationStatus == 0 && !text.isEmpty ? text : nil
    }
}

extension BenchReport.Training {
    var line: String {
        let acc = testAccuracy.map { "  test acc \($0.percent)" } ?? ""
        return "\(workload.padding(toLength: 11, withPad: " ", startingAt: 0)) \((implementation + (precision == "fp32" ? "" : " \(precision)")).padding(toLength: 14, withPad: " ", startingAt: 0)) \(Int(samplesPerSecond.median).grouped.leftPadded(11)) samples/s (\(Int(samplesPerSecond.min).grouped)–\(Int(samplesPerSecond.max).grouped))  \(String(format: "%7.0f", stepMicroseconds)) µs/step  \(String(format: "%6.1f", gflops)) GFLOP/s\(acc)"
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}
