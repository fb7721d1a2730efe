import MNIST
import Testing
import TestSupport

@Suite struct ImageTests {
    @Test(arguments: [1, 2, 3, 4])
    func pngOfEveryChannelLayoutDecodesToGray(channels: Int) throws {
        var g = SeededGenerator(seed: UInt64(channels))
        let (w, h) = (13, 11)
        var samples = (0..<w * h * channels).map { _ in UInt8(g.uniform(below: 256)) }
        if channels == 2 || channels == 4 { for i in 0..<w * h { samples[i * channels + channels - 1] = 255 } }  // opaque
        let image = try GrayscaleImage.decode(encodePNG(width: w, height: h, channels: channels, samples: samples), file: "x.png")
        #expect(image.width == w && image.height == h)
        for i in 0..<w * h {
            let expected: Int
            if channels >= 3 {
                let (r, gr, b) = (Int(samples[i * channels]), Int(samples[i * channels + 1]), Int(samples[i * channels + 2]))
                expected = (299 * r + 587 * gr + 114 * b + 500) / 1000
            } else {
                expected = Int(samples[i * channels])
            }
            #expect(Int(image.pixels[i]) == expected)
        }
    }

    @Test func pgmBinaryAndASCII() throws {
        let binary = Array("P5\n# a comment\n3 2\n255\n".utf8) + [0, 10, 20, 30, 40, 255]
        let image = try GrayscaleImage.decode(binary, file: "b.pgm")
        #expect(image.width == 3 && image.height == 2 && image.pixels == [0, 10, 20, 30, 40, 255])
        let ascii = Array("P2 2 2 15\n0 15\n5 10\n".utf8)
        #expect(try GrayscaleImage.decode(ascii, file: "a.pgm").pixels == [0, 255, 85, 170])
    }

    @Test func badImagesAreRejectedWithTheFileName() {
        let e1 = #expect(throws: DataError.self) { try GrayscaleImage.decode(Array("GIF89a".utf8), file: "x.gif") }
        #expect(e1?.description.hasPrefix("x.gif: not a PNG or PGM image") == true)
        let truncated = Array("P5 28 28 255\n".utf8) + [UInt8](repeating: 1, count: 100)
        let e2 = #expect(throws: DataError.self) { try GrayscaleImage.decode(truncated, file: "t.pgm") }
        #expect(e2?.description.contains("PGM data truncated") == true)
    }
}
