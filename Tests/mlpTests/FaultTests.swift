import Foundation
import MLPCore
import Testing
import TestSupport

/// Faults, on real child processes: a run killed at a random moment and resumed ends where an uninterrupted run
/// ends; Ctrl-C stops cleanly with a checkpoint; memory does not grow over a long run.
@Suite(.serialized) struct FaultTests {
    let mlp: URL
    init() throws { mlp = try mlpExecutable() }

    /// A small run, long enough to be killed in the middle: 12 epochs of 15 steps.
    static func arguments(backend: String, epochs: Int = 12) -> [String] {
        ["train", "--backend", backend, "--threads", "2", "--layers", "784,12,10", "--train-samples", "600", "--test-samples", "50",
         "--batch-size", "40", "--epochs", String(epochs), "--seed", "11", "--no-progress", "--quiet"]
    }

    /// Starts `mlp` with its output discarded.
    func start(_ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = mlp
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    func waitFor(_ file: URL, while process: Process, timeout: Double = 120) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !FileManager.default.fileExists(atPath: file.path) {
            guard process.isRunning, Date() < deadline else { return }
            usleep(2_000)
        }
    }

    @Test(arguments: ["naive", "cpu"])
    func aRunKilledAtARandomMomentResumesToTheSameWeights(backend: String) throws {
        let dir = try temporaryDirectory("killed-\(backend)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let whole = dir.appendingPathComponent("whole"), killed = dir.appendingPathComponent("killed")
        let referenceStart = Date()
        let reference = try runProcess(mlp, Self.arguments(backend: backend) + ["--output", whole.path])
        let referenceSeconds = Date().timeIntervalSince(referenceStart)
        #expect(reference.status == 0, "\(reference.stderr)")

        // Kill with SIGKILL once the first checkpoint exists, after a random further delay within what is left of
        // the run (judged from the reference run's length), then resume from the checkpoint that survived.
        let started = Date()
        let process = try start(Self.arguments(backend: backend) + ["--output", killed.path])
        let last = killed.appendingPathComponent("last.safetensors")
        try waitFor(last, while: process)
        let firstCheckpoint = Date().timeIntervalSince(started)
        let delay = Double.random(in: 0...max(0.8 * (referenceSeconds - firstCheckpoint), 0.01))
        usleep(useconds_t(delay * 1e6))
        let wasRunning = process.isRunning
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(wasRunning, "the run ended \(delay) s after its first checkpoint, before it could be killed")
        let interrupted = try Checkpoint.read(from: last).progress
        if wasRunning {
            let resumed = try runProcess(mlp, (Self.arguments(backend: backend) + ["--resume", last.path, "--output", killed.path])
                .droppingFlags(["--layers", "--seed", "--batch-size"]))
            #expect(resumed.status == 0, "killed after \(delay) s at epoch \(interrupted.epoch), step \(interrupted.stepInEpoch): \(resumed.stderr)")
        }

        let a = try Checkpoint.read(from: whole.appendingPathComponent("last.safetensors"))
        let b = try Checkpoint.read(from: last)
        #expect(a.progress.epoch == 12 && b.progress.epoch == 12)
        #expect(a.parameters == b.parameters, "killed \(String(format: "%.2f", delay)) s after the first checkpoint (at epoch \(interrupted.epoch)): the weights differ")
        #expect(a.optimizerState == b.optimizerState)
    }

    @Test func ctrlCStopsWithACheckpointAndSaysWhereItIs() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let process = Process()
        process.executableURL = mlp
        process.arguments = Self.arguments(backend: "cpu", epochs: 1000) + ["--output", dir.path]
        let err = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = err
        try process.run()
        try waitFor(dir.appendingPathComponent("last.safetensors"), while: process)
        usleep(50_000)
        kill(process.processIdentifier, SIGINT)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 130, "\(stderr)")
        let path = dir.appendingPathComponent("last.safetensors").path
        #expect(stderr.contains("saved \(path); continue with:\n  mlp train ") && stderr.contains(" --resume \(path)"), "\(stderr)")
        let checkpoint = try Checkpoint.read(from: URL(fileURLWithPath: path))
        #expect(checkpoint.progress.epoch < 1000)
    }

    /// Ctrl-C, then the printed command, run as it is printed: the run ends with the weights of a run never stopped,
    /// on the same 600 of MNIST's samples (the command keeps --train-samples; the checkpoint would restore it anyway).
    @Test func theCommandCtrlCPrintsResumesToTheSameWeights() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let whole = dir.appendingPathComponent("whole"), stopped = dir.appendingPathComponent("stopped")
        let reference = try runProcess(mlp, Self.arguments(backend: "cpu", epochs: 30) + ["--output", whole.path])
        #expect(reference.status == 0, "\(reference.stderr)")
        let process = Process()
        process.executableURL = mlp
        process.arguments = Self.arguments(backend: "cpu", epochs: 30) + ["--output", stopped.path]
        let err = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = err
        try process.run()
        try waitFor(stopped.appendingPathComponent("last.safetensors"), while: process)
        kill(process.processIdentifier, SIGINT)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 130, "\(stderr)")
        // The printed command, its words as a shell splits them (nothing here needs quoting), `mlp` this binary.
        let command = try #require(stderr.split(separator: "\n").first { $0.hasPrefix("  mlp train ") }, "\(stderr)")
        let words = command.split(separator: " ").map(String.init)
        #expect(words.contains("--train-samples") && words.contains("--resume"), "\(command)")
        let resumed = try runProcess(mlp, Array(words.dropFirst()))
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let a = try Checkpoint.read(from: whole.appendingPathComponent("last.safetensors"))
        let b = try Checkpoint.read(from: stopped.appendingPathComponent("last.safetensors"))
        #expect(a.progress.epoch == 30 && b.progress.epoch == 30)
        #expect(a.parameters == b.parameters && a.optimizerState == b.optimizerState)
    }

    /// 50 epochs: the resident memory after the last is within 1 MiB of that after the second (the metrics file
    /// records it per epoch). The first epoch ends some 3 MiB lower: code and allocator arenas first touched by
    /// the first evaluation and metrics line, not growth (the README quotes a run of this).
    @Test func memoryDoesNotGrowOverFiftyEpochs() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let metrics = dir.appendingPathComponent("metrics.jsonl")
        let r = try runProcess(mlp, ["train", "--backend", "cpu", "--threads", "2", "--layers", "784,32,10", "--train-samples", "200",
                                     "--test-samples", "50", "--batch-size", "50", "--epochs", "50", "--quiet", "--metrics", metrics.path])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = try String(contentsOf: metrics, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 50)
        let resident = try lines.map { line -> Double in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            return try #require(object["resident_mib"] as? Double)
        }
        #expect(resident[49] - resident[1] < 1, "resident memory went from \(resident[1]) MiB at epoch 2 to \(resident[49]) MiB at epoch 50 (\(resident[0]) at epoch 1)")
    }
}

extension Array where Element == String {
    /// The arguments without the given flags and their values (a resumed run takes them from the checkpoint).
    func droppingFlags(_ flags: Set<String>) -> [String] {
        var out = [String](), skip = false
        for a in self {
            if skip { skip = false; continue }
            if flags.contains(a) { skip = true; continue }
            out.append(a)
        }
        return out
    }
}
