import Foundation
@testable import mlp
import Testing
import TestSupport

/// Every `mlp` command shown in the README and the pages of Docs/ parses (flags, values and their checks, as
/// `mlp` itself would take them, without running anything), and every shell script in the repository passes
/// `bash -n`.
@Suite struct DocumentationTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The `mlp …` lines inside the fenced code blocks of a Markdown file, without the prompt, comments or pipes.
    static func commands(in file: URL) throws -> [String] {
        var inBlock = false
        var found = [String]()
        for raw in try String(contentsOf: file, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("```") { inBlock.toggle(); continue }
            guard inBlock else { continue }
            var command = line.hasPrefix("$ ") ? String(line.dropFirst(2)) : line
            if command.hasPrefix("./mlp ") { command.removeFirst(2) }
            guard command.hasPrefix("mlp ") || command == "mlp" else { continue }
            for cut in [" #", " |", " >"] { if let r = command.range(of: cut) { command = String(command[..<r.lowerBound]) } }
            found.append(command.trimmingCharacters(in: .whitespaces))
        }
        return found
    }

    static var documents: [URL] {
        let docs = (try? FileManager.default.contentsOfDirectory(at: root.appendingPathComponent("Docs"), includingPropertiesForKeys: nil)) ?? []
        return [root.appendingPathComponent("README.md")] + docs.filter { $0.pathExtension == "md" }.sorted { $0.path < $1.path }
    }

    @Test func everyDocumentedCommandParses() throws {
        var count = 0
        for document in Self.documents {
            for command in try Self.commands(in: document) {
                let arguments = command.split(separator: " ").dropFirst().map(String.init)
                do {
                    _ = try MLPTool.parseAsRoot(arguments)
                } catch where MLPTool.exitCode(for: error) == .success {
                    // --version and --help end parsing with a clean exit.
                } catch {
                    Issue.record("\(document.lastPathComponent): `\(command)` does not parse: \(MLPTool.message(for: error))")
                }
                count += 1
            }
        }
        #expect(count >= 12, "found only \(count) commands in the documentation")
    }

    @Test func everyShellScriptParses() throws {
        let scripts = ["Scripts/release.sh", "Scripts/slurm/train.sbatch", "Scripts/slurm/bench.sbatch",
                       "Benchmarks/gpu/run.sh", "Fuzz/run.sh", ".ci/run"]
        for script in scripts {
            let r = try runProcess(URL(fileURLWithPath: "/bin/bash"), ["-n", Self.root.appendingPathComponent(script).path])
            #expect(r.status == 0, "\(script): \(r.stderr)")
        }
    }
}
