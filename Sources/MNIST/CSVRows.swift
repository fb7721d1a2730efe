import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#else
import Darwin
#endif

/// A table read straight into rows of floats (the features) and one column of text (the target), by all cores at
/// once: how training reads a CSV file.
///
/// The file is read twice with `pread`, never mapped or held whole, so the memory it takes is the result's and a few
/// buffers: once to count each part's records (and to see whether any field is quoted), once to parse each part into
/// its own rows of the result. The parts end at line breaks, which is safe only where no field is quoted (a quoted
/// field may hold one): for a file with a quote anywhere, `read` returns nil and the caller reads it with `CSVTable`,
/// in one part. Records, numbers and errors are `CSVRecordReader`'s and `CSVTable`'s.
enum CSVRows {
    struct Result {
        /// `rows × features.count` values, row-major.
        var values: [Float]
        /// The target column's text, row by row.
        var targets: [String]
        var rows: Int
    }

    /// How the file is cut up: into at most `parts` parts (one per core by default) of at least `minimumPart` bytes,
    /// each read `chunk` bytes at a time. Tests make them small, to cross every boundary.
    struct Cuts {
        var parts = ProcessInfo.processInfo.activeProcessorCount
        var minimumPart = 1 << 20
        var chunk = 8 << 20
    }

    /// Reads the rows of `path` after its header (`hasHeader`): each record must have `width` fields; `features`
    /// (0-based, in the order wanted) are numbers, `target` is text; `names` name columns in errors. nil when a field
    /// is quoted somewhere.
    /// - Throws: `DataError` naming the file, the line and the column.
    static func read(path: String, delimiter: UInt8, hasHeader: Bool, width: Int, features: [Int], target: Int, names: [String],
                     cuts: Cuts = Cuts()) throws -> Result? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw DataError.unreadable(file: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw DataError.unreadable(file: path, reason: String(cString: strerror(errno))) }
        let size = Int(status.st_size)

        // Where the body starts: after blank lines and the header line (a header with a quote takes the other path).
        var head = [UInt8](repeating: 0, count: min(size, 1 << 20))
        let got = head.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard got == head.count else { throw DataError.unreadable(file: path, reason: "cannot read: \(String(cString: strerror(errno)))") }
        var start = 0, firstLine = 1
        if head.starts(with: [0xEF, 0xBB, 0xBF]) { start = 3 }
        while start < head.count, head[start] == 0x0A || head[start] == 0x0D {
            if head[start] == 0x0A { firstLine += 1 }
            start += 1
        }
        if hasHeader {
            guard let end = head[start...].firstIndex(of: 0x0A) else { return nil }  // a header longer than 1 MB: rare
            if head[start..<end].contains(UInt8(ascii: "\"")) { return nil }
            start = end + 1
            firstLine += 1
        }

        // The parts: about equal, each ending after a line break.
        let count = max(1, min(cuts.parts, (size - start) / cuts.minimumPart))
        var bounds = [start]
        for i in 1..<count {
            let guess = max(bounds[i - 1], start + (size - start) * i / count)
            bounds.append(try nextLineStart(fd, from: guess, size: size, path: path))
        }
        bounds.append(size)

        // First pass: each part's records (lines with something on them) and lines, and whether any byte is a quote.
        let counted = try inParallel(count) { i in try countRecords(fd, bounds[i]..<bounds[i + 1], chunk: cuts.chunk, path: path) }
        if counted.contains(where: \.quoted) { return nil }
        var rowStart = [0], lineStart = [firstLine]
        for c in counted {
            rowStart.append(rowStart.last! + c.records)
            lineStart.append(lineStart.last! + c.lines)
        }
        let rows = rowStart.last!, f = features.count
        guard rows > 0 else { throw DataError.malformed(file: path, reason: "a header row and no rows of values") }

