import ArgumentParser
import Foundation

/// `mlp plot`: training curves from metrics files, as one SVG.
struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw training curves (loss, accuracy or RMSE, learning rate per epoch) from runs' metrics, as an SVG.",
        discussion: """
            Each path is a run folder (its metrics.jsonl, as `mlp train --output` writes it) or a metrics file (JSON \
            Lines, as --metrics writes it; a file that several runs appended to gives a curve for each run). Several \
            runs are drawn in one chart to compare them, a colour each: the training figures solid, the evaluation's \
            dashed.
            """)

    @Argument(help: ArgumentHelp("Run folders or metrics files.", valueName: "run|metrics.jsonl"))
    var paths: [String]

    @Option(help: ArgumentHelp("The SVG file to write. (default: curves.svg in the first run's folder, or beside its metrics file)", valueName: "file"))
    var output: String?

    func validate() throws {
        if paths.isEmpty { throw ValidationError("give a run folder or a metrics file") }
    }

    func run() throws {
        var series = [RunCurves]()
        for path in paths { series += try RunCurves.read(path) }
        guard !series.isEmpty else { throw ValidationError("\(paths.joined(separator: ", ")): no epochs in the metrics") }
        let target = output ?? Self.defaultOutput(for: paths[0])
        let svg = CurvesChart(runs: series).svg()
        do {
            try Data(svg.utf8).write(to: URL(fileURLWithPath: target), options: .atomic)
        } catch {
            throw IOFailure(path: target, reason: "cannot write: \((error as NSError).localizedDescription)")
        }
        print("wrote \(target): \(series.count) run\(series.count == 1 ? "" : "s"), \(series.map(\.epochs.count).max() ?? 0) epochs")
    }

    static func defaultOutput(for path: String) -> String {
        var isDirectory: ObjCBool = false
        let url = URL(fileURLWithPath: path)
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            return url.appendingPathComponent("curves.svg").path
        }
        return url.deletingPathExtension().appendingPathExtension("svg").path
    }
}

/// One run's figures per epoch, from its metrics lines.
struct RunCurves {
    var name: String
    var epochs: [Int] = []
    var trainLoss: [Double?] = []
    var testLoss: [Double?] = []
    var trainAccuracy: [Double?] = []
    var testAccuracy: [Double?] = []
    var testRMSE: [Double?] = []
    var learningRate: [Double?] = []
    /// "test" or "validation".
    var evaluatedOn = "test"

    /// The runs of a run folder or a metrics file, in the order they first appear; for an epoch written twice (a run
    /// resumed after it), the later line.
    static func read(_ path: String) throws -> [RunCurves] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ValidationError("\(path): no such file or folder")
        }
        let file = isDirectory.boolValue ? URL(fileURLWithPath: path).appendingPathComponent("metrics.jsonl").path : path
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw MetricsFileError(path: file, reason: isDirectory.boolValue ? "cannot read the run's metrics.jsonl" : "cannot read")
        }
        var order = [String](), lines = [String: [Int: [String: Any]]]()
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
                throw MetricsFileError(path: file, reason: "line \(number + 1) is not a JSON object (a metrics file holds one per epoch)")
            }
            guard object["best_on_test"] == nil, let epoch = object["epoch"] as? Int else { continue }
            let run = object["run"] as? String ?? "run"
            if lines[run] == nil { order.append(run) }
            lines[run, default: [:]][epoch] = object
        }
        let base = isDirectory.boolValue ? URL(fileURLWithPath: path).lastPathComponent : URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        return order.map { run in
            var curves = RunCurves(name: order.count == 1 ? base : "\(base) \(run)")
            for (epoch, o) in lines[run]!.sorted(by: { $0.key < $1.key }) {
                curves.epochs.append(epoch)
                curves.trainLoss.append(o["train_loss"] as? Double)
                curves.testLoss.append(o["test_loss"] as? Double)
                curves.trainAccuracy.append(o["train_accuracy"] as? Double)
                curves.testAccuracy.append(o["test_accuracy"] as? Double)
                curves.testRMSE.append(o["test_rmse"] as? Double)
                curves.learningRate.append(o["learning_rate"] as? Double)
                if let on = o["evaluated_on"] as? String { curves.evaluatedOn = on }
            }
            return curves
        }
    }
}

/// A metrics file that cannot be read as one (exit status 65, bad data).
struct MetricsFileError: Error, CustomStringConvertible {
    var path: String
    var reason: String
    var description: String { "\(path): \(reason)" }
}

/// The chart: three panels sharing the epoch axis (loss; accuracy, or a regression's RMSE; learning rate), a colour
/// per run, training solid and evaluation dashed. Each curve is a `<polyline>` with an `id` naming its run, panel and
/// figure (`run0-loss-train`), so that tools (and the tests) can find them.
struct CurvesChart {
    var runs: [RunCurves]

    static let colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    let width = 720.0, panelHeight = 200.0, left = 70.0, top = 40.0, gap = 50.0, right = 170.0

