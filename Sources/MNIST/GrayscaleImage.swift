import Foundation

/// An 8-bit grayscale image read from a PGM or PNG file, for `mlp predict`.
public struct GrayscaleImage: Sendable, Equatable {
    /// Pixels per row.
    public var width: Int
    /// Rows.
    public var height: Int
    /// `height × width` bytes, row-major, 0 black to 255 white.
    public var pixels: [UInt8]

    /// An image; `pixels.count` must be `width × height`.
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height)
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// Reads a PNG or PGM file (recognised by content, not name).
    /// - Throws: `DataError` naming the file and what is wrong or unsupported.
    public static func read(contentsOf url: URL) throws -> GrayscaleImage {
        let bytes: [UInt8]
        do { bytes = [UInt8](try Data(contentsOf: url)) } catch {
            throw DataError.unreadable(file: url.path, reason: (error as NSError).localizedDescription)
        }
        return try decode(bytes, file: url.lastPathComponent)
    }

    /// Decodes PNG or PGM bytes.
    public static func decode(_ bytes: [UInt8], file: String) throws -> GrayscaleImage {
        if isPNG(bytes) {
            // Colour to gray with the Rec. 601 luma weights, then alpha composited over black.
            let png = try PNGDecoder.decodeRGBA(bytes, file: file)
            let gray = (0..<png.width * png.height).map { i -> UInt8 in
                let (r, g, b, a) = (Int(png.rgba[4 * i]), Int(png.rgba[4 * i + 1]), Int(png.rgba[4 * i + 2]), Int(png.rgba[4 * i + 3]))
                return UInt8((299 * r + 587 * g + 114 * b + 500) / 1000 * a / 255)
            }
            return GrayscaleImage(width: png.width, height: png.height, pixels: gray)
        }
        if bytes.count >= 2, bytes[0] == UInt8(ascii: "P"), bytes[1] == UInt8(ascii: "5") || bytes[1] == UInt8(ascii: "2") {
            return try decodePGM(bytes, file: file)
        }
        throw DataError.malformed(file: file, reason: "not a PNG or PGM image (expected a PNG signature or 'P5'/'P2')")
    }

    static func isPNG(_ bytes: [UInt8]) -> Bool { bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) }

    /// The image with black and white swapped (for dark digits on a light background).
    public func inverted() -> GrayscaleImage {
        GrayscaleImage(width: width, height: height, pixels: pixels.map { 255 - $0 })
    }

    /// Netpbm graymap: `P5` (binary) or `P2` (ASCII), header fields separated by whitespace, `#` comments.
    static func decodePGM(_ b: [UInt8], file: String) throws -> GrayscaleImage {
        var i = 2
        func token() throws -> Int {
            while i < b.count {
                if b[i] == UInt8(ascii: "#") { while i < b.count && b[i] != 0x0A { i += 1 } }
                else if b[i] == 0x20 || (0x09...0x0D).contains(b[i]) { i += 1 }
                else { break }
            }
            let start = i
            while i < b.count, (0x30...0x39).contains(b[i]) { i += 1 }
            guard i > start, let v = Int(String(decoding: b[start..<i], as: UTF8.self)) else {
                throw DataError.malformed(file: file, reason: "PGM header: expected a number at byte \(start)")
            }
            return v
        }
        let ascii = b[1] == UInt8(ascii: "2")
        let width = try token(), height = try token(), maxValue = try token()
        guard width > 0, height > 0, width * height <= 1 << 26 else {
            throw DataError.malformed(file: file, reason: "PGM size \(width)×\(height) is not usable")
        }
        guard (1...65535).contains(maxValue) else {
            throw DataError.malformed(file: file, reason: "PGM maximum value \(maxValue) (expected 1 to 65535)")
        }
        var values = [Int]()
        values.reserveCapacity(width * height)
        if ascii {
            for _ in 0..<width * height { values.append(try token()) }
        } else {
            i += 1  // the single whitespace byte after the maximum
            let size = maxValue > 255 ? 2 : 1
            guard b.count - i >= width * height * size else {
                throw DataError.malformed(file: file, reason: "PGM data truncated: \(b.count - i) bytes for \(width)×\(height) pixels of \(size) byte(s)")
            }
            for p in 0..<width * height {
                values.append(size == 1 ? Int(b[i + p]) : Int(b[i + 2 * p]) << 8 | Int(b[i + 2 * p + 1]))
            }
        }
        let pixels = values.map { UInt8(clamping: ($0 * 255 + maxValue / 2) / maxValue) }
        return GrayscaleImage(width: width, height: height, pixels: pixels)
    }
}
