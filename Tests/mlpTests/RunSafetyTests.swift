import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import MLPCore
@testable import mlp
import Testing
import TestSupport

/// What a run writes or reads must not lose the user's work (issue 25's first fixes): a metrics file is appended to,
/// never truncated, each line naming its run; a file of another kind given as a checkpoint is named for what it is;
/// counts read as English; the activation list offers only what trains.
@Suite(.serialized) struct RunSafetyTests {
    let mlp: URL
    init() throws { mlp = try mlpExecutable() }

    func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try runProcess(mlp, arguments, currentDirectory: FileManager.default.temporaryDirectory)
    }

    /// A bf16 run writes an ordinary fp32 checkpoint (bf16 is only how its products round their operands), which
    /// resumes in fp32 on another backend (issue 27).
    @Test(.enabled(if: (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?.contains("avx512_bf16") == true,
                   "the CPU has no AVX-512 BF16"))
    func aBF16CheckpointResumesInFP32() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let common = ["--train-samples", "700", "--test-samples", "50", "--batch-size", "300", "--quiet"]
        let first = try run(["train", "--backend", "cpu", "--precision", "bf16", "--epochs", "1", "--output", dir.path] + common)
        #expect(first.status == 0, "\(first.stderr)")
        let checkpoint = try SafeTensors.read(contentsOf: dir.appendingPathComponent("last.safetensors"))
        #expect(checkpoint.entries.count >= 6 && checkpoint.entries.values.allSatisfy { $0.dtype == "F32" }, "\(checkpoint.entries)")
        let resumed = try run(["train", "--backend", "naive", "--precision", "fp32", "--resume", dir.path, "--epochs", "2"] + common)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let after = try SafeTensors.read(contentsOf: dir.appendingPathComponent("last.safetensors"))
        #expect(try after.floats("layers.0.weight").values != checkpoint.floats("layers.0.weight").values)
    }

    @Test func metricsAreAppendedWithTheRunsID() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let metrics = dir.appendingPathComponent("m.jsonl")
        try "{\"kept\": true}\n".write(to: metrics, atomically: true, encoding: .utf8)
        let common = ["train", "--backend", "naive", "--train-samples", "300", "--test-samples", "50", "--layers", "784,8,10",
                      "--batch-size", "100", "--metrics", metrics.path, "--quiet"]
        let first = try run(common + ["--epochs", "1", "--output", dir.appendingPathComponent("a").path])
        let second = try run(common + ["--epochs", "2", "--output", dir.appendingPathComponent("b").path])
        #expect(first.status == 0 && second.status == 0, "\(first.stderr) \(second.stderr)")
        let lines = try String(contentsOf: metrics, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.count == 4 && lines[0] == "{\"kept\": true}", "\(lines)")
        let runs = try lines.dropFirst().map { line -> String in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            return object?["run"] as? String ?? ""
        }
        #expect(runs[0] != runs[1] && runs[1] == runs[2] && runs.allSatisfy { $0.count >= 20 }, "\(runs)")
        // A resumed run keeps its id.
        let resumed = try run(["train", "--backend", "naive", "--resume", dir.appendingPathComponent("a/last.safetensors").path,
                               "--train-samples", "300", "--test-samples", "50", "--epochs", "2", "--metrics", metrics.path, "--quiet"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let last = try String(contentsOf: metrics, encoding: .utf8).split(separator: "\n").last.map(String.init) ?? ""
        #expect(last.contains("\"run\":\"\(runs[0])\""), "\(last)")
    }

    @Test func aFileOfAnotherKindIsNamedForWhatItIs() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let picture = dir.appendingPathComponent("digit.png")
        try Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13] + [UInt8](repeating: 7, count: 40)).write(to: picture)
        let r = try run(["eval", "--checkpoint", picture.path])
        #expect(r.status != 0 && r.stderr.contains("digit.png") && r.stderr.contains("it is a PNG image"), "\(r.stderr)")
        // An error found while running points at the subcommand's own help, not the whole tool's usage.
        #expect(r.stderr.contains("(see 'mlp eval --help')") && !r.stderr.contains("Usage: mlp <subcommand>"), "\(r.stderr)")
    }

    @Test func countsAndListsReadWell() throws {
        let one = try run(["train", "--backend", "naive", "--train-samples", "200", "--test-samples", "20000", "--layers", "784,4,10",
                           "--epochs", "1", "--batch-size", "100", "--no-progress"])
        #expect(one.status == 0 && one.stdout.contains("1 epoch,") && one.stdout.contains("after 1 epoch (") && !one.stdout.contains("1 epochs"), "\(one.stdout)")
        #expect(one.stderr.contains("--test-samples 20000: the data has 10,000 test samples; all of them are used"), "\(one.stderr)")
        let help = try run(["train", "--help"])
        #expect(help.stdout.contains("relu, tanh, sigmoid") && !help.stdout.contains("identity"), "\(help.stdout)")
    }

    /// The command Ctrl-C prints: the run's own flags, its old --resume replaced, words a shell would split quoted.
    @Test func theResumeCommandRepeatsTheRunsFlags() {
        let command = Train.resumeCommand(checkpoint: "/runs/a b/last.safetensors", arguments: [
            "/usr/bin/mlp", "train", "--data", "my table.csv", "--train-samples", "30000", "--resume", "old.safetensors",
            "--metrics", "m.jsonl", "--resume=older.safetensors", "--target", "it's"])
        #expect(command == "mlp train --data 'my table.csv' --train-samples 30000 --metrics m.jsonl --target 'it'\\''s' --resume '/runs/a b/last.safetensors'")
    }

    /// One rule for exit statuses (`ExitStatus`): a bad flag or value 64 whether the parser or the run finds it, bad
    /// data 65, a folder that cannot be written 74 (Ctrl-C's 130 is FaultTests').
    @Test func exitStatusesFollowOneRule() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let table = dir.appendingPathComponent("t.csv")
        try "a,b,y\n1,2,x\n3,,y\n".write(to: table, atomically: true, encoding: .utf8)
        let good = dir.appendingPathComponent("g.csv")
        try "a,b,y\n1,2,x\n3,4,y\n5,6,x\n".write(to: good, atomically: true, encoding: .utf8)
        let blocker = dir.appendingPathComponent("file")
        try "x".write(to: blocker, atomically: true, encoding: .utf8)
        let cases: [([String], Int32)] = [
            (["train", "--batch-size", "0"], 64),                       // the parser's validation
            (["train", "--epochs", "x"], 64),                           // not a number
            (["train", "--data", good.path, "--layers", "5,3"], 64),   // found while running
            (["train", "--data", table.path], 65),                     // an empty cell
            (["eval", "--checkpoint", table.path], 65),                // not a checkpoint
            (["data", "info", "--data", table.path], 65),
            (["train", "--train-samples", "50", "--epochs", "1", "--output", blocker.appendingPathComponent("run").path], 74),
        ]
        for (arguments, status) in cases {
            let r = try run(arguments)
            #expect(r.status == status, "\(arguments): \(r.status), expected \(status): \(r.stderr)")
        }
    }

    @Test func aDataDirectoryVariableThatNamesNothingIsAnError() throws {
        var environment = ProcessInfo.processInfo.environment
        environment["MLP_DATA_DIR"] = "/no/such/mlp-data"
        let r = try runProcess(mlp, ["data", "info"], currentDirectory: FileManager.default.temporaryDirectory, environment: environment)
        #expect(r.status != 0 && r.stderr.contains("MLP_DATA_DIR=/no/such/mlp-data: no such directory"), "\(r.stderr)")
    }

    /// On resume, a flag that repeats the stored value is accepted and one that changes it is refused, named as typed.
    @Test func resumeAcceptsRepeatedFlagsAndNamesChangedOnes() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("run").path
        let common = ["--backend", "naive", "--train-samples", "300", "--test-samples", "50", "--batch-size", "100", "--quiet"]
        let first = try run(["train", "--layers", "784,8,10", "--epochs", "1", "--schedule", "step", "--lr-step-epochs", "2",
                             "--lr-gamma", "0.5", "--warmup-epochs", "1", "--beta2", "0.99", "--output", out] + common)
        #expect(first.status == 0, "\(first.stderr)")
        let checkpoint = out + "/last.safetensors"
        let same = try run(["train", "--resume", checkpoint, "--epochs", "2", "--schedule", "step", "--lr-step-epochs", "2",
                            "--lr-gamma", "0.5", "--warmup-epochs", "1", "--beta2", "0.99", "--loss", "cross-entropy", "--layers", "784,8,10"] + common)
        #expect(same.status == 0, "\(same.stderr)")
        let changed = try run(["train", "--resume", checkpoint, "--epochs", "2", "--schedule", "cosine", "--lr-gamma", "0.1",
                               "--beta2", "0.9", "--loss", "mse", "--lr-min", "0.001"] + common)
        #expect(changed.status != 0)
        for part in ["--schedule cosine (the checkpoint has step)", "--lr-gamma 0.1 (the checkpoint has 0.5)",
                     "--beta2 0.9 (the checkpoint has 0.99)", "--loss mse (the checkpoint has cross-entropy)",
                     "--lr-min 0.001 (the checkpoint's schedule, step, has no such setting)"] {
            #expect(changed.stderr.contains(part), "\(part): \(changed.stderr)")
        }
    }

    /// A folder holding a run is not trained into again unless the run is resumed there or --overwrite is given.
    @Test func anEarlierRunsCheckpointsAreNotReplaced() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("run").path
        let common = ["train", "--backend", "naive", "--train-samples", "200", "--test-samples", "20", "--layers", "784,4,10",
                      "--batch-size", "100", "--quiet", "--output", out]
        #expect(try run(common + ["--epochs", "1"]).status == 0)
        let before = try Data(contentsOf: URL(fileURLWithPath: out + "/best.safetensors"))
        let again = try run(common + ["--epochs", "1", "--seed", "4"])
        #expect(again.status != 0 && again.stderr.contains("--output \(out): holds a run already")
                    && again.stderr.contains("continue it with --resume \(out),") && again.stderr.contains("--overwrite"), "\(again.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: out + "/best.safetensors")) == before)
        #expect(try run(common + ["--epochs", "2", "--resume", out + "/last.safetensors"]).status == 0)
        #expect(try run(common + ["--epochs", "1", "--seed", "4", "--overwrite"]).status == 0)
    }

    /// Lines of a metrics file as JSON objects.
    func metricLines(_ path: String) throws -> [[String: Any]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
    }

    /// A run is a folder: `--resume DIR` alone continues it there on the same samples (the sample counts are the
    /// stored ones, and the result is the run never stopped), its metrics go to DIR/metrics.jsonl, and a flag that
    /// would change the samples is refused by name.
    @Test func aResumedRunKeepsItsSamplesAndItsFolder() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let common = ["train", "--backend", "naive", "--train-samples", "300", "--test-samples", "100", "--layers", "784,8,10",
                      "--batch-size", "64", "--schedule", "constant", "--no-progress"]
        let whole = dir.appendingPathComponent("whole").path, split = dir.appendingPathComponent("split").path
        #expect(try run(common + ["--epochs", "2", "--output", whole]).status == 0)
        #expect(try run(common + ["--epochs", "1", "--output", split]).status == 0)
        let resumed = try run(["train", "--resume", split, "--epochs", "2", "--backend", "naive", "--no-progress"])
        #expect(resumed.status == 0 && resumed.stdout.contains("on 300 samples"), "\(resumed.stdout) \(resumed.stderr)")
        let a = try Checkpoint.read(from: URL(fileURLWithPath: whole + "/last.safetensors"))
        let b = try Checkpoint.read(from: URL(fileURLWithPath: split + "/last.safetensors"))
        #expect(a.parameters == b.parameters && a.optimizerState == b.optimizerState)
        let lines = try metricLines(split + "/metrics.jsonl")
        #expect(lines.map { $0["epoch"] as? Int } == [1, 2] && Set(lines.map { $0["run"] as! String }).count == 1)
        // run.json: the run's id, its configuration, and both commands that trained it.
        let record = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: split + "/run.json"))) as! [String: Any]
        let commands = try #require(record["commands"] as? [[String: Any]])
        #expect(record["run"] as? String == lines[0]["run"] as? String && record["configuration"] != nil)
        #expect(commands.count == 2 && (commands[1]["arguments"] as? [String])?.contains("--resume") == true, "\(commands)")
        let changed = try run(["train", "--resume", split, "--epochs", "3", "--train-samples", "400", "--test-fraction", "0.1"])
        #expect(changed.status == 64, "\(changed.stderr)")
        #expect(changed.stderr.contains("--train-samples 400 (the run was trained with 300)"), "\(changed.stderr)")
        let empty = dir.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let none = try run(["train", "--resume", empty.path])
        #expect(none.status == 64 && none.stderr.contains("holds no last.safetensors"), "\(none.stderr)")
    }

    /// Extending a finished run: its epochs keep the rates they had, the added ones follow --extend-schedule (a new
    /// half cosine by default for a cosine run; `continue` stays at the cosine's end); a shorter run is refused.
    @Test func extendingARunKeepsItsFinishedEpochsRates() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let common = ["train", "--backend", "naive", "--train-samples", "200", "--test-samples", "50", "--layers", "784,6,10",
                      "--batch-size", "50", "--lr", "0.01", "--no-progress"]
        let restart = dir.appendingPathComponent("restart").path, carried = dir.appendingPathComponent("carried").path
        for out in [restart, carried] { #expect(try run(common + ["--epochs", "2", "--output", out]).status == 0) }
        let stored = try metricLines(restart + "/metrics.jsonl").map { $0["learning_rate"] as! Double }
        #expect(try run(["train", "--resume", restart, "--epochs", "4", "--backend", "naive"]).status == 0)
        #expect(try run(["train", "--resume", carried, "--epochs", "4", "--backend", "naive", "--extend-schedule", "continue"]).status == 0)
        let a = try metricLines(restart + "/metrics.jsonl").map { $0["learning_rate"] as! Double }
        let b = try metricLines(carried + "/metrics.jsonl").map { $0["learning_rate"] as! Double }
        // Each epoch's last step: 4 steps an epoch, a cosine over 8 for the run, then a new one over the added 8.
        func cosine(_ s: Int, _ total: Int) -> Double { 0.01 * (1 + cos(Double.pi * Double(s) / Double(total))) / 2 }
        #expect(Array(a.prefix(2)) == stored && Array(b.prefix(2)) == stored)
        #expect(abs(a[2] - cosine(3, 8)) < 1e-6 && abs(a[3] - cosine(7, 8)) < 1e-6, "\(a)")
        #expect(b[2] == 0 && b[3] == 0, "\(b)")
        let shorter = try run(["train", "--resume", restart, "--epochs", "3"])
        #expect(shorter.status == 64 && shorter.stderr.contains("never shortened"), "\(shorter.stderr)")
    }

    /// Early stopping: with --patience, the run ends once the monitored figure has not improved for that many epochs,
    /// says so, and best.safetensors holds the best epoch; against a validation split, the best epoch's test figure
    /// is printed and written to the metrics.
    @Test func patienceStopsARunAndKeepsTheBest() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("run").path
        // 100 samples, a wide layer and a high rate: the validation loss turns up within a few epochs.
        let r = try run(["train", "--backend", "naive", "--train-samples", "160", "--test-samples", "200", "--validation", "60",
                         "--layers", "784,64,10", "--batch-size", "20", "--lr", "0.01", "--schedule", "constant", "--epochs", "40",
                         "--patience", "2", "--monitor", "loss", "--output", out, "--no-progress"])
        #expect(r.status == 0, "\(r.stderr)")
        let stop = try #require(r.stdout.firstMatch(of: /stopping early: the validation loss has not improved for 2 epochs \(best [\d.e-]+ at epoch (\d+)\)/), "\(r.stdout)")
        let bestEpoch = Int(stop.1)!
        let lines = try metricLines(out + "/metrics.jsonl")
        let epochs = lines.compactMap { $0["best_on_test"] == nil ? $0["epoch"] as? Int : nil }
        #expect(epochs.last == bestEpoch + 2 && epochs.count < 40, "\(epochs)")
        let losses = lines.compactMap { $0["best_on_test"] == nil ? $0["test_loss"] as? Double : nil }
        #expect(losses[bestEpoch - 1] == losses.min())
        let best = try Checkpoint.read(from: URL(fileURLWithPath: out + "/best.safetensors"))
        #expect(best.progress.epoch == bestEpoch)
        let final = try #require(lines.last)
        #expect(final["best_on_test"] as? Bool == true && final["epoch"] as? Int == bestEpoch && final["test_accuracy"] != nil, "\(final)")
        #expect(r.stdout.contains("best epoch \(bestEpoch) by validation loss"), "\(r.stdout)")
        let bad = try run(["train", "--patience", "0"])
        #expect(bad.status == 64 && bad.stderr.contains("--patience 0"))
        // A figure the task has not: refused before the run's folder is made.
        let none = dir.appendingPathComponent("none").path
        let rmse = try run(["train", "--train-samples", "100", "--monitor", "rmse", "--output", none])
        #expect(rmse.status == 64 && rmse.stderr.contains("--monitor rmse: a classifier has no rmse"), "\(rmse.stderr)")
        #expect(!FileManager.default.fileExists(atPath: none))
    }

    /// `mlp plot`: a metrics file two runs appended to gives each run its curves (loss and accuracy, train and test;
    /// the learning rate), in an SVG that parses as XML, each curve a polyline with a point per epoch.
    @Test func plotDrawsEachRunsCurves() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let metrics = dir.appendingPathComponent("m.jsonl").path
        let common = ["train", "--backend", "naive", "--train-samples", "200", "--test-samples", "50", "--layers", "784,6,10",
                      "--batch-size", "50", "--quiet", "--metrics", metrics]
        #expect(try run(common + ["--epochs", "3"]).status == 0)
        #expect(try run(common + ["--epochs", "2", "--lr", "0.01"]).status == 0)
        let svg = dir.appendingPathComponent("curves.svg").path
        let plot = try run(["plot", metrics, "--output", svg])
        #expect(plot.status == 0 && plot.stdout.contains("wrote \(svg): 2 runs, 3 epochs"), "\(plot.stdout) \(plot.stderr)")

        final class Polylines: NSObject, XMLParserDelegate {
            var points = [String: Int]()
            func parser(_ parser: XMLParser, didStartElement element: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
                if element == "polyline", let id = attributes["id"] { points[id] = attributes["points"]?.split(separator: " ").count }
            }
        }
        let parser = XMLParser(data: try Data(contentsOf: URL(fileURLWithPath: svg)))
        let found = Polylines()
        parser.delegate = found
        #expect(parser.parse(), "not well-formed XML: \(String(describing: parser.parserError))")
        for (run, epochs) in [(0, 3), (1, 2)] {
            for id in ["loss-train", "loss-test", "accuracy-train", "accuracy-test", "lr-train"] {
                #expect(found.points["run\(run)-\(id)"] == epochs, "run\(run)-\(id): \(found.points)")
            }
        }
        let missing = try run(["plot", dir.appendingPathComponent("none").path])
        #expect(missing.status != 0 && missing.stderr.contains("none: no such file or folder"))
    }

    /// The CLI reads well on a terminal: an epoch line fits 80 columns in its compact form (and is the full, named one
    /// where there is room or no terminal), the progress line's time left reads as a duration, and `train` and `bench`
    /// name their main options in the usage line.
    @Test func linesFitTheTerminal() throws {
        let classification = EpochMetrics(epoch: 10, trainLoss: 0.0015, trainAccuracy: 1, testLoss: 0.0582, testAccuracy: 0.9845,
                                           evaluatedOn: "validation", samplesPerSecond: 1_076_079, seconds: 10.79, learningRate: 1e-3, steps: 469)
        let regression = EpochMetrics(epoch: 100, trainLoss: 0.0938, trainAccuracy: nil, testLoss: 0.0952, testAccuracy: nil, testRMSE: 123_436.66,
                                      testMAE: 99_331.14, testR2: -0.9031, evaluatedOn: "validation", samplesPerSecond: 12_583_283, seconds: 0.01,
                                      learningRate: 1e-3, steps: 13)
        for m in [classification, regression] {
            let full = epochLine(m, epochs: 100)
            #expect(full.count > 80 && full == epochLine(m, epochs: 100, columns: 200) && full.contains("validation loss"))
            let compact = epochLine(m, epochs: 100, columns: 80)
            #expect(compact.count < 80 && compact.hasPrefix("epoch \(m.epoch)/100 loss "), "\(compact)")
        }
        #expect(epochLine(classification, epochs: 10, columns: 80).contains("acc 100.00%/98.45%"))
        #expect(ProgressLine.duration(42.4) == "42 s" && ProgressLine.duration(185) == "3 min 05 s" && ProgressLine.duration(3725) == "1 h 02 min")
        for (command, option) in [("train", "[--data <path>]"), ("bench", "[--backends <backends>]")] {
            let help = try run([command, "--help"])
            #expect(help.stdout.contains("USAGE: mlp \(command) [") && help.stdout.contains(option), "\(help.stdout.prefix(400))")
        }
    }
}
