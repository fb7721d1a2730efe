import Foundation

/// A table read from a CSV file (RFC 4180: fields separated by a delimiter, records by LF or CRLF, a field in double
/// quotes may hold delimiters, line breaks and doubled quotes): its column names, and each column's cells, as
/// numbers, or as text for the columns the caller names (a target of class names, say).
///
/// Numeric cells are read as a 64-bit float, correctly rounded, then rounded to `Float` (what
/// `numpy.loadtxt(…).astype(np.float32)` or pandas' `read_csv(…, float_precision="round_trip")` gives). A cell that
/// is not a finite number in a numeric column, an empty one, a row of another length than the header, and a quote
/// left open are errors that name the file, the line and the column.
public struct CSVTable: Sendable, Equatable {
    /// One column's cells, top to bottom.
    public enum Column: Sendable, Equatable {
        case numbers([Float])
        case text([String])
    }

    /// How to read the file.
    public struct Options: Sendable {
        /// The byte between fields (`,` by default; `\t` for TSV, `;`, `|`, …).
        public var delimiter: UInt8
        /// Whether the first record names the columns; without one they are named by their 0-based index.
        public var hasHeader: Bool
        /// The columns kept as text (by name, or by 0-based index written as a number).
        public var textColumns: [String]
        /// The columns not read at all (an id, say), by name or index.
        public var ignoredColumns: [String]
        /// When set, the only columns read (by name or index), in the file's order; `ignoredColumns` still applies.
        public var onlyColumns: [String]?

        public init(delimiter: UInt8 = UInt8(ascii: ","), hasHeader: Bool = true, textColumns: [String] = [], ignoredColumns: [String] = [],
                    onlyColumns: [String]? = nil) {
            self.delimiter = delimiter
            self.hasHeader = hasHeader
            self.textColumns = textColumns
            self.ignoredColumns = ignoredColumns
            self.onlyColumns = onlyColumns
        }
    }

    /// The names of the columns read (ignored ones left out), in the file's order.
    public var names: [String]
    /// Their cells.
    public var columns: [Column]
    /// The number of rows (records after the header).
    public var rowCount: Int

    public init(names: [String], columns: [Column], rowCount: Int) {
        self.names = names
        self.columns = columns
        self.rowCount = rowCount
    }

