import Foundation

/// Reading and writing the safetensors format (Hugging Face): an 8-byte little-endian header length `N`, `N` bytes
/// of JSON mapping each tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets relative to the
/// end of the header) plus an optional `"__metadata__"` object of strings, then the tensors' bytes, little-endian,
/// row-major, packed without gaps in the order of their offsets.
///
/// The writer pads the header with spaces so the data starts at a multiple of 8 bytes, as the reference
/// implementation does. The reader checks everything it relies on and rejects the rest with a `SafeTensorsError`.
public enum SafeTensors {
    /// The dtypes the format defines, with their sizes in bytes.
    public static let dtypeSizes: [String: Int] = [
        "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
        "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
    ]

    /// Largest header accepted when reading (the reference implementation's limit).
    public static let maximumHeaderSize = 100_000_000

    /// A float32 tensor to write.
    public struct Tensor: Sendable, Equatable {
        /// The tensor's name in the file.
        public var name: String
        /// Its shape, outermost first.
        public var shape: [Int]
        /// Its values, row-major (F32 in the file).
        public var values: [Float]

        /// A tensor; `values.count` must be the product of `shape`.
        public init(name: String, shape: [Int], values: [Float]) {
            precondition(shape.reduce(1, *) == values.count, "\(name): shape \(shape) does not hold \(values.count) values")
            self.name = name
            self.shape = shape
            self.values = values
        }
    }

    /// The bytes of a safetensors file holding `tensors` (in this order) and `metadata`.
    public static func encode(_ tensors: [Tensor], metadata: [String: String] = [:]) -> [UInt8] {
        var header = "{"
        var entries = [String]()
        if !metadata.isEmpty {
            let items = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            entries.append("\"__metadata__\":{\(items.joined(separator: ","))}")
        }
        var offset = 0
        for t in tensors {
            let bytes = t.values.count * 4
            entries.append(
                "\(jsonString(t.name)):{\"dtype\":\"F32\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}")
            offset += bytes
        }
        header += entries.joined(separator: ",") + "}"
        var headerBytes = Array(header.utf8)
        while (8 + headerBytes.count) % 8 != 0 { headerBytes.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + headerBytes.count + offset)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { out += $0 }
        out += headerBytes
        for t in tensors {
            t.values.withUnsafeBufferPointer { buffer in
                for v in buffer { withUnsafeBytes(of: v.bitPattern.littleEndian) { out += $0 } }
            }
        }
        return out
    }

    /// Writes `tensors` to `url` atomically: into a temporary file in the same directory, flushed to disk, then
    /// renamed over `url`. A failure (a full disk, a missing directory) leaves any previous file as it was.
    /// - Throws: `SafeTensorsError.unwritable` naming the file and the system's reason.
    public static func write(_ tensors: [Tensor], metadata: [String: String] = [:], to url: URL) throws {
        try writeAtomically(encode(tensors, metadata: metadata), to: url)
    }

    /// A file read back: its metadata and tensors.
    public struct File: Sendable {
        /// One tensor's entry in the header.
        public struct Entry: Sendable, Equatable {
            /// Its element type as the format names it (`F32`, `F16`, `I64`, …).
            public var dtype: String
            /// Its shape, outermost first.
            public var shape: [Int]
            /// Its bytes in the data section.
            public var range: Range<Int>
        }

        /// The header's `__metadata__` strings.
        public var metadata: [String: String]
        /// The tensors, by name.
        public var entries: [String: Entry]
        /// The data section (everything after the header).
        let data: [UInt8]
        let name: String