    func svg() -> String {
        let regression = runs.allSatisfy { $0.testAccuracy.allSatisfy { $0 == nil } } && runs.contains { $0.testRMSE.contains { $0 != nil } }
        let maxEpoch = runs.flatMap(\.epochs).max() ?? 1
        var panels: [(title: String, key: String, lines: [(run: Int, figure: String, dashed: Bool, values: [Double?])])] = [
            ("loss", "loss", runs.indices.flatMap { i in [(i, "train", false, runs[i].trainLoss), (i, runs[i].evaluatedOn, true, runs[i].testLoss)] }),
        ]
        if regression {
            panels.append(("RMSE (the targets' units)", "rmse", runs.indices.map { i in (i, runs[i].evaluatedOn, true, runs[i].testRMSE) }))
        } else {
            panels.append(("accuracy", "accuracy", runs.indices.flatMap { i in [(i, "train", false, runs[i].trainAccuracy), (i, runs[i].evaluatedOn, true, runs[i].testAccuracy)] }))
        }
        panels.append(("learning rate", "lr", runs.indices.map { i in (i, "train", false, runs[i].learningRate) }))
        let height = top + Double(panels.count) * (panelHeight + gap)
        var body = ""
        for (p, panel) in panels.enumerated() {
            let y0 = top + Double(p) * (panelHeight + gap)
            let values = panel.lines.flatMap { $0.values.compactMap { $0 } }.filter(\.isFinite)
            var low = values.min() ?? 0, high = values.max() ?? 1
            // The learning rate from 0; the figures over their own range (accuracies near 1 would be a flat line),
            // with a margin.
            if panel.key == "lr" { low = min(low, 0) }
            if high - low < 1e-12 { high = low + 1 }
            if panel.key != "lr" {
                // Not below 0 for figures that cannot be, nor above 1 for an accuracy.
                let floor = (values.min() ?? 0) >= 0 ? 0.0 : -Double.infinity
                (low, high) = (max(low - 0.04 * (high - low), floor), high + 0.04 * (high - low))
                if panel.key == "accuracy" { high = min(high, 1) }
            }
            func x(_ epoch: Int) -> Double { left + (maxEpoch <= 1 ? 0.5 : Double(epoch - 1) / Double(maxEpoch - 1)) * (width - left - right) }
            func y(_ v: Double) -> Double { y0 + panelHeight - (v - low) / (high - low) * panelHeight }
            body += "<g id=\"panel-\(panel.key)\">\n"
            body += "<text x=\"\(left)\" y=\"\(fmt(y0 - 8))\" font-weight=\"bold\">\(escape(panel.title))</text>\n"
            body += "<rect x=\"\(left)\" y=\"\(fmt(y0))\" width=\"\(fmt(width - left - right))\" height=\"\(fmt(panelHeight))\" fill=\"none\" stroke=\"#999\"/>\n"
            for k in 0...4 {
                let v = low + (high - low) * Double(k) / 4
                body += "<text x=\"\(fmt(left - 6))\" y=\"\(fmt(y(v) + 4))\" text-anchor=\"end\" font-size=\"10\">\(String(format: "%.3g", v))</text>\n"
            }
            for line in panel.lines {
                let points = zip(runs[line.run].epochs, line.values).compactMap { e, v in v.flatMap { $0.isFinite ? "\(fmt(x(e))),\(fmt(y($0)))" : nil } }
                guard !points.isEmpty else { continue }
                let colour = Self.colours[line.run % Self.colours.count]
                body += "<polyline id=\"run\(line.run)-\(panel.key)-\(line.figure)\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.8\"\(line.dashed ? " stroke-dasharray=\"6,4\"" : "") points=\"\(points.joined(separator: " "))\"><title>\(escape(runs[line.run].name)) \(line.figure) \(panel.key)</title></polyline>\n"
            }
            body += "</g>\n"
        }
        // The epoch axis under the last panel, and the legend.
        let axisY = top + Double(panels.count - 1) * (panelHeight + gap) + panelHeight + 16
        for e in Set([1, maxEpoch, (maxEpoch + 1) / 2]).sorted() {
            let x = left + (maxEpoch <= 1 ? 0.5 : Double(e - 1) / Double(maxEpoch - 1)) * (width - left - right)
            body += "<text x=\"\(fmt(x))\" y=\"\(fmt(axisY))\" text-anchor=\"middle\" font-size=\"10\">\(e)</text>\n"
        }
        body += "<text x=\"\(fmt((width - right + left) / 2))\" y=\"\(fmt(axisY + 16))\" text-anchor=\"middle\">epoch</text>\n"
        var legend = ""
        for (i, run) in runs.enumerated() {
            let y = top + 14 + Double(i) * 34
            let colour = Self.colours[i % Self.colours.count]
            legend += "<text x=\"\(fmt(width - right + 12))\" y=\"\(fmt(y))\" fill=\"\(colour)\">\(escape(run.name))</text>\n"
            legend += "<text x=\"\(fmt(width - right + 12))\" y=\"\(fmt(y + 14))\" font-size=\"10\">solid train, dashed \(escape(run.evaluatedOn))</text>\n"
        }
        return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height + 30))\" font-family=\"sans-serif\" font-size=\"12\">\n"
            + "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n" + body + legend + "</svg>\n"
    }

    func fmt(_ v: Double) -> String { String(format: "%.1f", v) }
    func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;")
    }
}
