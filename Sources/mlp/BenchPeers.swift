import Foundation

/// Runs the Python peers of `Benchmarks/peers` (NumPy, PyTorch, JAX) and reads their results.
///
/// Each script prints one JSON object per workload: implementation, workload, precision, samples_per_second (one
/// value per repeat), step time and test accuracy. A peer whose packages are missing is skipped with a note.
enum PeerRunner {
    static func scriptsDirectory() -> URL? {
        var dir = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<8 {
            let candidate = dir.appendingPathComponent("Benchmarks/peers")
            if FileManager.default.fileExists(atPath: candidate.appendingPathComponent("common.py").path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Benchmarks/peers")
        return FileManager.default.fileExists(atPath: source.path) ? source : nil
    }

    static func run(names: [String], workloads: [Workload], epochs: Int, repeats: Int, dataDirectory: URL, device: String = "cpu", precision: String = "fp32") -> [BenchReport.Training] {
        guard let scripts = scriptsDirectory() else {
            printError("peers: Benchmarks/peers not found next to the executable or in the source tree; skipped")
            return []
        }
        var results = [BenchReport.Training]()
        for name in names {
            // NumPy multiplies in fp32 whatever is asked (its row is the fp32 run's); CuPy has no bf16 products.
            if (name == "numpy" && precision != "fp32") || (name == "cupy" && precision == "bf16") {
                print("peers: \(name) has no \(precision) products; not run in \(precision)")
                continue
            }
            let script = scripts.appendingPathComponent("\(name)_mlp.py")
            guard FileManager.default.fileExists(atPath: script.path) else {
                printError("peers: no script \(script.path); skipped")
                continue
            }
            let arguments = [script.path, "--workloads", workloads.map(\.name).joined(separator: ","), "--epochs", String(epochs),
                             "--repeats", String(repeats), "--data", dataDirectory.path, "--device", device, "--precision", precision]
            print("running \(name): python3 \(arguments.joined(separator: " "))")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3"] + arguments
            let out = Pipe()
            process.standardOutput = out
            do { try process.run() } catch {
                printError("peers: cannot start python3: \(error)")
                return results
            }
            let data = out.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            if process.terminationStatus != 0 {
                printError("peers: \(name) exited with status \(process.terminationStatus) (see its messages above); skipped")
                continue
            }
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where line.hasPrefix("{") {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let implementation = object["implementation"] as? String, let workload = object["workload"] as? String,
                      let rates = object["samples_per_second"] as? [Double] else { continue }
                let summary = Summary(rates)
                let layers = (try? Workload.named(workload))?.spec.trainingFLOPs(batch: 1) ?? 0
                let result = BenchReport.Training(
                    implementation: implementation, workload: workload, precision: object["precision"] as? String ?? "fp32",
                    samplesPerSecond: summary, stepMicroseconds: object["step_microseconds"] as? Double ?? .nan,
                    gflops: summary.median * layers / 1e9, testAccuracy: object["test_accuracy"] as? Double,
                    note: object["note"] as? String ?? "", device: device)
                print(result.line)
                results.append(result)
            }
        }
        return results
    }
}