        /// The float32 tensor `name`, with its shape.
        /// - Throws: `SafeTensorsError` when it is missing or not F32.
        public func floats(_ tensor: String) throws -> (shape: [Int], values: [Float]) {
            guard let e = entries[tensor] else { throw SafeTensorsError.missingTensor(file: name, tensor: tensor) }
            guard e.dtype == "F32" else {
                throw SafeTensorsError.malformed(file: name, reason: "tensor '\(tensor)' has dtype \(e.dtype), expected F32")
            }
            let count = e.range.count / 4
            var values = [Float](repeating: 0, count: count)
            data.withUnsafeBytes { raw in
                for i in 0..<count {
                    values[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: e.range.lowerBound + 4 * i, as: UInt32.self)))
                }
            }
            return (e.shape, values)
        }
    }

    /// Reads and checks a safetensors file.
    public static func read(contentsOf url: URL) throws -> File {
        let bytes: [UInt8]
        do { bytes = [UInt8](try Data(contentsOf: url)) } catch {
            throw SafeTensorsError.unreadable(file: url.path, reason: (error as NSError).localizedDescription)
        }
        return try decode(bytes, file: url.path)
    }

    /// What a file is, by its first bytes, when it is a common kind that is not safetensors.
    static func otherKind(_ bytes: [UInt8]) -> String? {
        let signatures: [([UInt8], String)] = [
            ([0x89, 0x50, 0x4E, 0x47], "a PNG image"), ([0xFF, 0xD8, 0xFF], "a JPEG image"), ([0x1F, 0x8B], "a gzip file"),
            ([0x50, 0x4B, 0x03, 0x04], "a zip archive (an .npz?)"), ([0x93] + Array("NUMPY".utf8), "a NumPy .npy file"),
            (Array("%PDF".utf8), "a PDF document"),
        ]
        return signatures.first { bytes.starts(with: $0.0) }?.1
    }

    /// Parses safetensors bytes; `file` is named in errors.
    public static func decode(_ bytes: [UInt8], file: String) throws -> File {
        func fail(_ reason: String) -> SafeTensorsError { .malformed(file: file, reason: reason) }
        // Where the header cannot be read, a file of another kind handed over by mistake is named for what it is.
        func failHeader(_ reason: String) -> SafeTensorsError {
            otherKind(bytes).map { fail("it is \($0) (a checkpoint is the safetensors file `mlp train --output` writes)") } ?? fail(reason)
        }
        guard bytes.count >= 8 else { throw fail("\(bytes.count) bytes is too short for a safetensors file (at least 8: the header length)") }
        let n = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard n <= UInt64(maximumHeaderSize) else {
            throw failHeader("header length \(n) is over the limit of \(maximumHeaderSize) bytes")
        }
        guard 8 + Int(n) <= bytes.count else {
            throw failHeader("header length \(n) runs past the end of the file (\(bytes.count) bytes)")
        }
        let headerData = Data(bytes[8..<8 + Int(n)])
        guard let object = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any] else {
            throw failHeader("the header is not a JSON object")
        }
        var metadata = [String: String]()
        var entries = [String: File.Entry]()
        let dataSize = bytes.count - 8 - Int(n)
        for (key, value) in object {
            if key == "__metadata__" {
                guard let dict = value as? [String: Any] else { throw fail("__metadata__ is not an object") }
                for (k, v) in dict {
                    guard let s = v as? String else { throw fail("metadata '\(k)' is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let info = value as? [String: Any],
                  let dtype = info["dtype"] as? String,
                  let shapeValues = info["shape"] as? [Any],
                  let offsetValues = info["data_offsets"] as? [Any], offsetValues.count == 2
            else { throw fail("tensor '\(key)' needs dtype, shape and two data_offsets") }
            guard let size = dtypeSizes[dtype] else {
                throw fail("tensor '\(key)' has unknown dtype '\(dtype)' (expected one of \(dtypeSizes.keys.sorted().joined(separator: ", ")))")
            }
            let shape = try shapeValues.map { v -> Int in
                guard let i = v as? Int, i >= 0 else { throw fail("tensor '\(key)' has a shape entry that is not a size: \(v)") }
                return i
            }
            let offsets = try offsetValues.map { v -> Int in
                guard let i = v as? Int, i >= 0 else { throw fail("tensor '\(key)' has an offset that is not a byte position: \(v)") }
                return i
            }
            guard offsets[0] <= offsets[1], offsets[1] <= dataSize else {
                throw fail("tensor '\(key)' has data_offsets [\(offsets[0]), \(offsets[1])] outside the \(dataSize) data bytes")
            }
            var elements = 1
            for s in shape {
                let (p, overflow) = elements.multipliedReportingOverflow(by: s)
                guard !overflow else { throw fail("tensor '\(key)' has shape \(shape), too large") }
                elements = p
            }
            guard elements.multipliedReportingOverflow(by: size).partialValue == offsets[1] - offsets[0] else {
                throw fail("tensor '\(key)' of shape \(shape) and dtype \(dtype) needs \(elements * size) bytes, its offsets span \(offsets[1] - offsets[0])")
            }
            entries[key] = File.Entry(dtype: dtype, shape: shape, range: offsets[0]..<offsets[1])
        }
        // The tensors must tile the data section exactly: no overlap, no gap, nothing left over.
        var position = 0
        for (name, e) in entries.sorted(by: { ($0.value.range.lowerBound, $0.value.range.upperBound) < ($1.value.range.lowerBound, $1.value.range.upperBound) }) {
            guard e.range.lowerBound == position else {
                throw fail(e.range.lowerBound < position
                    ? "tensor '\(name)' overlaps the tensor before it (starts at \(e.range.lowerBound), previous ends at \(position))"
                    : "gap in the data before tensor '\(name)' (bytes \(position)..<\(e.range.lowerBound) belong to no tensor)")
            }
            position = e.range.upperBound
        }
        guard position == dataSize else {
            throw fail("\(dataSize - position) bytes after the last tensor belong to no tensor")
        }
        return File(metadata: metadata, entries: entries, data: Array(bytes[(8 + Int(n))...]), name: file)
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }
}

/// A safetensors file that cannot be read or written; names the file and what was wrong.
public enum SafeTensorsError: Error, CustomStringConvertible, Equatable, Sendable {
    case unreadable(file: String, reason: String)
    case unwritable(file: String, reason: String)
    case malformed(file: String, reason: String)
    case missingTensor(file: String, tensor: String)

    /// The message the tool prints: the file, then what is wrong.
    public var description: String {
        switch self {
        case let .unreadable(file, reason): return "\(file): cannot read: \(reason)"
        case let .unwritable(file, reason): return "\(file): cannot write: \(reason)"
        case let .malformed(file, reason): return "\(file): not a valid safetensors file: \(reason)"
        case let .missingTensor(file, tensor): return "\(file): no tensor named '\(tensor)'"
        }
    }
}

/// Writes `bytes` to `url` through a temporary file in the same directory, `fsync`, and `rename`, so that readers
/// see the old file or the new one, never a part.
public func writeAtomically(_ bytes: [UInt8], to url: URL) throws {
    let directory = url.deletingLastPathComponent()
    let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp")
    func failure(_ what: String) -> SafeTensorsError {
        let reason = String(cString: strerror(errno))
        unlink(temporary.path)
        return .unwritable(file: url.path, reason: "\(what): \(reason)")
    }
    let fd = open(temporary.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw failure("cannot create \(temporary.lastPathComponent)") }
    var written = 0
    let ok: Bool = bytes.withUnsafeBytes { raw in
        while written < raw.count {
            let r = Foundation.write(fd, raw.baseAddress! + written, raw.count - written)
            if r < 0 { if errno == EINTR { continue }; return false }
            written += r
        }
        return true
    }
    guard ok else { close(fd); throw failure("write failed after \(written) of \(bytes.count) bytes") }
    guard fsync(fd) == 0 else { close(fd); throw failure("fsync failed") }
    close(fd)
    guard rename(temporary.path, url.path) == 0 else { throw failure("rename into place failed") }
}
