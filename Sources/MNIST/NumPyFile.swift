import Foundation
import ZIPFoundation

/// The element types of `.npy` files this package reads (the `descr` of the header without its byte order).
public enum NumPyElementType: String, CaseIterable, Sendable {
    case bool = "b1"
    case uint8 = "u1"
    case int8 = "i1"
    case int16 = "i2"
    case int32 = "i4"
    case int64 = "i8"
    case float32 = "f4"
    case float64 = "f8"

    /// Bytes per element.
    public var size: Int { Int(rawValue.dropFirst())! }
}

/// An array read from NumPy's `.npy` format: its element type, its shape and its elements, in C (row-major) order.
///
/// The format (NumPy's `numpy/lib/format.py` documents it): the magic string `\x93NUMPY`, a major and a minor
/// version byte, the header's length (2 bytes little-endian in version 1, 4 in versions 2 and 3), the header (a
/// Python dict literal, ASCII or UTF-8, padded with spaces and ended by a newline) with the keys `descr` (the
/// element type, such as `'<f4'`), `fortran_order` and `shape` (a tuple), then the elements. Files of either byte
/// order are read; arrays in Fortran order, of objects, strings or structured types are refused with an error that
/// says what to do about it.
public struct NumPyArray: Sendable, Equatable {
    /// The elements, in the file's type.
    public enum Storage: Sendable, Equatable {
        case bool([Bool])
        case uint8([UInt8])
        case int8([Int8])
        case int16([Int16])
        case int32([Int32])
        case int64([Int64])
        case float32([Float])
        case float64([Double])
    }

    /// The element type stored in the file.
    public var elementType: NumPyElementType
    /// The dimensions, outermost first (empty for a scalar).
    public var shape: [Int]
    /// The elements, row-major, in their own type.
    public var storage: Storage

    /// Number of elements (the product of the shape; 1 for a scalar).
    public var count: Int { shape.reduce(1, *) }

    /// The elements as `Double`, whatever their type (`true` is 1).
    public var doubles: [Double] {
        switch storage {
        case .bool(let v): return v.map { $0 ? 1 : 0 }
        case .uint8(let v): return v.map(Double.init)
        case .int8(let v): return v.map(Double.init)
        case .int16(let v): return v.map(Double.init)
        case .int32(let v): return v.map(Double.init)
        case .int64(let v): return v.map(Double.init)
        case .float32(let v): return v.map(Double.init)
        case .float64(let v): return v
        }
    }

    /// The elements as `Float` (rounded to nearest), whatever their type, converted in one pass.
    public var floats: [Float] {
        switch storage {
        case .bool(let v): return v.map { $0 ? 1 : 0 }
        case .uint8(let v): return v.map(Float.init)
        case .int8(let v): return v.map(Float.init)
        case .int16(let v): return v.map(Float.init)
        case .int32(let v): return v.map(Float.init)
        case .int64(let v): return v.map(Float.init)
        case .float32(let v): return v
        case .float64(let v): return v.map(Float.init)
        }
    }

    /// An array; `storage` must hold the product of `shape` elements of `elementType`.
    public init(shape: [Int], storage: Storage) {
        self.shape = shape
        self.storage = storage
        switch storage {
        case .bool: elementType = .bool
        case .uint8: elementType = .uint8
        case .int8: elementType = .int8
        case .int16: elementType = .int16
        case .int32: elementType = .int32
        case .int64: elementType = .int64
        case .float32: elementType = .float32
        case .float64: elementType = .float64
        }
    }