    /// Reads a CSV file.
    /// - Throws: `DataError` naming the file, and the line and column where it applies.
    public static func read(contentsOf url: URL, options: Options = Options()) throws -> CSVTable {
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw DataError.unreadable(file: url.path, reason: (error as NSError).localizedDescription)
        }
        return try data.withUnsafeBytes { try parse($0, file: url.path, options: options) }
    }

    /// What one column of a file holds, for describing a table that cannot be read as it is.
    public struct ColumnSurvey: Sendable, Equatable {
        public var name: String
        /// Cells that are finite numbers.
        public var numbers = 0
        /// Empty cells, and the line of the first.
        public var empty = 0, firstEmptyLine: Int?
        /// Cells that are not numbers (text), and the first of them with its line.
        public var text = 0, firstText: (value: String, line: Int)?
        /// NaN or infinite cells, and the line of the first.
        public var nonFinite = 0, firstNonFiniteLine: Int?
        /// Distinct text values seen, up to 50 (a class column's classes).
        public var textValues = Set<String>()

        public static func == (a: ColumnSurvey, b: ColumnSurvey) -> Bool {
            a.name == b.name && a.numbers == b.numbers && a.empty == b.empty && a.text == b.text && a.nonFinite == b.nonFinite
        }
    }

    /// Every column's cells counted by kind (numbers, empty, text, NaN or infinite), reading every record without
    /// stopping at the first bad cell. Records of the wrong width are counted in `raggedRecords`, with the first's
    /// line.
    /// - Throws: `DataError` for an unreadable or empty file, or a quote left open.
    public static func survey(of url: URL, delimiter: UInt8 = UInt8(ascii: ","), hasHeader: Bool = true) throws
        -> (columns: [ColumnSurvey], rows: Int, raggedRecords: Int, firstRaggedLine: Int?) {
        try withFirstRecord(of: url, delimiter: delimiter, hasHeader: hasHeader) { reader in
            let width = reader.count
            var columns = (0..<width).map { ColumnSurvey(name: hasHeader ? reader.text($0) : String($0)) }
            var rows = 0, ragged = 0, firstRagged: Int?
            var haveRecord = !hasHeader
            while true {
                if !haveRecord {
                    guard try reader.nextRecord() else { break }
                }
                haveRecord = false
                guard reader.count == width else {
                    ragged += 1
                    if firstRagged == nil { firstRagged = reader.recordLine }
                    continue
                }
                rows += 1
                for c in 0..<width {
                    if let v = reader.withField(c, parseNumber) {
                        if v.isFinite {
                            columns[c].numbers += 1
                        } else {
                            columns[c].nonFinite += 1
                            if columns[c].firstNonFiniteLine == nil { columns[c].firstNonFiniteLine = reader.recordLine }
                        }
                        continue
                    }
                    let cell = reader.text(c)
                    if cell.trimmingCharacters(in: .whitespaces).isEmpty {
                        columns[c].empty += 1
                        if columns[c].firstEmptyLine == nil { columns[c].firstEmptyLine = reader.recordLine }
                    } else {
                        columns[c].text += 1
                        if columns[c].firstText == nil { columns[c].firstText = (String(cell.prefix(40)), reader.recordLine) }
                        if columns[c].textValues.count < 50 { columns[c].textValues.insert(cell) }
                    }
                }
            }
            return (columns, rows, ragged, firstRagged)
        }
    }

    /// The names of a file's columns: its header's fields, or their 0-based indices without a header.
    /// - Throws: `DataError` for an unreadable or empty file.
    public static func header(of url: URL, delimiter: UInt8 = UInt8(ascii: ","), hasHeader: Bool = true) throws -> [String] {
        try withFirstRecord(of: url, delimiter: delimiter, hasHeader: hasHeader) { reader in
            hasHeader ? (0..<reader.count).map { reader.text($0) } : (0..<reader.count).map(String.init)
        }
    }

    /// Calls `body` with a reader of the file (mapped, read only as far as `body` goes) at its first record.
    /// - Throws: `DataError` for an unreadable or empty file, and what `body` throws.
    static func withFirstRecord<T>(of url: URL, delimiter: UInt8, hasHeader: Bool, _ body: (inout CSVRecordReader) throws -> T) throws -> T {
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw DataError.unreadable(file: url.path, reason: (error as NSError).localizedDescription)
        }
        return try data.withUnsafeBytes { bytes in
            var reader = CSVRecordReader(bytes, delimiter: delimiter, file: url.path)
            guard try reader.nextRecord() else {
                throw DataError.malformed(file: url.path, reason: "empty (expected \(hasHeader ? "a header row and " : "")rows of values)")
            }
            return try body(&reader)
        }
    }

    /// The name of the column `selector` names in `names` (by name, or by 0-based index).
    /// - Throws: `DataError.invalidArgument` naming `flag` and listing the columns.
    public static func column(_ selector: String, in names: [String], file: String, flag: String) throws -> String {
        if names.contains(selector) { return selector }
        if let i = Int(selector), names.indices.contains(i) { return names[i] }
        throw DataError.invalidArgument(name: "\(flag) \(selector)", reason: "no such column in \(file); its columns: \(names.joined(separator: ", "))")
    }

    /// Parses CSV bytes; `file` names them in errors.
    public static func parse(_ bytes: UnsafeRawBufferPointer, file: String, options: Options = Options()) throws -> CSVTable {
        var reader = CSVRecordReader(bytes, delimiter: options.delimiter, file: file)
        guard try reader.nextRecord() else {
            throw DataError.malformed(file: file, reason: "empty (expected \(options.hasHeader ? "a header row and " : "")rows of values)")
        }
        let width = reader.count
        let allNames = options.hasHeader ? (0..<width).map { reader.text($0) } : (0..<width).map(String.init)
        func index(_ selector: String, _ what: String) throws -> Int {
            if let i = allNames.firstIndex(of: selector) { return i }
            if let i = Int(selector), (0..<width).contains(i) { return i }
            throw DataError.invalidArgument(name: "\(what) \(selector)", reason: "no such column in \(file); its columns: \(allNames.joined(separator: ", "))")
        }
        let text = Set(try options.textColumns.map { try index($0, "--target") })
        let ignored = Set(try options.ignoredColumns.map { try index($0, "--ignore") })
        let only = try options.onlyColumns.map { Set(try $0.map { try index($0, "--features") }) }
        let kept = (0..<width).filter { !ignored.contains($0) && only?.contains($0) != false }
        // Per column of the file: its place among those kept (nil: ignored).
        var slot = [Int?](repeating: nil, count: width)
        for (i, c) in kept.enumerated() { slot[c] = i }
        var numbers = kept.map { _ in [Float]() }
        var strings = kept.map { _ in [String]() }
        var rows = 0
        // Without a header the first record is a row.
        var haveRecord = !options.hasHeader
        while true {
            if !haveRecord {
                guard try reader.nextRecord() else { break }
            }
            haveRecord = false
            try reader.checkWidth(width, hasHeader: options.hasHeader)
            for c in kept {
                let s = slot[c]!
                if text.contains(c) {
                    strings[s].append(reader.text(c))
                    continue
                }
                numbers[s].append(try reader.number(c, column: allNames[c]))
            }
            rows += 1
        }
        guard rows > 0 else { throw DataError.malformed(file: file, reason: "a header row and no rows of values") }
        let columns: [Column] = kept.map { c in text.contains(c) ? .text(strings[slot[c]!]) : .numbers(numbers[slot[c]!]) }
        return CSVTable(names: kept.map { allNames[$0] }, columns: columns, rowCount: rows)
    }

    /// A number written as the field's text (spaces around it allowed), correctly rounded to `Double` and then to
    /// `Float`; nil when the text is not a number. `nan` and `inf` read as themselves (the caller refuses them).
    static func parseNumber(_ field: UnsafeRawBufferPointer) -> Float? { parseDouble(field).map(Float.init) }

    /// The field's number correctly rounded to `Double`, as `strtod` reads it; nil when the text is not a number.
    static func parseDouble(_ field: UnsafeRawBufferPointer) -> Double? {
        var start = 0, end = field.count
        while start < end, field[start] == 0x20 || field[start] == 0x09 { start += 1 }
        while end > start, field[end - 1] == 0x20 || field[end - 1] == 0x09 || field[end - 1] == 0x0D { end -= 1 }
        guard start < end else { return nil }
        // The fast path: [+-]digits[.digits][(e|E)[+-]digits] with at most 19 significant digits whose value and
        // power of ten Double holds exactly (Clinger's condition), so that one multiplication or division rounds
        // correctly.
        var i = start
        var negative = false
        if field[i] == UInt8(ascii: "-") || field[i] == UInt8(ascii: "+") {
            negative = field[i] == UInt8(ascii: "-")
            i += 1
        }
        var mantissa: UInt64 = 0, digits = 0, scale = 0, sawDigit = false
        while i < end, field[i] &- 0x30 < 10 {
            if digits < 19 { mantissa = mantissa &* 10 &+ UInt64(field[i] &- 0x30); if mantissa > 0 { digits += 1 } } else { scale += 1 }
            sawDigit = true
            i += 1
        }
        if i < end, field[i] == UInt8(ascii: ".") {
            i += 1
            while i < end, field[i] &- 0x30 < 10 {
                if digits < 19 { mantissa = mantissa &* 10 &+ UInt64(field[i] &- 0x30); scale -= 1; if mantissa > 0 { digits += 1 } }
                sawDigit = true
                i += 1
            }
        }
        var fast = sawDigit && digits < 19
        if fast, i < end, field[i] | 0x20 == UInt8(ascii: "e") {
            i += 1
            var exponentNegative = false
            if i < end, field[i] == UInt8(ascii: "-") || field[i] == UInt8(ascii: "+") {
                exponentNegative = field[i] == UInt8(ascii: "-")
                i += 1
            }
            var exponent = 0, exponentDigits = 0
            while i < end, field[i] &- 0x30 < 10 {
                if exponent < 10_000 { exponent = exponent * 10 + Int(field[i] &- 0x30) }
                exponentDigits += 1
                i += 1
            }
            if exponentDigits == 0 { fast = false }
            scale += exponentNegative ? -exponent : exponent
        }
        if fast, i == end, mantissa < 1 << 53, (-22...22).contains(scale) {
            var value = Double(mantissa)
            value = scale < 0 ? value / powersOfTen[-scale] : value * powersOfTen[scale]
            return negative ? -value : value
        }
        // Everything else (long mantissas, large exponents, nan, inf, hexadecimal floats, and what is no number):
        // the C library's strtod over a NUL-terminated copy, which must take the whole field.
        let length = end - start
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: length + 1) { buffer -> Double? in
            for k in 0..<length { buffer[k] = CChar(bitPattern: field[start + k]) }
            buffer[length] = 0
            var stop: UnsafeMutablePointer<CChar>?
            let value = strtod(buffer.baseAddress!, &stop)
            guard let stop, stop == buffer.baseAddress! + length else { return nil }
            return value
        }
    }

    /// 10⁰ … 10²², each exact in `Double`.
    static let powersOfTen: [Double] = (0...22).map { (0..<$0).reduce(1.0) { r, _ in r * 10 } }
}

