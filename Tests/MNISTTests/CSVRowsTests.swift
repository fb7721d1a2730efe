import Foundation
@testable import MNIST
import Testing
import TestSupport

/// The parallel row reader against `CSVTable`, the one-part reader: the same rows, targets and errors (with the same
/// line numbers), whatever the parts and chunks, on tables with blank lines, CRLF, a byte-order mark and no final
/// line break; and a quoted field anywhere sends the file to `CSVTable`.
@Suite struct CSVRowsTests {
    /// A random table: `rows` records of `features` numbers and a text class, in varied spellings.
    func table(rows: Int, features: Int, seed: UInt64, crlf: Bool, blankLines: Bool, bom: Bool, finalBreak: Bool) -> String {
        var g = SeededGenerator(seed: seed)
        let eol = crlf ? "\r\n" : "\n"
        var text = (bom ? "\u{FEFF}" : "") + (0..<features).map { "c\($0)" }.joined(separator: ",") + ",y" + eol
        for r in 0..<rows {
            if blankLines && g.uniform(below: 9) == 0 { text += g.uniform(below: 2) == 0 ? eol : "\r" + eol }
            let cells = (0..<features).map { _ -> String in
                switch g.uniform(below: 4) {
                case 0: return String(g.uniform(below: 1000) - 500)
                case 1: return String(Float(g.gaussian() * 1e3))
                case 2: return String(format: "%.3e", g.gaussian())
                default: return " \(Double(g.gaussian())) "
                }
            }
            text += cells.joined(separator: ",") + ",k\(g.uniform(below: 5))" + (r == rows - 1 && !finalBreak ? "" : eol)
        }
        return text
    }

    func both(_ text: String, features: Int, cuts: CSVRows.Cuts) throws -> (fast: Swift.Result<CSVRows.Result?, Error>, slow: Swift.Result<CSVTable, Error>) {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("t.csv")
        try Data(text.utf8).write(to: url)
        let names = (0..<features).map { "c\($0)" } + ["y"]
        let fast = Swift.Result { try CSVRows.read(path: url.path, delimiter: UInt8(ascii: ","), hasHeader: true, width: features + 1,
                                                   features: Array(0..<features), target: features, names: names, cuts: cuts) }
        let slow = Swift.Result { try CSVTable.read(contentsOf: url, options: .init(textColumns: ["y"])) }
        return (fast, slow)
    }

    @Test(arguments: [(1, 1 << 20, 1 << 20), (3, 64, 97), (7, 1, 33), (5, 200, 4096)])
    func partsAndChunksReadWhatOnePartReads(parts: Int, minimumPart: Int, chunk: Int) throws {
        for (seed, variant) in [(1, (false, false, false, true)), (2, (true, true, true, false)), (3, (false, true, false, false))] as [(UInt64, (Bool, Bool, Bool, Bool))] {
            let text = table(rows: 211, features: 7, seed: seed, crlf: variant.0, blankLines: variant.1, bom: variant.2, finalBreak: variant.3)
            let (fast, slow) = try both(text, features: 7, cuts: .init(parts: parts, minimumPart: minimumPart, chunk: chunk))
            let rows = try #require(try fast.get())
            let table = try slow.get()
            #expect(rows.rows == 211 && table.rowCount == 211)
            for j in 0..<7 {
                guard case .numbers(let column) = table.columns[j] else { Issue.record("column \(j) is numbers"); continue }
                #expect((0..<211).map { rows.values[$0 * 7 + j] } == column, "seed \(seed), column \(j)")
            }
            #expect(table.columns[7] == .text(rows.targets))
        }
    }

    /// A bad cell deep in the file: the same message, line included, from any part.
    @Test func errorsNameTheSameLineAsOnePart() throws {
        var text = table(rows: 300, features: 4, seed: 9, crlf: false, blankLines: true, bom: false, finalBreak: true)
        // Split on the byte: a String would keep "\r\n" as one character.
        var lines = text.utf8.split(separator: 0x0A, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        lines[237] = lines[237].isEmpty ? "1,2,x,4,k" : lines[237].replacingOccurrences(of: ",", with: ",oops", options: [], range: lines[237].range(of: ","))
        text = lines.joined(separator: "\n")
        let (fast, slow) = try both(text, features: 4, cuts: .init(parts: 6, minimumPart: 10, chunk: 50))
        guard case .failure(let a) = fast, case .failure(let b) = slow else { Issue.record("both fail"); return }
        #expect("\(a)" == "\(b)" && "\(a)".contains("line 238"), "\(a) / \(b)")
    }

    @Test func aQuotedFieldAnywhereTakesTheOnePartReader() throws {
        var text = table(rows: 50, features: 2, seed: 4, crlf: false, blankLines: false, bom: false, finalBreak: true)
        text += "1,2,\"k, quoted\"\n"
        let (fast, slow) = try both(text, features: 2, cuts: .init(parts: 4, minimumPart: 10, chunk: 64))
        #expect(try fast.get() == nil)
        #expect(try slow.get().rowCount == 51)
    }
}