    /// Reads a `.npy` file.
    /// - Throws: `DataError` naming `url`'s path and what was wrong.
    public static func read(contentsOf url: URL) throws -> NumPyArray {
        // Mapped, not copied: the array is the only copy of the data that stays.
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw DataError.unreadable(file: url.path, reason: (error as NSError).localizedDescription)
        }
        return try data.withUnsafeBytes { try parse($0, file: url.path) }
    }

    /// The magic string every `.npy` file starts with.
    static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    /// Parses the bytes of a `.npy` file; `file` names it in errors.
    public static func parse(_ bytes: [UInt8], file: String) throws -> NumPyArray {
        try bytes.withUnsafeBytes { try parse($0, file: file) }
    }

    /// Parses the bytes of a `.npy` file in memory (mapped, say); `file` names it in errors.
    public static func parse(_ b: UnsafeRawBufferPointer, file: String) throws -> NumPyArray {
        func malformed(_ reason: String) -> DataError { .malformed(file: file, reason: reason) }
        guard b.count >= 10, b[0..<6].elementsEqual(magic) else {
            throw malformed("not a NumPy .npy file: it does not start with \\x93NUMPY (save arrays with numpy.save)")
        }
        let major = b[6]
        let lengthBytes: Int
        switch major {
        case 1: lengthBytes = 2
        case 2, 3: lengthBytes = 4
        default: throw malformed("format version \(major).\(b[7]) (versions 1, 2 and 3 are read)")
        }
        guard b.count >= 8 + lengthBytes else { throw malformed("truncated in its header") }
        var headerLength = 0
        for i in 0..<lengthBytes { headerLength |= Int(b[8 + i]) << (8 * i) }
        let start = 8 + lengthBytes
        guard headerLength <= b.count - start else {
            throw malformed("truncated in its header: \(headerLength) bytes of header announced, \(b.count - start) left")
        }
        guard let text = String(bytes: b[start..<start + headerLength], encoding: .utf8) else {
            throw malformed("its header is not text")
        }
        let header = try NumPyHeader(text, file: file)
        let body = start + headerLength
        var count = 1
        for size in header.shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: size)
            guard !overflow, product <= b.count else {
                throw malformed("truncated (or its shape is wrong): a \(header.shapeText) array needs more than the file's \(b.count.grouped) bytes")
            }
            count = product
        }
        let type = header.elementType
        let expected = count * type.size
        guard b.count - body == expected else {
            throw malformed("\(b.count - body < expected ? "truncated" : "too long"): \((b.count - body).grouped) bytes of data, "
                            + "but a \(header.shapeText) array of \(header.descr) needs \(expected.grouped)")
        }
        let little = header.littleEndian
        let p = b.baseAddress! + body
        // Each element loaded in the file's byte order, straight into the result (no array between).
        func elements<T: FixedWidthInteger, E>(_ t: T.Type, _ make: (T) -> E) -> [E] {
            [E](unsafeUninitializedCapacity: count) { buffer, initialized in
                for i in 0..<count {
                    let v = p.loadUnaligned(fromByteOffset: MemoryLayout<T>.size * i, as: T.self)
                    (buffer.baseAddress! + i).initialize(to: make(little ? T(littleEndian: v) : T(bigEndian: v)))
                }
                initialized = count
            }
        }
        let storage: Storage
        switch type {
        case .bool: storage = .bool((0..<count).map { p.load(fromByteOffset: $0, as: UInt8.self) != 0 })
        case .uint8: storage = .uint8(Array(UnsafeRawBufferPointer(start: p, count: count)))
        case .int8: storage = .int8(elements(Int8.self) { $0 })
        case .int16: storage = .int16(elements(Int16.self) { $0 })
        case .int32: storage = .int32(elements(Int32.self) { $0 })
        case .int64: storage = .int64(elements(Int64.self) { $0 })
        case .float32: storage = .float32(elements(UInt32.self, Float.init(bitPattern:)))
        case .float64: storage = .float64(elements(UInt64.self, Double.init(bitPattern:)))
        }
        return NumPyArray(shape: header.shape, storage: storage)
    }

    /// The `.npy` bytes (little-endian, C order) of this array: what `numpy.save` writes for it (format version 1.0,
    /// or 2.0 for a header longer than version 1.0's 65,535 bytes).
    public func encoded() -> [UInt8] {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        let order = elementType.size == 1 ? "|" : "<"
        var header = "{'descr': '\(order)\(elementType.rawValue)', 'fortran_order': False, 'shape': \(shapeText), }"
        let lengthBytes = header.utf8.count + 64 > 65_535 ? 4 : 2
        // Padded with spaces so that the data starts on a multiple of 64 bytes, and ended by a newline.
        while (8 + lengthBytes + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        let length = header.utf8.count
        var out = Self.magic + [lengthBytes == 2 ? 1 : 2, 0] + (0..<lengthBytes).map { UInt8(truncatingIfNeeded: length >> (8 * $0)) }
        out += Array(header.utf8)
        func append<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        switch storage {
        case .bool(let v): v.forEach { out.append($0 ? 1 : 0) }
        case .uint8(let v): out += v
        case .int8(let v): v.forEach { out.append(UInt8(bitPattern: $0)) }
        case .int16(let v): v.forEach(append)
        case .int32(let v): v.forEach(append)
        case .int64(let v): v.forEach(append)
        case .float32(let v): v.forEach { append($0.bitPattern) }
        case .float64(let v): v.forEach { append($0.bitPattern) }
        }
        return out
    }
}

