import Foundation
import MLPCore

/// `DIR/run.json`, the record of a run folder: the run's id, its configuration as last trained, and every command
/// that trained it (the first, then each resume), with when it started. Rewritten atomically at each start.
enum RunRecord {
    static func append(to directory: URL, run: String, configuration: TrainingConfiguration,
                       arguments: [String] = CommandLine.arguments) throws {
        let url = directory.appendingPathComponent("run.json")
        var commands = [[String: Any]]()
        if let data = try? Data(contentsOf: url),
           let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
           object["run"] as? String == run, let earlier = object["commands"] as? [[String: Any]] {
            commands = earlier
        }
        let formatter = ISO8601DateFormatter()
        commands.append(["started": formatter.string(from: Date()),
                         "arguments": ["mlp"] + arguments.dropFirst()])
        let configurationObject = try JSONSerialization.jsonObject(with: JSONEncoder.sorted.encode(configuration))
        let record: [String: Any] = ["run": run, "configuration": configurationObject, "commands": commands]
        let data = try JSONSerialization.data(withJSONObject: record, options: [.prettyPrinted, .sortedKeys])
        do {
            try data.write(to: url, options: .atomic)
        } catch {
            throw IOFailure(path: url.path, reason: "cannot write: \((error as NSError).localizedDescription)")
        }
    }
}
