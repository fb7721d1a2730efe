import SystemZlib
import Foundation

/// Decompression through the system zlib.
public enum Gzip {
    /// Whether `bytes` start with the gzip magic number (1f 8b).
    public static func isGzip(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B
    }

    /// Inflates a gzip stream (all of its members) or, with `zlibHeader`, a zlib stream.
    ///
    /// - Parameters:
    ///   - bytes: the compressed data.
    ///   - file: named in errors.
    ///   - zlibHeader: `true` for a zlib stream (PNG's IDAT), `false` for gzip.
    ///   - sizeHint: expected output size, to allocate once (gzip's trailer gives it for files under 4 GiB).
    /// - Throws: `DataError.badCompression` when the stream is corrupt or ends early.
    public static func inflate(_ bytes: [UInt8], file: String, zlibHeader: Bool = false) throws -> [UInt8] {
        var output = [UInt8]()
        var capacity = max(bytes.count * 4, 1 << 16)
        if !zlibHeader, bytes.count >= 18 {
            // ISIZE: the uncompressed length modulo 2^32 of the last member.
            let n = bytes.count
            let isize = Int(bytes[n - 4]) | Int(bytes[n - 3]) << 8 | Int(bytes[n - 2]) << 16 | Int(bytes[n - 1]) << 24
            // Trusted only up to deflate's largest ratio (1032:1): a corrupt or hostile trailer must not make
            // this reserve gigabytes (found by fuzzing: a 40-byte input asked for 4 GiB).
            if isize > 0 { capacity = min(isize + 1, bytes.count * 1032 + (1 << 16)) }
        }
        output.reserveCapacity(capacity)
        var stream = z_stream()
        let windowBits: Int32 = zlibHeader ? 15 : 15 + 16
        var status = inflateInit2_(&stream, windowBits, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else { throw DataError.badCompression(file: file, reason: "zlib init failed (\(status))") }
        defer { inflateEnd(&stream) }

        let chunk = 1 << 20
        var buffer = [UInt8](repeating: 0, count: chunk)
        try bytes.withUnsafeBufferPointer { input in
            var consumed = 0
            while true {
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress! + consumed)
                stream.avail_in = UInt32(input.count - consumed)
                repeat {
                    let produced: Int = buffer.withUnsafeMutableBufferPointer { out in
                        stream.next_out = out.baseAddress
                        stream.avail_out = UInt32(chunk)
                        status = SystemZlib.inflate(&stream, Z_NO_FLUSH)
                        return chunk - Int(stream.avail_out)
                    }
                    if status != Z_OK && status != Z_STREAM_END && status != Z_BUF_ERROR {
                        let message = stream.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                        throw DataError.badCompression(file: file, reason: message)
                    }
                    output.append(contentsOf: buffer[0..<produced])
                    if status == Z_BUF_ERROR && stream.avail_in == 0 { break }
                } while status != Z_STREAM_END && stream.avail_out == 0
                consumed = input.count - Int(stream.avail_in)
                if status == Z_STREAM_END {
                    // A gzip file may hold several members one after another: go on with the next one.
                    if !zlibHeader, consumed + 2 <= input.count, input[consumed] == 0x1F, input[consumed + 1] == 0x8B {
                        inflateReset(&stream)
                        continue
                    }
                    return
                }
                if stream.avail_in == 0 {
                    throw DataError.badCompression(
                        file: file, reason: "compressed data ends early (truncated file?) after \(output.count.grouped) bytes")
                }
            }
        }
        return output
    }
}
