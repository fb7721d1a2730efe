import Foundation
@testable import MNIST
import Testing
import TestSupport

/// The CSV reader: a file written by Python's `csv` module reads back to Python's values, numbers bit for bit (as
/// float64 rounded to float32), text with its delimiters, quotes and line breaks; the number parser's fast path agrees
/// with the C library's `strtod` on random decimal text; and every malformed file is refused naming the line and the
/// column.
@Suite struct CSVTests {
    static let pythonReady: Bool = {
        guard let r = try? runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", "import numpy, csv"]) else { return false }
        return r.status == 0
    }()

    static func table(_ text: String, _ options: CSVTable.Options = .init()) throws -> CSVTable {
        var bytes = Array(text.utf8)
        return try bytes.withUnsafeMutableBytes { try CSVTable.parse(UnsafeRawBufferPointer($0), file: "/data/t.csv", options: options) }
    }

    @Test(.enabled(if: pythonReady, "python3 with numpy is not installed (pip install numpy)"))
    func aFileWrittenByPythonsCSVModuleReadsBack() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = """
            import csv, numpy as np, sys, os
            rng = np.random.default_rng(11)
            names = ["id", "width, in mm", 'say "hi"', "mass", "count", "label"]
            labels = ["benign", "malignant, stage 2", 'the "odd" one', "two\\nlines"]
            rows, expected = [], []
            for r in range(257):
                width = float(rng.standard_normal() * 10.0 ** int(rng.integers(-8, 9)))
                hi = float(np.float32(rng.standard_normal()))
                mass = float(rng.standard_normal()) * 1e-30 if r % 7 == 0 else float(rng.integers(-5, 5)) / 8
                count = int(rng.integers(-10**6, 10**6))
                label = labels[int(rng.integers(0, len(labels)))]
                rows.append([r, repr(width), repr(hi), "%.17e" % mass, count, label])
                expected.append([int(np.float32(v).view(np.uint32)) for v in (width, hi, mass, count)] + [label])
            with open(os.path.join(sys.argv[1], "t.csv"), "w", newline="") as f:
                w = csv.writer(f)   # QUOTE_MINIMAL, "\\r\\n" line endings
                w.writerow(names)
                w.writerows(rows)
            with open(os.path.join(sys.argv[1], "expected.txt"), "w") as f:
                for e in expected:
                    f.write(" ".join(str(v) for v in e[:4]) + "\\n")
                    f.write(e[4].replace("\\n", "\\\\n") + "\\n")
            """
        let python = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script, dir.path])
        #expect(python.status == 0, "\(python.stderr)")
        let table = try CSVTable.read(contentsOf: dir.appendingPathComponent("t.csv"),
                                      options: .init(textColumns: ["label"], ignoredColumns: ["0"]))
        #expect(table.names == ["width, in mm", "say \"hi\"", "mass", "count", "label"])
        #expect(table.rowCount == 257)
        let lines = try String(contentsOf: dir.appendingPathComponent("expected.txt"), encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        for r in 0..<257 {
            let bits = lines[2 * r].split(separator: " ").map { UInt32($0)! }
            for c in 0..<4 {
                guard case .numbers(let values) = table.columns[c] else { Issue.record("column \(c) is not numeric"); return }
                #expect(values[r].bitPattern == bits[c], "row \(r), column \(table.names[c]): \(values[r]) against \(Float(bitPattern: bits[c]))")
            }
            guard case .text(let labels) = table.columns[4] else { Issue.record("the label column is not text"); return }
            #expect(labels[r] == lines[2 * r + 1].replacingOccurrences(of: "\\n", with: "\n"), "row \(r)")
        }
    }

    /// The fast path (short mantissas, small exponents) against `strtod`, on random numbers written in the ways
    /// people and programs write them.
    @Test func theNumberParserAgreesWithStrtod() {
        var g = SeededGenerator(seed: 5)
        var checked = 0
        for _ in 0..<20_000 {
            let magnitude = Double(g.uniform(below: 40)) - 20
            let value = g.gaussian() * pow(10, magnitude)
            let formats = ["%.0f", "%.1f", "%.3f", "%.6g", "%.9g", "%.15g", "%.17g", "%e", "%.2e", "%.12E", "%+.4f", "%g"]
            let text = String(format: formats[g.uniform(below: formats.count)], value)
            // Compared in Double, before the rounding to Float that would hide a last-bit error.
            let parsed = Array(text.utf8).withUnsafeBytes { CSVTable.parseDouble($0) }
            #expect(parsed?.bitPattern == strtod(text, nil).bitPattern, "\(text)")
            checked += 1
        }
        #expect(checked == 20_000)
        for (text, value) in [("  7 ", Float(7)), ("-0", -Float(0)), (".5", 0.5), ("5.", 5), ("1e3", 1000), ("+2.5E-2", 0.025),
                              ("0.000000000000000000000000000001", 1e-30), ("123456789012345678901234", 1.2345679e23)] {
            let parsed = Array(text.utf8).withUnsafeBytes { CSVTable.parseNumber($0) }
            #expect(parsed?.bitPattern == value.bitPattern, "\(text)")
        }
        for text in ["", " ", "-", "1e", "1.2.3", "12abc", "abc", "1 2"] {
            #expect(Array(text.utf8).withUnsafeBytes { CSVTable.parseNumber($0) } == nil, "\(text)")
        }
    }

    @Test func delimitersHeadersAndIgnoredColumns() throws {
        let semicolons = try Self.table("\u{FEFF}a;b;c\r\n1;2;x\r\n\r\n4;5;y\r\n", .init(delimiter: UInt8(ascii: ";"), textColumns: ["c"], ignoredColumns: ["b"]))
        #expect(semicolons.names == ["a", "c"] && semicolons.rowCount == 2)
        #expect(semicolons.columns == [.numbers([1, 4]), .text(["x", "y"])])
        let tabs = try Self.table("1\t2.5\n3\t-4\n", .init(delimiter: UInt8(ascii: "\t"), hasHeader: false))
        #expect(tabs.names == ["0", "1"] && tabs.columns == [.numbers([1, 3]), .numbers([2.5, -4])])
        // Without a header, a line's number counts the blank lines before it too.
        let noHeader = #expect(throws: DataError.self) { try Self.table("\n1,2\n\n3,x\n", .init(hasHeader: false)) }
        #expect(noHeader?.description == "/data/t.csv: line 4, column 1: \"x\" is not a number")
        let quotedNumbers = try Self.table("\"x\",y\n\"1.5\", 2\n")
        #expect(quotedNumbers.columns == [.numbers([1.5]), .numbers([2])])
    }

    @Test(arguments: [
        ("", "/data/t.csv: empty (expected a header row and rows of values)"),
        ("a,b\n", "/data/t.csv: a header row and no rows of values"),
        ("a,b\n1,2\n3\n", "/data/t.csv: line 3: 1 field where the header has 2"),
        ("a,b\n1,2\n3,4,5\n", "/data/t.csv: line 3: 3 fields where the header has 2"),
        ("a,b\n1,2\n3,x7\n", "/data/t.csv: line 3, column b: \"x7\" is not a number"),
        ("a,b\n1,\n", "/data/t.csv: line 2, column b: an empty cell"),
        ("a,b\n1,nan\n", "/data/t.csv: line 2, column b: nan is not a finite number"),
        ("a,b\n1,-inf\n", "/data/t.csv: line 2, column b: -inf is not a finite number"),
        ("a,b\n\"1,2\n3,4\n", "/data/t.csv: line 2: a quoted field is not closed"),
        ("a,b\n\"1\"2,3\n", "/data/t.csv: line 2: text after a closing quote"),
        ("a,\"b\nc\"\n1,2\n3,x\n", "/data/t.csv: line 4, column b\nc: \"x\" is not a number"),
        ("\n\na,b\n3\n", "/data/t.csv: line 4: 1 field where the header has 2"),
    ])
    func malformedFilesAreRefusedNamingTheLine(text: String, message: String) {
        let error = #expect(throws: DataError.self) { try Self.table(text) }
        #expect(error?.description.hasPrefix(message) == true, "\(String(describing: error)) should start with \(message)")
    }

    @Test func aColumnThatIsNotThereIsNamedWithTheColumns() {
        let error = #expect(throws: DataError.self) { try Self.table("a,b\n1,2\n", .init(textColumns: ["label"])) }
        #expect(error?.description == "--target label: no such column in /data/t.csv; its columns: a, b")
    }
}