/// Splits CSV bytes into records of fields. A record's fields are ranges of the input, or, for quoted fields, of a
/// scratch buffer holding them unquoted; both lists are kept from record to record, so that reading allocates
/// nothing per record once they have grown.
struct CSVRecordReader {
    private let bytes: UnsafeRawBufferPointer
    private let delimiter: UInt8
    private let file: String
    private var position = 0
    /// The line being read, from 1.
    private var line = 1
    /// The line the current record starts on.
    private(set) var recordLine = 1
    /// The current record's fields: where each starts and how long it is, in the input or (`quoted`) in `scratch`.
    private var starts = [Int](), lengths = [Int](), quoted = [Bool]()
    private var scratch = [UInt8]()

    /// A reader of `bytes`, the file's text from line `firstLine` (1: the file's start, where a byte-order mark is
    /// skipped) on.
    init(_ bytes: UnsafeRawBufferPointer, delimiter: UInt8, file: String, firstLine: Int = 1) {
        self.bytes = bytes
        self.delimiter = delimiter
        self.file = file
        line = firstLine
        recordLine = firstLine
        // A UTF-8 byte-order mark, as spreadsheets write, is not part of the first name.
        if firstLine == 1, bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { position = 3 }
    }

    /// The line the next record would start on.
    var currentLine: Int { line }

