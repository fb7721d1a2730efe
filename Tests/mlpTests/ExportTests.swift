import Foundation
import Testing
import TestSupport

/// Models that leave the tool (`mlp export`): an ONNX model passes ONNX's checker and, in ONNX Runtime, predicts
/// what `mlp predict` predicts (the same class for every MNIST test image, probabilities within 1e-5; regression
/// values within 1e-5 relative) for ReLU, tanh and sigmoid networks, an MSE classifier, a table's classifier
/// and a regression; the weights-only export, read with `safetensors.numpy` as the README's `torch.nn.Sequential`
/// names it, gives `mlp eval`'s accuracy; bad exports are refused with nothing written. Runs where python3 has numpy,
/// safetensors, onnx and onnxruntime (`.ci/run` installs them).
@Suite(.serialized) struct ExportTests {
    static let onnxReady: Bool = {
        guard let r = try? runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", "import numpy, onnx, onnxruntime, safetensors.numpy"]) else { return false }
        return r.status == 0
    }()

    let mlp: URL
    init() throws { mlp = try mlpExecutable() }

    func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try runProcess(mlp, arguments, currentDirectory: FileManager.default.temporaryDirectory)
    }

    func python(_ script: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", packageRoot.appendingPathComponent("Tests/python/\(script)").path] + arguments)
    }

    /// Trains with `flags`, exports to ONNX, predicts `data` with mlp, and has ONNX Runtime check the same rows.
    func expectONNXMatches(_ flags: [String], data: String, source: [String], in dir: URL, name: String,
                           sourceLocation: SourceLocation = #_sourceLocation) throws {
        let out = dir.appendingPathComponent(name).path
        let train = try run(["train", "--backend", "cpu", "--epochs", "2", "--quiet", "--output", out] + flags)
        #expect(train.status == 0, "\(train.stderr)", sourceLocation: sourceLocation)
        let model = out + "/model.onnx", predictions = out + "/predictions.csv"
        let export = try run(["export", "--checkpoint", out + "/best.safetensors", "--output", model])
        #expect(export.status == 0 && export.stdout.contains("ONNX opset 17"), "\(export.stderr)", sourceLocation: sourceLocation)
        let predict = try run(["predict", "--checkpoint", out + "/best.safetensors", "--data", data, "--output", predictions, "--backend", "cpu"])
        #expect(predict.status == 0, "\(predict.stderr)", sourceLocation: sourceLocation)
        let check = try python("onnx_check.py", [model, predictions] + source)
        #expect(check.status == 0 && check.stdout.contains("onnx ok"), "\(name): \(check.stdout) \(check.stderr)", sourceLocation: sourceLocation)
    }

    @Test(.enabled(if: onnxReady, "python3 with numpy, safetensors, onnx and onnxruntime is not installed (pip install numpy safetensors onnx onnxruntime)"))
    func onnxRuntimePredictsWhatMLPPredicts() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let mnist = bundledMNIST.path
        let small = ["--train-samples", "3000", "--test-samples", "500", "--batch-size", "100", "--lr", "0.003"]
        try expectONNXMatches(small + ["--hidden", "48,24"], data: mnist, source: ["--mnist", mnist], in: dir, name: "relu")
        try expectONNXMatches(small + ["--hidden", "32", "--activation", "tanh", "--standardize"], data: mnist, source: ["--mnist", mnist], in: dir, name: "tanh")
        try expectONNXMatches(small + ["--hidden", "32", "--activation", "sigmoid", "--loss", "mse"], data: mnist, source: ["--mnist", mnist], in: dir, name: "sigmoid-mse")

        // A table (standardised features, text classes) and a regression (targets in the thousands).
        let table = dir.appendingPathComponent("table.csv").path, prices = dir.appendingPathComponent("prices.csv").path
        let make = packageRoot.appendingPathComponent("Benchmarks/data/make_table.py").path
        for (path, extra) in [(table, [String]()), (prices, ["--regression"])] {
            let r = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", make, path, "--rows", "3000", "--columns", "7"] + extra)
            #expect(r.status == 0, "\(r.stderr)")
        }
        try expectONNXMatches(["--data", table, "--hidden", "16"], data: table, source: ["--csv", table], in: dir, name: "table")
        try expectONNXMatches(["--data", prices, "--hidden", "16", "--lr", "0.01"], data: prices, source: ["--csv", prices], in: dir, name: "regression")
    }

    @Test(.enabled(if: onnxReady, "python3 with numpy, safetensors, onnx and onnxruntime is not installed (pip install numpy safetensors onnx onnxruntime)"))
    func weightsOnlyExportGivesTheSameAccuracy() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("run").path
        let train = try run(["train", "--backend", "cpu", "--hidden", "32,16", "--train-samples", "3000", "--test-samples", "1000", "--epochs", "2",
                             "--standardize", "--quiet", "--output", out])
        #expect(train.status == 0, "\(train.stderr)")
        let weights = out + "/weights.safetensors"
        #expect(try run(["export", "--checkpoint", out + "/last.safetensors", "--output", weights]).status == 0)
        let eval = try run(["eval", "--checkpoint", out + "/last.safetensors", "--test-samples", "1000", "--backend", "cpu"])
        let ours = eval.stdout.firstMatch(of: /\((\d+) of 1,000\)/).map { Int($0.1)! }
        let numpy = try python("weights_numpy.py", [weights, bundledMNIST.path, "1000"])
        let theirs = numpy.stdout.firstMatch(of: /correct (\d+) of 1000/).map { Int($0.1)! }
        #expect(ours != nil && theirs != nil, "\(eval.stdout) \(numpy.stdout) \(numpy.stderr)")
        // Float32 both ways, sums in another order: a sample on a tie may move.
        #expect(abs((ours ?? -10) - (theirs ?? 10)) <= 1, "mlp eval \(String(describing: ours)), numpy \(String(describing: theirs))")
    }

    /// Bad exports: not a checkpoint (65), an unknown format (64), an output that cannot be written (74); no file,
    /// and no temporary file, is left behind. And predictions as JSON Lines, one object per row.
    @Test func badExportsAreRefusedAndPredictionsWriteJSONLines() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("run").path
        #expect(try run(["train", "--backend", "naive", "--layers", "784,4,10", "--train-samples", "200", "--test-samples", "30", "--epochs", "1", "--quiet", "--output", out]).status == 0)
        let checkpoint = out + "/last.safetensors"
        let notOne = dir.appendingPathComponent("notes.txt").path
        try "hello".write(toFile: notOne, atomically: true, encoding: .utf8)
        let cases: [([String], Int32, String)] = [
            (["export", "--checkpoint", notOne, "--output", dir.appendingPathComponent("a.onnx").path], 65, "notes.txt"),
            (["export", "--checkpoint", checkpoint, "--output", dir.appendingPathComponent("a.bin").path], 64, "cannot tell the format"),
            (["export", "--checkpoint", checkpoint, "--output", dir.appendingPathComponent("a.onnx").path, "--format", "tflite"], 64, "tflite"),
            (["export", "--checkpoint", checkpoint, "--output", dir.appendingPathComponent("missing/a.onnx").path], 74, "missing/a.onnx"),
        ]
        for (arguments, status, message) in cases {
            let r = try run(arguments)
            #expect(r.status == status && r.stderr.contains(message), "\(arguments): \(r.status) \(r.stderr)")
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0 != "run" && $0 != "notes.txt" }
        #expect(left.isEmpty, "left behind: \(left)")

        let jsonl = dir.appendingPathComponent("p.jsonl").path
        let predict = try run(["predict", "--checkpoint", checkpoint, "--data", bundledMNIST.path, "--output", jsonl, "--backend", "naive"])
        #expect(predict.status == 0, "\(predict.stderr)")
        let lines = try String(contentsOfFile: jsonl, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 10_000)
        let first = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any]
        #expect(first?["row"] as? Int == 0 && first?["label"] as? String == "7" && first?["p_7"] is Double && first?["prediction"] is String, "\(lines[0])")
    }
}