/// The header of a `.npy` file: a Python dict literal with `descr`, `fortran_order` and `shape`, read by a small
/// parser of the literals NumPy writes there (strings, `True`/`False`, tuples of integers; a list in `descr` is a
/// structured type, which is refused).
struct NumPyHeader {
    var descr: String
    var elementType: NumPyElementType
    var littleEndian: Bool
    var shape: [Int]

    var shapeText: String { shape.isEmpty ? "scalar" : shape.map(String.init).joined(separator: "×") }

    init(_ text: String, file: String) throws {
        func malformed(_ reason: String) -> DataError { .malformed(file: file, reason: reason) }
        var parser = PythonLiteralParser(Array(text.unicodeScalars))
        guard case .dict(let entries)? = try? parser.value() else {
            throw malformed("its header is not the dict NumPy writes: \(text.trimmingCharacters(in: .whitespacesAndNewlines).prefix(120))")
        }
        guard case .string(let descr)? = entries["descr"] else {
            if case .list? = entries["descr"] {
                throw malformed("a structured array (named fields): save each field as an array of its own")
            }
            throw malformed("its header has no element type ('descr')")
        }
        guard case .bool(let fortran)? = entries["fortran_order"] else { throw malformed("its header has no 'fortran_order'") }
        guard case .tuple(let dimensions)? = entries["shape"] else { throw malformed("its header has no 'shape' tuple") }
        if fortran {
            throw malformed("an array in Fortran order: save numpy.ascontiguousarray(a) instead")
        }
        let order = descr.first.map(String.init) ?? ""
        let code = ["<", ">", "|", "="].contains(order) ? String(descr.dropFirst()) : descr
        guard let type = NumPyElementType(rawValue: code) else {
            let kind = code.first.map { String($0) } ?? ""
            let why = kind == "O" ? "Python objects" : kind == "U" || kind == "S" ? "strings" : "an element type of '\(descr)'"
            throw malformed("an array of \(why): the readable types are bool, uint8, int8, int16, int32, int64, float32 and float64")
        }
        self.descr = descr
        elementType = type
        // '=' is the writer's native order: little-endian on every machine NumPy runs on here.
        littleEndian = order != ">"
        shape = dimensions
    }
}

/// Python literals as NumPy writes them in a `.npy` header.
enum PythonLiteral: Equatable {
    case string(String), bool(Bool), integer(Int), tuple([Int]), list, dict([String: PythonLiteral])
}

/// A recursive-descent parser of `PythonLiteral`s.
struct PythonLiteralParser {
    private let s: [Unicode.Scalar]
    private var i = 0

    init(_ scalars: [Unicode.Scalar]) { s = scalars }

