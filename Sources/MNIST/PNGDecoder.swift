/// A small PNG decoder: what `mlp predict` and picture folders need and nothing more.
///
/// Supported: bit depths 8 and 16 (16 keeps the high byte), 1/2/4-bit grayscale, colour types gray, gray+alpha,
/// RGB, RGBA and palette, non-interlaced. Alpha is composited over black (MNIST's background); `GrayscaleImage`
/// turns colour to gray with the Rec. 601 luma weights. The deflate stream goes through zlib. Hand-written because
/// no PNG package is available here and libpng would add a shared library to the static binary.
enum PNGDecoder {
    /// The image as 8-bit RGBA (alpha 255 where the file has none), and whether the file stores colour (RGB, RGBA or a
    /// palette) rather than gray.
    static func decodeRGBA(_ b: [UInt8], file: String) throws -> (width: Int, height: Int, rgba: [UInt8], isColour: Bool) {
        func fail(_ reason: String) -> DataError { .malformed(file: file, reason: "PNG: \(reason)") }
        func u32(_ o: Int) -> Int { Int(b[o]) << 24 | Int(b[o + 1]) << 16 | Int(b[o + 2]) << 8 | Int(b[o + 3]) }
        var offset = 8
        var width = 0, height = 0, depth = 0, colorType = 0
        var idat = [UInt8]()
        var palette = [UInt8]()
        var sawHeader = false
        while offset + 8 <= b.count {
            let length = u32(offset)
            let type = String(decoding: b[offset + 4..<offset + 8], as: UTF8.self)
            let start = offset + 8
            guard length >= 0, start + length + 4 <= b.count else { throw fail("chunk \(type) runs past the end of the file") }
            let data = b[start..<start + length]
            switch type {
            case "IHDR":
                guard length == 13 else { throw fail("IHDR of \(length) bytes (expected 13)") }
                width = u32(start); height = u32(start + 4)
                depth = Int(b[start + 8]); colorType = Int(b[start + 9])
                guard b[start + 12] == 0 else { throw fail("interlaced images are not supported; save it without interlacing") }
                sawHeader = true
            case "PLTE": palette = Array(data)
            case "IDAT": idat += data
            case "IEND": offset = b.count
            default: break
            }
            offset = start + length + 4
        }
        guard sawHeader else { throw fail("no IHDR chunk") }
        guard width > 0, height > 0, width * height <= 1 << 26 else { throw fail("size \(width)×\(height) is not usable") }
        let channels: Int
        switch colorType {
        case 0: channels = 1
        case 2: channels = 3
        case 3: channels = 1
        case 4: channels = 2
        case 6: channels = 4
        default: throw fail("unknown colour type \(colorType)")
        }
        guard [1, 2, 4, 8, 16].contains(depth), depth >= 8 || colorType == 0 || colorType == 3 else {
            throw fail("bit depth \(depth) with colour type \(colorType) is not supported")
        }
        let bitsPerPixel = channels * depth
        let stride = (width * bitsPerPixel + 7) / 8
        let bpp = max(1, bitsPerPixel / 8)
        let raw = try Gzip.inflate(idat, file: file, zlibHeader: true)
        guard raw.count >= height * (stride + 1) else {
            throw fail("image data holds \(raw.count) bytes, \(height * (stride + 1)) needed")
        }
        // Undo the per-row filters (None, Sub, Up, Average, Paeth).
        var rows = [UInt8](repeating: 0, count: height * stride)
        for y in 0..<height {
            let filter = raw[y * (stride + 1)]
            let src = y * (stride + 1) + 1
            for x in 0..<stride {
                let value = raw[src + x]
                let left = x >= bpp ? Int(rows[y * stride + x - bpp]) : 0
                let up = y > 0 ? Int(rows[(y - 1) * stride + x]) : 0
                let upLeft = (x >= bpp && y > 0) ? Int(rows[(y - 1) * stride + x - bpp]) : 0
                let predicted: Int
                switch filter {
                case 0: predicted = 0
                case 1: predicted = left
                case 2: predicted = up
                case 3: predicted = (left + up) / 2
                case 4:
                    let p = left + up - upLeft
                    let (pa, pb, pc) = (abs(p - left), abs(p - up), abs(p - upLeft))
                    predicted = pa <= pb && pa <= pc ? left : (pb <= pc ? up : upLeft)
                default: throw fail("row \(y) has unknown filter type \(filter)")
                }
                rows[y * stride + x] = UInt8(truncatingIfNeeded: Int(value) + predicted)
            }
        }
        func sample(_ y: Int, _ x: Int, _ channel: Int) -> Int {
            let row = y * stride
            if depth < 8 {
                let bit = x * depth
                let byte = Int(rows[row + bit / 8])
                let v = (byte >> (8 - depth - bit % 8)) & ((1 << depth) - 1)
                return colorType == 3 ? v : v * 255 / ((1 << depth) - 1)
            }
            let bytesPer = depth / 8
            return Int(rows[row + (x * channels + channel) * bytesPer])
        }
        var rgba = [UInt8](repeating: 0, count: 4 * width * height)
        for y in 0..<height {
            for x in 0..<width {
                var r = 0, g = 0, bl = 0, alpha = 255
                switch colorType {
                case 0: r = sample(y, x, 0); g = r; bl = r
                case 4: r = sample(y, x, 0); g = r; bl = r; alpha = sample(y, x, 1)
                case 2: r = sample(y, x, 0); g = sample(y, x, 1); bl = sample(y, x, 2)
                case 6: r = sample(y, x, 0); g = sample(y, x, 1); bl = sample(y, x, 2); alpha = sample(y, x, 3)
                default:
                    let i = sample(y, x, 0)
                    guard 3 * i + 2 < palette.count else { throw fail("palette index \(i) without a palette entry") }
                    r = Int(palette[3 * i]); g = Int(palette[3 * i + 1]); bl = Int(palette[3 * i + 2])
                }
                let p = 4 * (y * width + x)
                (rgba[p], rgba[p + 1], rgba[p + 2], rgba[p + 3]) = (UInt8(r), UInt8(g), UInt8(bl), UInt8(alpha))
            }
        }
        return (width, height, rgba, colorType == 2 || colorType == 3 || colorType == 6)
    }
}
