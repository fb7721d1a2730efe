/// The protocol-buffer wire format, written field by field: the few messages of an ONNX model (`ONNXModel`) need
/// varints, 64-bit integers, 32-bit floats, strings, bytes and nested messages, nothing else.
///
/// Hand-written rather than swift-protobuf with code generated from onnx.proto: the export writes seven message
/// types and reads none, which is these 60 lines against a dependency and some 5,000 lines of generated code. The
/// tests check every model it writes with ONNX's own checker and run it in ONNX Runtime.
struct ProtobufWriter {
    private(set) var bytes: [UInt8] = []

    /// Wire types.
    private enum WireType: UInt64 { case varint = 0, fixed64 = 1, lengthDelimited = 2, fixed32 = 5 }

    private mutating func key(_ field: Int, _ type: WireType) { varint(UInt64(field) << 3 | type.rawValue) }

    private mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// An `int64` or `int32` field (negative values as ten-byte varints, as protobuf encodes them).
    mutating func int(_ field: Int, _ value: Int) {
        key(field, .varint)
        varint(UInt64(bitPattern: Int64(value)))
    }

    /// A `float` field.
    mutating func float(_ field: Int, _ value: Float) {
        key(field, .fixed32)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes += $0 }
    }

    /// A `string` field (UTF-8).
    mutating func string(_ field: Int, _ value: String) { data(field, Array(value.utf8)) }

    /// A `bytes` field.
    mutating func data(_ field: Int, _ value: [UInt8]) {
        key(field, .lengthDelimited)
        varint(UInt64(value.count))
        bytes += value
    }

    /// A nested message field, written by `body`.
    mutating func message(_ field: Int, _ body: (inout ProtobufWriter) -> Void) {
        var nested = ProtobufWriter()
        body(&nested)
        data(field, nested.bytes)
    }
}