        // Second pass: each part parses its records into its rows.
        var values = [Float](repeating: 0, count: rows * f)
        var targets = [String](repeating: "", count: rows)
        try values.withUnsafeMutableBufferPointer { valueBuffer in
            try targets.withUnsafeMutableBufferPointer { targetBuffer in
                nonisolated(unsafe) let out = valueBuffer, text = targetBuffer
                _ = try inParallel(count) { i -> Int in
                    var row = rowStart[i]
                    try eachRecord(fd, bounds[i]..<bounds[i + 1], firstLine: lineStart[i], delimiter: delimiter, chunk: cuts.chunk, path: path) { reader in
                        try reader.checkWidth(width, hasHeader: hasHeader)
                        let base = row * f
                        for (j, c) in features.enumerated() { out[base + j] = try reader.number(c, column: names[c]) }
                        text[row] = reader.text(target)
                        row += 1
                    }
                    precondition(row == rowStart[i + 1], "part \(i) of \(path): \(row - rowStart[i]) records, \(counted[i].records) counted")
                    return row
                }
            }
        }
        return Result(values: values, targets: targets, rows: rows)
    }

    /// Runs `body` for parts `0..<count` at once; the results in order, or the error of the earliest part that failed
    /// (the one nearest the file's start).
    static func inParallel<T>(_ count: Int, _ body: @escaping (Int) throws -> T) throws -> [T] {
        let results = UnsafeMutablePointer<Swift.Result<T, Error>?>.allocate(capacity: count)
        results.initialize(repeating: nil, count: count)
        defer { results.deinitialize(count: count); results.deallocate() }
        nonisolated(unsafe) let slots = results
        nonisolated(unsafe) let work = body
        DispatchQueue.concurrentPerform(iterations: count) { i in slots[i] = Swift.Result { try work(i) } }
        return try (0..<count).map { try results[$0]!.get() }
    }

    /// The offset just after the first line break at or after `offset` (`size` if none).
    static func nextLineStart(_ fd: Int32, from offset: Int, size: Int, path: String) throws -> Int {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var at = offset
        while at < size {
            let n = try readAt(fd, &buffer, at, min(buffer.count, size - at), path: path)
            if let i = buffer[0..<n].firstIndex(of: 0x0A) { return at + i + 1 }
            at += n
        }
        return size
    }

    /// Records (lines holding a byte other than a carriage return: what `CSVRecordReader` does not skip) and line
    /// breaks in `range`, and whether a quote is there.
    static func countRecords(_ fd: Int32, _ range: Range<Int>, chunk: Int, path: String) throws -> (records: Int, lines: Int, quoted: Bool) {
        var buffer = [UInt8](repeating: 0, count: chunk)
        var records = 0, lines = 0, quoted = false
        var lineHasContent = false  // the line so far, which may have begun in the chunk before
        var at = range.lowerBound
        while at < range.upperBound {
            let n = try readAt(fd, &buffer, at, min(chunk, range.upperBound - at), path: path)
            buffer.withUnsafeBytes { b in
                let base = b.baseAddress!
                if !quoted, memchr(base, Int32(UInt8(ascii: "\"")), n) != nil { quoted = true }
                var p = 0
                while p < n {
                    let end = memchr(base + p, 0x0A, n - p).map { base.distance(to: UnsafeRawPointer($0)) } ?? n
                    // Usually the line's first byte settles it.
                    var q = p
                    while !lineHasContent && q < end {
                        if b[q] != 0x0D { lineHasContent = true }
                        q += 1
                    }
                    if end == n { break }  // the line goes on in the next chunk
                    if lineHasContent { records += 1 }
                    lines += 1
                    lineHasContent = false
                    p = end + 1
                }
            }
            at += n
        }
        if lineHasContent { records += 1 }  // a last line without a line break
        return (records, lines, quoted)
    }

    /// Calls `body` with a reader positioned at each record of `range` in turn, reading a chunk at a time.
    static func eachRecord(_ fd: Int32, _ range: Range<Int>, firstLine: Int, delimiter: UInt8, chunk: Int, path: String,
                           _ body: (inout CSVRecordReader) throws -> Void) throws {
        var buffer = [UInt8](repeating: 0, count: chunk)
        var carried = 0, at = range.lowerBound, line = firstLine
        while at < range.upperBound || carried > 0 {
            if carried == buffer.count { buffer += [UInt8](repeating: 0, count: buffer.count) }  // a line longer than the buffer
            let n = at < range.upperBound ? try buffer.withUnsafeMutableBytes { b in
                try readAt(fd, b.baseAddress! + carried, at, min(b.count - carried, range.upperBound - at), path: path)
            } : 0
            at += n
            let filled = carried + n
            let atEnd = at >= range.upperBound
            // Whole lines only, unless the part's end has come.
            let usable = atEnd ? filled : (buffer[0..<filled].lastIndex(of: 0x0A).map { $0 + 1 } ?? 0)
            if usable > 0 {
                try buffer.withUnsafeBytes { b in
                    var reader = CSVRecordReader(UnsafeRawBufferPointer(rebasing: b[0..<usable]), delimiter: delimiter, file: path, firstLine: line)
                    while try reader.nextRecord() { try body(&reader) }
                    line = reader.currentLine
                }
            }
            carried = filled - usable
            if carried > 0 && usable > 0 { buffer.withUnsafeMutableBytes { b in _ = memmove(b.baseAddress!, b.baseAddress! + usable, carried) } }
            if atEnd && usable == filled { break }
        }
    }

    static func readAt(_ fd: Int32, _ buffer: inout [UInt8], _ offset: Int, _ count: Int, path: String) throws -> Int {
        try buffer.withUnsafeMutableBytes { try readAt(fd, $0.baseAddress!, offset, count, path: path) }
    }

    /// Reads exactly `count` bytes at `offset` (a file that shrinks under the reader is an error).
    static func readAt(_ fd: Int32, _ into: UnsafeMutableRawPointer, _ offset: Int, _ count: Int, path: String) throws -> Int {
        var done = 0
        while done < count {
            let n = pread(fd, into + done, count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw DataError.unreadable(file: path, reason: n == 0 ? "the file ended early (changed while read?)" : String(cString: strerror(errno))) }
            done += n
        }
        return done
    }
}
