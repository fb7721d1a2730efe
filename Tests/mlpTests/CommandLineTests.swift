import Foundation
import MLPCore
import MNIST
import Testing
import TestSupport

/// The `mlp` tool as a user runs it: a child process, its output and exit status.
@Suite(.serialized) struct CommandLineTests {
    let mlp: URL
    init() throws { mlp = try mlpExecutable() }

    func run(_ arguments: [String], in directory: URL? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        try runProcess(mlp, arguments, currentDirectory: directory ?? FileManager.default.temporaryDirectory)
    }

    @Test func dataInfoFindsTheBundledSetFromAnotherDirectory() throws {
        let r = try run(["data", "info"], in: URL(fileURLWithPath: "/"))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("train  60,000 images of 28×28"))
        #expect(r.stdout.contains("test   10,000 images of 28×28"))
        #expect(r.stdout.contains("0: 5923  1: 6742  2: 5958  3: 6131  4: 5842  5: 5421  6: 5918  7: 6265  8: 5851  9: 5949"))
        #expect(r.stdout.contains("all four files match the published mnist"))
    }

    @Test func trainEvaluatePredictAndResume() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // A constant rate: extending a cosine schedule on resume stretches it, which a run of 2 epochs does not.
        let common = ["--backend", "naive", "--layers", "784,24,10", "--train-samples", "600", "--test-samples", "300", "--batch-size", "50", "--lr", "0.003", "--schedule", "constant"]
        // Two epochs in one run.
        let whole = try run(["train"] + common + ["--epochs", "2", "--output", dir.appendingPathComponent("whole").path, "--metrics", dir.appendingPathComponent("whole.jsonl").path])
        #expect(whole.status == 0, "\(whole.stderr)")
        #expect(whole.stdout.contains("epoch 2/2  train loss"))
        // One epoch, then resume to two.
        let half = dir.appendingPathComponent("half")
        let first = try run(["train"] + common + ["--epochs", "1", "--output", half.path])
        #expect(first.status == 0, "\(first.stderr)")
        let resumed = try run(["train", "--backend", "naive", "--train-samples", "600", "--test-samples", "300", "--epochs", "2", "--resume", half.appendingPathComponent("last.safetensors").path, "--output", half.path])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stdout.contains("resuming at epoch 2"))
        let a = try Checkpoint.read(from: dir.appendingPathComponent("whole/last.safetensors"))
        let b = try Checkpoint.read(from: half.appendingPathComponent("last.safetensors"))
        #expect(a.parameters == b.parameters)
        #expect(a.optimizerState == b.optimizerState)

        // Metrics: one JSON object per epoch with the promised keys.
        let lines = try String(contentsOf: dir.appendingPathComponent("whole.jsonl"), encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2)
        let object = try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as! [String: Any]
        for key in ["epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "samples_per_second", "seconds"] {
            #expect(object[key] != nil, "missing \(key)")
        }
        #expect(object["epoch"] as? Int == 2)

        let checkpoint = dir.appendingPathComponent("whole/best.safetensors").path
        let eval = try run(["eval", "--backend", "naive", "--checkpoint", checkpoint, "--test-samples", "300"])
        #expect(eval.status == 0, "\(eval.stderr)")
        #expect(eval.stdout.contains("test accuracy"))
        #expect(eval.stdout.contains("confusion matrix"))

        // A PNG written by the test, and a test-set index.
        var g = SeededGenerator(seed: 4)
        let png = dir.appendingPathComponent("digit.png")
        try Data(encodePNG(width: 28, height: 28, channels: 1, samples: (0..<784).map { _ in UInt8(g.uniform(below: 256)) })).write(to: png)
        let predict = try run(["predict", "--backend", "naive", "--checkpoint", checkpoint, png.path, "7", "--top", "2"])
        #expect(predict.status == 0, "\(predict.stderr)")
        #expect(predict.stdout.contains("digit.png: "))
        #expect(predict.stdout.contains("test[7]: "))
        #expect(predict.stdout.contains("[true label 9]"))
    }

    @Test(arguments: [
        (["train", "--layers", "784,0,10"], "--layers 784,0,10: expected sizes of at least 1 (found 0)"),
        (["train", "--layers", "100,10"], "--layers 100,10: the network takes 100 inputs and gives 10 outputs, the data has 784 features"),
        (["train", "--layers", "784,10,12"], "gives 12 outputs, the data has 784 features (samples of 28×28) and 10 classes"),
        (["train", "--lr=-1"], "--lr -1.0: expected a finite number above 0"),
        (["train", "--lr", "nan"], "--lr nan: expected a finite number above 0"),
        (["train", "--batch-size", "0"], "--batch-size 0: expected at least 1"),
        (["train", "--batch-size", "70000"], "--batch-size 70000: larger than the 60,000 training samples"),
        (["train", "--backend", "tpu"], "tpu"),
        (["train", "--data-dir", "/nonexistent"], "--data-dir /nonexistent: no such directory"),
        (["train", "--output", "/proc/forbidden"], "--output /proc/forbidden: cannot create the directory: cannot make forbidden in /proc: "),
        (["eval", "--checkpoint", "/nonexistent.safetensors"], "/nonexistent.safetensors: cannot read"),
        (["predict", "--checkpoint", "/nonexistent.safetensors", "3"], "/nonexistent.safetensors: cannot read"),
        (["eval", "--checkpoint", "x.safetensors", "--test-samples", "0"], "--test-samples 0: expected at least 1"),
        (["bench", "--threads", "0"], "--threads 0: expected at least 1"),
        (["bench", "--rounds", "0"], "--rounds 0: expected at least 1"),
    ])
    func badInputGetsAClearErrorAndANonZeroExit(arguments: [String], message: String) throws {
        let r = try run(arguments)
        #expect(r.status != 0)
        #expect(r.stderr.contains(message), "stderr: \(r.stderr)")
        #expect(!r.stderr.contains("Fatal error"))
    }

    @Test func anOutputUnderAFileNamesTheFile() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("notes.txt")
        try Data("x".utf8).write(to: file)
        let output = file.appendingPathComponent("run").appendingPathComponent("deeper").path
        let r = try run(["train", "--output", output])
        #expect(r.status != 0)
        #expect(r.stderr.contains("--output \(output): cannot create the directory: \(file.path) is a file, not a directory"), "stderr: \(r.stderr)")
    }

    @Test func checkPassesOnTheCPUBackend() throws {
        let r = try run(["check", "--backend", "cpu", "--threads", "2"])
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("all checks passed"))
        #expect(!r.stdout.contains("FAIL"))
        // A name longer than the column is printed whole.
        #expect(r.stdout.contains("sgd momentum 0.8 nesterov update, 70001 parameters, state slots 71235 apart "))
    }

    @Test func aCheckpointThatIsNotOneIsRejected() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let bad = dir.appendingPathComponent("bad.safetensors")
        try Data([0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 1, 2]).write(to: bad)
        let r = try run(["eval", "--checkpoint", bad.path])
        #expect(r.status != 0)
        #expect(r.stderr.contains("bad.safetensors: not a valid safetensors file: header length 4294967295 is over the limit of 100000000 bytes"))
    }
}