    /// The current record's number of fields.
    var count: Int { starts.count }

    /// Calls `body` with field `i` of the current record.
    func withField<T>(_ i: Int, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        if quoted[i] {
            return try scratch.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[starts[i]..<starts[i] + lengths[i]])) }
        }
        return try body(UnsafeRawBufferPointer(rebasing: bytes[starts[i]..<starts[i] + lengths[i]]))
    }

    /// Field `i` of the current record as text.
    func text(_ i: Int) -> String { withField(i) { String(decoding: $0, as: UTF8.self) } }

    /// Field `i` as a finite number.
    /// - Throws: `DataError.malformed` naming the line and `column`: an empty cell, text, NaN or infinity.
    func number(_ i: Int, column: String) throws -> Float {
        guard let value = withField(i, CSVTable.parseNumber) else {
            let cell = text(i)
            throw DataError.malformed(file: file, reason: "line \(recordLine), column \(column): "
                + (cell.isEmpty ? "an empty cell (every cell of a numeric column needs a number)" : "\"\(cell.prefix(40))\" is not a number"))
        }
        guard value.isFinite else {
            throw DataError.malformed(file: file, reason: "line \(recordLine), column \(column): \(text(i)) is not a finite number")
        }
        return value
    }

    /// - Throws: `DataError.malformed` naming the line when the record has not `width` fields.
    func checkWidth(_ width: Int, hasHeader: Bool) throws {
        guard count == width else {
            throw DataError.malformed(file: file, reason: "line \(recordLine): \(count) field\(count == 1 ? "" : "s") where the \(hasHeader ? "header has" : "first row has") \(width)")
        }
    }

    /// Reads the next record; false at the end. Lines with nothing on them are skipped.
    mutating func nextRecord() throws -> Bool {
        let quote = UInt8(ascii: "\""), newline = UInt8(ascii: "\n"), carriage = UInt8(ascii: "\r")
        starts.removeAll(keepingCapacity: true)
        lengths.removeAll(keepingCapacity: true)
        quoted.removeAll(keepingCapacity: true)
        scratch.removeAll(keepingCapacity: true)
        while position < bytes.count, bytes[position] == newline || bytes[position] == carriage {
            if bytes[position] == newline { line += 1 }
            position += 1
        }
        guard position < bytes.count else { return false }
        recordLine = line
        let startLine = line
        while true {
            if position < bytes.count, bytes[position] == quote {
                // A quoted field: up to the closing quote, "" standing for one quote.
                let start = scratch.count
                position += 1
                while true {
                    guard position < bytes.count else {
                        throw DataError.malformed(file: file, reason: "line \(startLine): a quoted field is not closed")
                    }
                    let b = bytes[position]
                    position += 1
                    if b == quote {
                        if position < bytes.count, bytes[position] == quote { scratch.append(quote); position += 1; continue }
                        break
                    }
                    if b == newline { line += 1 }
                    scratch.append(b)
                }
                starts.append(start)
                lengths.append(scratch.count - start)
                quoted.append(true)
                // After the closing quote: the delimiter or the end of the record (spaces tolerated, as Python's
                // csv module does).
                while position < bytes.count, bytes[position] == 0x20 { position += 1 }
                if position < bytes.count, bytes[position] != delimiter, bytes[position] != newline, bytes[position] != carriage {
                    throw DataError.malformed(file: file, reason: "line \(line): text after a closing quote (a quote inside a quoted field is written \"\")")
                }
            } else {
                var end = position
                while end < bytes.count, bytes[end] != delimiter, bytes[end] != newline { end += 1 }
                var stop = end
                if stop > position, bytes[stop - 1] == carriage { stop -= 1 }
                starts.append(position)
                lengths.append(stop - position)
                quoted.append(false)
                position = end
            }
            if position < bytes.count, bytes[position] == delimiter {
                position += 1
                continue
            }
            // The end of the record: a line break (LF or CRLF), or the end of the bytes.
            if position < bytes.count, bytes[position] == carriage { position += 1 }
            if position < bytes.count, bytes[position] == newline { position += 1; line += 1 }
            return true
        }
    }
}
