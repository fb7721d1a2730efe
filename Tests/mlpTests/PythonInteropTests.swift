import Foundation
import Testing
import TestSupport

/// A checkpoint written by `mlp train`, read by Python's `safetensors.numpy.load_file` and evaluated in NumPy,
/// gives the accuracy `mlp eval` reports. Runs where python3 has numpy and safetensors (`.ci/run` installs them).
@Suite struct PythonInteropTests {
    static let pythonReady: Bool = {
        guard let r = try? runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", "import numpy, safetensors.numpy"]) else { return false }
        return r.status == 0
    }()

    @Test(.enabled(if: pythonReady, "python3 with numpy and safetensors is not installed (pip install numpy safetensors)"))
    func numpyForwardPassGivesTheSameAccuracy() throws {
        let mlp = try mlpExecutable()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let train = try runProcess(mlp, ["train", "--backend", "naive", "--layers", "784,32,16,10", "--train-samples", "2000", "--epochs", "1", "--batch-size", "64", "--lr", "0.003", "--schedule", "constant", "--standardize", "--test-samples", "100", "--output", dir.path, "--quiet"])
        #expect(train.status == 0, "\(train.stderr)")
        let checkpoint = dir.appendingPathComponent("last.safetensors").path
        let eval = try runProcess(mlp, ["eval", "--backend", "naive", "--checkpoint", checkpoint, "--test-samples", "1000"])
        #expect(eval.status == 0, "\(eval.stderr)")
        // "test accuracy 85.30% (853 of 1,000), …"
        let swiftCorrect = eval.stdout.firstMatch(of: /\((\d+) of 1,000\)/).map { Int($0.1)! }
        let python = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", packageRoot.appendingPathComponent("Tests/python/forward_numpy.py").path, checkpoint, bundledMNIST.path, "1000"])
        #expect(python.status == 0, "\(python.stderr)")
        let pythonCorrect = python.stdout.firstMatch(of: /correct (\d+) of 1000/).map { Int($0.1)! }
        #expect(swiftCorrect != nil && pythonCorrect != nil)
        // Float32 in both; sums in another order may move a prediction that sits on a tie: allow one sample.
        #expect(abs((swiftCorrect ?? -10) - (pythonCorrect ?? 10)) <= 1, "mlp: \(String(describing: swiftCorrect)), numpy: \(String(describing: pythonCorrect))")
        #expect((swiftCorrect ?? 0) > 500)  // well above chance: the weights mean something
    }
}
