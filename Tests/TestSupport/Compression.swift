import SystemZlib
import Foundation

/// gzip-compresses `bytes` (for tests that need .gz files of their own).
public func gzipCompress(_ bytes: [UInt8]) -> [UInt8] { deflate(bytes, windowBits: 15 + 16) }

/// zlib-compresses `bytes` (PNG's IDAT stream).
public func zlibCompress(_ bytes: [UInt8]) -> [UInt8] { deflate(bytes, windowBits: 15) }

private func deflate(_ bytes: [UInt8], windowBits: Int32) -> [UInt8] {
    var stream = z_stream()
    precondition(deflateInit2_(&stream, 6, Z_DEFLATED, windowBits, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK)
    defer { deflateEnd(&stream) }
    var out = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(bytes.count))) + 64)
    var input = bytes
    let produced: Int = input.withUnsafeMutableBufferPointer { inp in
        out.withUnsafeMutableBufferPointer { o in
            stream.next_in = inp.baseAddress
            stream.avail_in = UInt32(inp.count)
            stream.next_out = o.baseAddress
            stream.avail_out = UInt32(o.count)
            precondition(SystemZlib.deflate(&stream, Z_FINISH) == Z_STREAM_END)
            return o.count - Int(stream.avail_out)
        }
    }
    return Array(out[0..<produced])
}

/// A PNG file of the given pixels, each row filtered with filter type `row % 5` (None, Sub, Up, Average, Paeth),
/// so that a decoder is exercised on all five.
/// - Parameters: channels: 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA); samples row-major, 8 bits each.
public func encodePNG(width: Int, height: Int, channels: Int, samples: [UInt8]) -> [UInt8] {
    precondition(samples.count == width * height * channels)
    let colorType: UInt8 = [1: 0, 2: 4, 3: 2, 4: 6][channels]!
    let stride = width * channels
    var filtered = [UInt8]()
    for y in 0..<height {
        let filter = UInt8(y % 5)
        filtered.append(filter)
        for x in 0..<stride {
            let v = Int(samples[y * stride + x])
            let left = x >= channels ? Int(samples[y * stride + x - channels]) : 0
            let up = y > 0 ? Int(samples[(y - 1) * stride + x]) : 0
            let upLeft = (x >= channels && y > 0) ? Int(samples[(y - 1) * stride + x - channels]) : 0
            let predicted: Int
            switch filter {
            case 0: predicted = 0
            case 1: predicted = left
            case 2: predicted = up
            case 3: predicted = (left + up) / 2
            default:
                let p = left + up - upLeft
                let (pa, pb, pc) = (abs(p - left), abs(p - up), abs(p - upLeft))
                predicted = pa <= pb && pa <= pc ? left : (pb <= pc ? up : upLeft)
            }
            filtered.append(UInt8(truncatingIfNeeded: v - predicted))
        }
    }
    func be32(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        let crc = body.withUnsafeBufferPointer { crc32(0, $0.baseAddress, UInt32($0.count)) }
        return be32(data.count) + body + be32(Int(crc))
    }
    var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    png += chunk("IHDR", be32(width) + be32(height) + [8, colorType, 0, 0, 0])
    png += chunk("IDAT", zlibCompress(filtered))
    png += chunk("IEND", [])
    return png
}
