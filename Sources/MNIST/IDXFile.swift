import Foundation

/// The element types the IDX format defines (the third byte of the magic number).
public enum IDXElementType: UInt8, CaseIterable, Sendable {
    case uint8 = 0x08
    case int8 = 0x09
    case int16 = 0x0B
    case int32 = 0x0C
    case float32 = 0x0D
    case float64 = 0x0E

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .uint8, .int8: return 1
        case .int16: return 2
        case .int32, .float32: return 4
        case .float64: return 8
        }
    }

    /// The type's name in messages ("unsigned byte", …).
    public var name: String {
        switch self {
        case .uint8: return "unsigned byte"
        case .int8: return "signed byte"
        case .int16: return "16-bit integer"
        case .int32: return "32-bit integer"
        case .float32: return "32-bit float"
        case .float64: return "64-bit float"
        }
    }
}

/// An array read from an IDX file: its shape and its elements, converted from the file's big-endian layout.
///
/// The IDX layout (LeCun's MNIST page): two zero bytes, an element-type byte, a byte with the number of
/// dimensions, one big-endian UInt32 size per dimension, then the elements in row-major order, big-endian.
public struct IDXArray: Sendable {
    /// The elements, in the file's type.
    public enum Storage: Sendable, Equatable {
        case uint8([UInt8])
        case int8([Int8])
        case int16([Int16])
        case int32([Int32])
        case float32([Float])
        case float64([Double])
    }

    /// The element type stored in the file.
    public var elementType: IDXElementType
    /// The dimensions, outermost first.
    public var shape: [Int]
    /// The elements, row-major, in their own type.
    public var storage: Storage

    /// Number of elements (the product of the shape).
    public var count: Int { shape.reduce(1, *) }

    /// The elements as `Double`, whatever their type (for tests and tools; training uses `uint8` directly).
    public var doubles: [Double] {
        switch storage {
        case .uint8(let v): return v.map(Double.init)
        case .int8(let v): return v.map(Double.init)
        case .int16(let v): return v.map(Double.init)
        case .int32(let v): return v.map(Double.init)
        case .float32(let v): return v.map(Double.init)
        case .float64(let v): return v
        }
    }

    /// An array; `storage` must hold the product of `shape` elements of `elementType`.
    public init(elementType: IDXElementType, shape: [Int], storage: Storage) {
        self.elementType = elementType
        self.shape = shape
        self.storage = storage
    }

    /// Reads an IDX file, raw or gzip-compressed (recognised by its first two bytes, whatever its name).
    /// - Throws: `DataError` naming `url`'s file name and what was wrong.
    public static func read(contentsOf url: URL) throws -> IDXArray {
        let name = url.lastPathComponent
        let raw: [UInt8]
        do {
            raw = [UInt8](try Data(contentsOf: url))
        } catch {
            throw DataError.unreadable(file: url.path, reason: (error as NSError).localizedDescription)
        }
        return try parse(raw, file: name)
    }

    /// Parses IDX bytes, inflating them first when they are gzip.
    public static func parse(_ bytes: [UInt8], file: String) throws -> IDXArray {
        let body = Gzip.isGzip(bytes) ? try Gzip.inflate(bytes, file: file) : bytes
        return try parseUncompressed(body, file: file)
    }

    static func parseUncompressed(_ b: [UInt8], file: String) throws -> IDXArray {
        guard b.count >= 4 else {
            throw DataError.malformed(file: file, reason: "\(b.count) bytes is too short for an IDX header (at least 4)")
        }
        guard b[0] == 0, b[1] == 0 else {
            let magic = b[0..<4].map { String(format: "%02x", $0) }.joined()
            throw DataError.malformed(
                file: file, reason: "wrong magic number 0x\(magic): an IDX file starts with two zero bytes")
        }
        guard let type = IDXElementType(rawValue: b[2]) else {
            throw DataError.malformed(
                file: file,
                reason: String(format: "unknown element type 0x%02x (expected 08, 09, 0b, 0c, 0d or 0e)", b[2]))
        }
        let dims = Int(b[3])
        guard dims >= 1 else { throw DataError.malformed(file: file, reason: "0 dimensions (expected at least 1)") }
        let headerSize = 4 + 4 * dims
        guard b.count >= headerSize else {
            throw DataError.malformed(
                file: file, reason: "header of \(dims) dimensions needs \(headerSize) bytes, file has \(b.count)")
        }
        var shape = [Int]()
        var count = 1
        for d in 0..<dims {
            let o = 4 + 4 * d
            let size = Int(b[o]) << 24 | Int(b[o + 1]) << 16 | Int(b[o + 2]) << 8 | Int(b[o + 3])
            shape.append(size)
            let (product, overflow) = count.multipliedReportingOverflow(by: size)
            guard !overflow, product <= b.count else {
                throw DataError.malformed(
                    file: file, reason: "truncated (or its dimensions are wrong): a \(shape.map(String.init).joined(separator: "×")) array needs more than the file's \(b.count.grouped) bytes")
            }
            count = product
        }
        let expected = headerSize + count * type.size
        guard b.count == expected else {
            let shapeText = shape.map(String.init).joined(separator: "×")
            let what = b.count < expected ? "truncated" : "too long"
            throw DataError.malformed(
                file: file,
                reason: "\(what): \(b.count.grouped) bytes, but a \(shapeText) array of \(type.name)s needs \(expected.grouped)")
        }
        let storage: Storage = b.withUnsafeBytes { raw in
            let p = raw.baseAddress! + headerSize
            switch type {
            case .uint8: return .uint8(Array(UnsafeBufferPointer(start: p.assumingMemoryBound(to: UInt8.self), count: count)))
            case .int8: return .int8((0..<count).map { Int8(bitPattern: p.load(fromByteOffset: $0, as: UInt8.self)) })
            case .int16: return .int16((0..<count).map { Int16(bigEndian: p.loadUnaligned(fromByteOffset: 2 * $0, as: Int16.self)) })
            case .int32: return .int32((0..<count).map { Int32(bigEndian: p.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) })
            case .float32:
                return .float32((0..<count).map {
                    Float(bitPattern: UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)))
                })
            case .float64:
                return .float64((0..<count).map {
                    Double(bitPattern: UInt64(bigEndian: p.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self)))
                })
            }
        }
        return IDXArray(elementType: type, shape: shape, storage: storage)
    }

    /// The IDX bytes (uncompressed) of this array: the inverse of `parse`, used by tests and tools that write data.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = [0, 0, elementType.rawValue, UInt8(shape.count)]
        for s in shape { out += [UInt8(s >> 24 & 0xFF), UInt8(s >> 16 & 0xFF), UInt8(s >> 8 & 0xFF), UInt8(s & 0xFF)] }
        func append<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.bigEndian) { out += $0 } }
        switch storage {
        case .uint8(let v): out += v
        case .int8(let v): v.forEach { out.append(UInt8(bitPattern: $0)) }
        case .int16(let v): v.forEach(append)
        case .int32(let v): v.forEach(append)
        case .float32(let v): v.forEach { append($0.bitPattern) }
        case .float64(let v): v.forEach { append($0.bitPattern) }
        }
        return out
    }
}