    struct Failure: Error {}

    private mutating func skipSpace() { while i < s.count, s[i].properties.isWhitespace { i += 1 } }

    private mutating func expect(_ c: Unicode.Scalar) throws {
        skipSpace()
        guard i < s.count, s[i] == c else { throw Failure() }
        i += 1
    }

    /// Whether the next scalar (after spaces) is `c`; consumes it if so.
    private mutating func take(_ c: Unicode.Scalar) -> Bool {
        skipSpace()
        guard i < s.count, s[i] == c else { return false }
        i += 1
        return true
    }

    mutating func value() throws -> PythonLiteral {
        skipSpace()
        guard i < s.count else { throw Failure() }
        switch s[i] {
        case "{":
            i += 1
            var entries = [String: PythonLiteral]()
            while !take("}") {
                guard case .string(let key) = try value() else { throw Failure() }
                try expect(":")
                entries[key] = try value()
                if !take(",") { try expect("}"); break }
            }
            return .dict(entries)
        case "(":
            i += 1
            var items = [Int]()
            while !take(")") {
                guard case .integer(let n) = try value(), n >= 0 else { throw Failure() }
                items.append(n)
                if !take(",") { try expect(")"); break }
            }
            return .tuple(items)
        case "[":
            // A structured type's field list: skipped to its matching bracket.
            var depth = 0
            repeat {
                guard i < s.count else { throw Failure() }
                if s[i] == "[" { depth += 1 } else if s[i] == "]" { depth -= 1 }
                i += 1
            } while depth > 0
            return .list
        case "'", "\"":
            let quote = s[i]
            i += 1
            var text = ""
            while i < s.count, s[i] != quote {
                text.unicodeScalars.append(s[i])
                i += 1
            }
            guard i < s.count else { throw Failure() }
            i += 1
            return .string(text)
        default:
            var word = ""
            while i < s.count, s[i].properties.isAlphabetic || ("0"..."9").contains(s[i]) || s[i] == "L" || s[i] == "-" {
                word.unicodeScalars.append(s[i])
                i += 1
            }
            switch word {
            case "True": return .bool(true)
            case "False": return .bool(false)
            default:
                // Python 2's NumPy wrote longs as `3L`.
                guard let n = Int(word.hasSuffix("L") ? String(word.dropLast()) : word) else { throw Failure() }
                return .integer(n)
            }
        }
    }
}

/// The arrays of an `.npz` archive (`numpy.savez` and `numpy.savez_compressed`: a zip of `.npy` files, stored or
/// deflated), by name without the `.npy` extension.
public enum NumPyArchive {
    /// Reads every array of the archive at `url`.
    /// - Throws: `DataError` naming the archive (and the member, for a member that is not a readable `.npy`).
    public static func read(contentsOf url: URL) throws -> [String: NumPyArray] {
        let archive: Archive
        do {
            archive = try Archive(url: url, accessMode: .read)
        } catch {
            if !FileManager.default.fileExists(atPath: url.path) {
                throw DataError.unreadable(file: url.path, reason: "no such file")
            }
            throw DataError.malformed(file: url.path, reason: "not an .npz archive (a zip of .npy files, as numpy.savez writes): \(error)")
        }
        var arrays = [String: NumPyArray]()
        for entry in archive where entry.type == .file && entry.path.hasSuffix(".npy") {
            var bytes = [UInt8]()
            bytes.reserveCapacity(entry.uncompressedSize > Int.max ? 0 : Int(entry.uncompressedSize))
            do {
                _ = try archive.extract(entry) { bytes += $0 }
            } catch {
                throw DataError.malformed(file: "\(url.path) (\(entry.path))", reason: "cannot be unpacked: \(error)")
            }
            arrays[String(entry.path.dropLast(4))] = try NumPyArray.parse(bytes, file: "\(url.path) (\(entry.path))")
        }
        return arrays
    }
}
