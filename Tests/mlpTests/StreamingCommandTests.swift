import Foundation
import MLPCore
import Testing
import TestSupport

/// `--stream`, `--resident` and `--device-memory-limit` as a user gives them (issue 24): the choice said with its
/// sizes under -v, the same weights streamed or resident, and bad values refused by name.
@Suite(.serialized) struct StreamingCommandTests {
    let mlp: URL
    init() throws { mlp = try mlpExecutable() }

    func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try runProcess(mlp, arguments, currentDirectory: FileManager.default.temporaryDirectory)
    }

    static let common = ["train", "--backend", "cpu", "--layers", "784,20,10", "--train-samples", "500", "--test-samples", "200",
                         "--batch-size", "64", "--epochs", "2", "--no-progress"]

    @Test func aLimitTooSmallStreamsTheDataAndTheWeightsAreTheResidentOnes() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // 700 digits of 784 bytes and their labels take 551,600 bytes: more than half of 1M.
        let streamed = try run(Self.common + ["--device-memory-limit", "1M", "-v", "--output", dir.appendingPathComponent("s").path])
        #expect(streamed.status == 0, "\(streamed.stderr)")
        #expect(streamed.stderr.contains("data streamed: the data takes 539 KiB, 1.00 MiB of cpu memory is free (--device-memory-limit): more than half of that"), "\(streamed.stderr)")
        let resident = try run(Self.common + ["--device-memory-limit", "2MiB", "-v", "--output", dir.appendingPathComponent("r").path])
        #expect(resident.status == 0, "\(resident.stderr)")
        #expect(resident.stderr.contains("data resident: the data takes 539 KiB, 2.00 MiB of cpu memory is free (--device-memory-limit): it fits in half of that"), "\(resident.stderr)")
        let a = try Checkpoint.read(from: dir.appendingPathComponent("s/last.safetensors"))
        let b = try Checkpoint.read(from: dir.appendingPathComponent("r/last.safetensors"))
        #expect(a.parameters == b.parameters && a.optimizerState == b.optimizerState)
        // The test accuracy printed at the end is the same too.
        let last = { (text: String) in text.split(separator: "\n").last { $0.hasPrefix("test accuracy") }.map(String.init) }
        #expect(last(streamed.stdout)?.prefix(28) == last(resident.stdout)?.prefix(28), "\(streamed.stdout)\n\(resident.stdout)")
    }

    @Test(arguments: [
        (["--stream", "--resident"], "--stream and --resident: give one of them"),
        (["--device-memory-limit", "12Q"], "--device-memory-limit 12Q: expected a size such as 2G, 512M or 1073741824"),
        (["--device-memory-limit", "0"], "--device-memory-limit 0: expected a size"),
        (["--resident", "--device-memory-limit", "100K"], "--resident 539 KiB: expected data that fits the 100 KiB of cpu memory free"),
    ])
    func badPlacementsAreRefusedByName(flags: [String], message: String) throws {
        let r = try run(Self.common + flags)
        #expect(r.status == 64, "\(r.status) \(r.stderr)")
        #expect(r.stderr.contains(message), "\(r.stderr)")
    }

    @Test func evaluationStreamsToo() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let trained = try run(Self.common + ["--output", dir.path])
        #expect(trained.status == 0, "\(trained.stderr)")
        let checkpoint = dir.appendingPathComponent("last.safetensors").path
        let resident = try run(["eval", "--checkpoint", checkpoint, "--backend", "cpu", "--test-samples", "200"])
        let streamed = try run(["eval", "--checkpoint", checkpoint, "--backend", "cpu", "--test-samples", "200", "--stream", "-v"])
        #expect(resident.status == 0 && streamed.status == 0, "\(resident.stderr) \(streamed.stderr)")
        #expect(streamed.stderr.contains("data streamed: --stream"), "\(streamed.stderr)")
        #expect(streamed.stdout == resident.stdout)
    }
}
