import Foundation
import MLPCore

/// The progress line of an epoch, redrawn in place on a terminal at most ten times a second.
final class ProgressLine {
    let enabled: Bool
    let network: Network
    let batchSize: Int
    private var lastDraw = 0.0
    private var epochStart = 0.0
    private var drawn = false

    init(enabled: Bool, network: Network, batchSize: Int) {
        self.enabled = enabled
        self.network = network
        self.batchSize = batchSize
    }

    func update(_ progress: TrainingProgress, stepsInEpoch: Int, epochs: Int) {
        guard enabled else { return }
        let now = Date().timeIntervalSinceReferenceDate
        if progress.stepInEpoch == 1 || epochStart == 0 { epochStart = now }
        guard now - lastDraw >= 0.1 || progress.stepInEpoch == stepsInEpoch else { return }
        lastDraw = now
        // Reading the running loss costs a device synchronisation on a GPU: only here, ten times a second.
        let (lossSum, _) = network.readTrainingMetrics()
        let samples = max(1, progress.stepInEpoch * batchSize)
        let width = 24
        let filled = width * progress.stepInEpoch / max(stepsInEpoch, 1)
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let rate = Double(samples) / max(now - epochStart, 1e-3)
        // What is left of this epoch and of the later ones, at this epoch's rate so far.
        let stepSeconds = (now - epochStart) / Double(max(progress.stepInEpoch, 1))
        let left = stepSeconds * Double(stepsInEpoch - progress.stepInEpoch + (epochs - progress.epoch - 1) * stepsInEpoch)
        let text = "epoch \(progress.epoch + 1)/\(epochs) [\(bar)] \(progress.stepInEpoch)/\(stepsInEpoch)  loss \(String(format: "%.4f", lossSum / Float(samples)))  \(Int(rate).grouped) samples/s  ETA \(Self.duration(left))"
        // Cut to the terminal's width: a line that wraps cannot be redrawn in place, and leaves stale lines.
        let columns = terminalColumns ?? 80
        let shown = text.count < columns ? text : String(text.prefix(max(columns - 1, 1)))
        FileHandle.standardOutput.write(Data(("\r" + shown + "\u{1B}[K").utf8))
        drawn = true
    }

    /// "42 s", "3 min 05 s", "1 h 02 min".
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s) s" }
        if s < 3600 { return String(format: "%d min %02d s", s / 60, s % 60) }
        return String(format: "%d h %02d min", s / 3600, (s % 3600) / 60)
    }

    func clear() {
        guard drawn else { return }
        FileHandle.standardOutput.write(Data("\r\u{1B}[K".utf8))
        drawn = false
    }
}

/// Appends epoch metrics to a JSON Lines file.
final class MetricsWriter {
    let handle: FileHandle
    let path: String
    /// Written on every line, so that the runs that share a file can be told apart (a resumed run keeps its id).
    let run: String

    /// Opens `path` to append to (created if missing; never truncated: it may hold other runs' lines).
    init(path: String, run: String) throws {
        self.path = path
        self.run = run
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw MetricsError(path: path, reason: "cannot create the file")
            }
        }
        guard let handle = FileHandle(forWritingAtPath: path) else { throw MetricsError(path: path, reason: "cannot open the file for writing") }
        handle.seekToEndOfFile()
        self.handle = handle
    }

    /// A new run's id: its start time (UTC) and four random hex digits, `20261207T065800Z-3fa2`.
    static func newRunID() -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return formatter.string(from: Date()) + "-" + String(format: "%04x", UInt16.random(in: 0...UInt16.max))
    }

    /// Writes one JSON object: the epoch's metrics, and `resident_mib`, the process's resident memory at that
    /// moment (Linux), so that a long run shows whether memory grows.
    func write(_ metrics: EpochMetrics) throws {
        var object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(metrics)) as? [String: Any] ?? [:]
        if let resident = residentMemoryBytes() { object["resident_mib"] = (Double(resident) / 1_048_576 * 100).rounded() / 100 }
        object["run"] = run
        var line = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        line.append(0x0A)
        do { try handle.write(contentsOf: line) } catch {
            throw MetricsError(path: path, reason: (error as NSError).localizedDescription)
        }
    }

    /// Writes the test set's figures of the best epoch of a run evaluated on a validation split: a line with
    /// `"best_on_test": true`, the best epoch and its test figures (no training figures).
    func writeBestOnTest(_ metrics: EpochMetrics) throws {
        var object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(metrics)) as? [String: Any] ?? [:]
        for key in ["train_loss", "samples_per_second", "seconds", "learning_rate", "steps"] { object[key] = nil }
        object["best_on_test"] = true
        object["run"] = run
        var line = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        line.append(0x0A)
        do { try handle.write(contentsOf: line) } catch {
            throw MetricsError(path: path, reason: (error as NSError).localizedDescription)
        }
    }

    struct MetricsError: Error, CustomStringConvertible {
        var path: String
        var reason: String
        var description: String { "--metrics \(path): \(reason)" }
    }
}

/// Set by SIGINT (Ctrl-C); the trainer polls it after each step and stops cleanly. A second Ctrl-C exits at once.
final class InterruptFlag: @unchecked Sendable {
    nonisolated(unsafe) static var flag: sig_atomic_t = 0
    var isSet: Bool { Self.flag != 0 }

    static func install() -> InterruptFlag {
        signal(SIGINT) { _ in
            if InterruptFlag.flag != 0 { _exit(130) }
            InterruptFlag.flag = 1
        }
        // A parent may have started this process with SIGINT blocked (a child inherits its spawner's signal mask;
        // Foundation's Process is one such spawner): unblock it, or Ctrl-C and `kill -INT` would never arrive.
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        return InterruptFlag()
    }
}

/// The process's resident memory in bytes (from /proc/self/statm), or nil where there is none.
func residentMemoryBytes() -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}
