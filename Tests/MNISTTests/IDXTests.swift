import Foundation
import MNIST
import Testing
import TestSupport

@Suite struct IDXTests {
    /// A random array of each element type the format defines, written and read back, raw and gzip.
    @Test(arguments: IDXElementType.allCases, [false, true])
    func roundTripEveryElementType(type: IDXElementType, compressed: Bool) throws {
        var g = SeededGenerator(seed: UInt64(type.rawValue))
        let shape = [3, 5, 7]
        let n = 105
        let storage: IDXArray.Storage
        switch type {
        case .uint8: storage = .uint8((0..<n).map { _ in UInt8(g.uniform(below: 256)) })
        case .int8: storage = .int8((0..<n).map { _ in Int8(g.uniform(below: 256) - 128) })
        case .int16: storage = .int16((0..<n).map { _ in Int16(g.uniform(below: 65536) - 32768) })
        case .int32: storage = .int32((0..<n).map { _ in Int32(truncatingIfNeeded: g.next()) })
        case .float32: storage = .float32((0..<n).map { _ in Float(g.gaussian() * 1e3) })
        case .float64: storage = .float64((0..<n).map { _ in g.gaussian() * 1e-3 })
        }
        let array = IDXArray(elementType: type, shape: shape, storage: storage)
        let raw = array.encoded()
        #expect(raw.count == 4 + 4 * 3 + n * type.size)
        let bytes = compressed ? gzipCompress(raw) : raw
        let parsed = try IDXArray.parse(bytes, file: "x.idx")
        #expect(parsed.elementType == type)
        #expect(parsed.shape == shape)
        #expect(parsed.storage == storage)
    }

    @Test func bigEndianLayoutIsRead() throws {
        // 2 int16 values 0x0102 and -2, one dimension of size 2.
        let bytes: [UInt8] = [0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xFF, 0xFE]
        let parsed = try IDXArray.parse(bytes, file: "t")
        #expect(parsed.storage == .int16([0x0102, -2]))
    }

    @Test func truncatedFileIsRejected() throws {
        let raw = IDXArray(elementType: .uint8, shape: [10, 4], storage: .uint8(Array(repeating: 7, count: 40))).encoded()
        let error = #expect(throws: DataError.self) { try IDXArray.parse(Array(raw.dropLast(3)), file: "cut-idx3-ubyte") }
        #expect(error?.description == "cut-idx3-ubyte: truncated: 49 bytes, but a 10×4 array of unsigned bytes needs 52")
    }

    @Test func truncatedGzipIsRejected() throws {
        let raw = IDXArray(elementType: .uint8, shape: [1000], storage: .uint8((0..<1000).map { UInt8($0 % 251) })).encoded()
        let gz = gzipCompress(raw)
        let error = #expect(throws: DataError.self) { try IDXArray.parse(Array(gz.prefix(gz.count / 2)), file: "cut.gz") }
        #expect(error?.description.hasPrefix("cut.gz: not valid gzip data") == true)
    }

    /// Found by fuzzing: a gzip header, then 0xFF bytes whose "trailer" claims 4 GiB uncompressed. The reader
    /// reserved that much before finding the stream corrupt; now it trusts the trailer only up to deflate's ratio.
    @Test func aLyingGzipTrailerIsRejectedWithoutReservingIt() throws {
        let bytes: [UInt8] = [0x1F, 0x8B, 0x00, 0x08] + Array(repeating: 0xFF, count: 53)
        let error = #expect(throws: DataError.self) { try IDXArray.parse(bytes, file: "fuzz.gz") }
        #expect(error?.description.hasPrefix("fuzz.gz: not valid gzip data") == true)
    }

    @Test func wrongMagicIsRejected() throws {
        let error = #expect(throws: DataError.self) { try IDXArray.parse([0x50, 0x4B, 3, 4, 0, 0], file: "a.zip") }
        #expect(error?.description == "a.zip: wrong magic number 0x504b0304: an IDX file starts with two zero bytes")
        let typeError = #expect(throws: DataError.self) { try IDXArray.parse([0, 0, 0x07, 1, 0, 0, 0, 0], file: "t") }
        #expect(typeError?.description.contains("unknown element type 0x07") == true)
    }

    @Test func hugeDimensionsAreRejectedWithoutAllocating() throws {
        let error = #expect(throws: DataError.self) { try IDXArray.parse([0, 0, 8, 2, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], file: "h") }
        #expect(error?.description == "h: truncated (or its dimensions are wrong): a 4294967295 array needs more than the file's 12 bytes")
    }
}

@Suite struct DatasetTests {
    /// Writes an MNIST-style directory with `count` images and the given labels.
    func writeDataset(to dir: URL, trainLabels: [UInt8], trainImages: Int, gzip: Bool = true, dotted: Bool = false) throws {
        func write(_ array: IDXArray, _ file: DatasetFile) throws {
            var name = dotted ? file.acceptedNames[3] : file.canonicalName
            var bytes = array.encoded()
            if gzip { name += ".gz"; bytes = gzipCompress(bytes) }
            try Data(bytes).write(to: dir.appendingPathComponent(name))
        }
        var g = SeededGenerator(seed: 3)
        let images = { (n: Int) in IDXArray(elementType: .uint8, shape: [n, 4, 3], storage: .uint8((0..<n * 12).map { _ in UInt8(g.uniform(below: 256)) })) }
        try write(images(trainImages), .trainImages)
        try write(IDXArray(elementType: .uint8, shape: [trainLabels.count], storage: .uint8(trainLabels)), .trainLabels)
        try write(images(5), .testImages)
        try write(IDXArray(elementType: .uint8, shape: [5], storage: .uint8([0, 1, 2, 3, 9])), .testLabels)
    }

    @Test(arguments: [(true, false), (false, false), (true, true), (false, true)])
    func loadsEverySpelling(gzip: Bool, dotted: Bool) throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try writeDataset(to: dir, trainLabels: [1, 2, 3, 4, 5, 6, 7], trainImages: 7, gzip: gzip, dotted: dotted)
        let data = try Dataset.load(directory: dir)
        #expect(data.train.count == 7)
        #expect(data.train.rows == 4 && data.train.columns == 3)
        #expect(data.train.labels == [1, 2, 3, 4, 5, 6, 7])
        #expect(data.test.labelHistogram == [1, 1, 1, 1, 0, 0, 0, 0, 0, 1])
    }

    @Test func countMismatchNamesTheLabelsFile() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try writeDataset(to: dir, trainLabels: Array(repeating: 1, count: 9_999), trainImages: 10_000)
        let error = #expect(throws: DataError.self) { try Dataset.load(directory: dir) }
        #expect(error?.description == "train-labels-idx1-ubyte.gz: 9,999 labels but 10,000 images")
    }

    @Test func labelOutOfRangeIsRejected() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try writeDataset(to: dir, trainLabels: [0, 1, 10, 3], trainImages: 4)
        let error = #expect(throws: DataError.self) { try Dataset.load(directory: dir) }
        #expect(error?.description == "train-labels-idx1-ubyte.gz: label 10 at index 2 is out of range (expected 0 to 9)")
    }

    @Test func missingFileIsNamed() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try writeDataset(to: dir, trainLabels: [1, 2], trainImages: 2)
        try FileManager.default.removeItem(at: dir.appendingPathComponent("t10k-images-idx3-ubyte.gz"))
        let error = #expect(throws: DataError.self) { try Dataset.load(directory: dir) }
        #expect(error?.description.contains("missing t10k-images-idx3-ubyte.gz or t10k-images-idx3-ubyte") == true)
    }

    @Test func imagesWithTheWrongElementTypeAreRejected() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try writeDataset(to: dir, trainLabels: [1, 2], trainImages: 2)
        let floats = IDXArray(elementType: .float32, shape: [2, 4, 3], storage: .float32(Array(repeating: 0.5, count: 24)))
        try Data(gzipCompress(floats.encoded())).write(to: dir.appendingPathComponent("train-images-idx3-ubyte.gz"))
        let error = #expect(throws: DataError.self) { try Dataset.load(directory: dir) }
        #expect(error?.description.contains("expected 3-dimensional unsigned bytes") == true)
    }

    @Test func bundledMNISTMatchesThePublishedSet() throws {
        let data = try Dataset.load(directory: bundledMNIST)
        #expect(data.train.count == 60_000 && data.test.count == 10_000)
        #expect(data.train.rows == 28 && data.train.columns == 28)
        #expect(data.train.labelHistogram == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
        #expect(data.verifyChecksums(as: .mnist).values.allSatisfy { $0 })
        let stats = data.train.pixelStatistics
        #expect(abs(stats.mean - 0.1307) < 1e-4 && abs(stats.standardDeviation - 0.3081) < 1e-4)
    }

    @Test func locatorFindsTheBundledCopyAndListsWhereItLooked() throws {
        let found = try DatasetLocator.locate(.mnist, environment: ["HOME": "/nonexistent"])
        #expect(Dataset.isComplete(found))
        // MLP_DATA_DIR names a folder that exists but holds no Fashion-MNIST: searched first, then passed over.
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("mlp-locator-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: empty) }
        let environment = ["HOME": "/nonexistent", "MLP_DATA_DIR": empty.path]
        let debian = URL(fileURLWithPath: "/usr/share/datasets/fashion-mnist")
        if Dataset.isComplete(debian) {
            // Debian's dataset-fashion-mnist package is installed: the locator finds it there.
            #expect(try DatasetLocator.locate(.fashionMNIST, environment: environment).path == debian.path)
        } else {
            let error = #expect(throws: DataError.self) { try DatasetLocator.locate(.fashionMNIST, environment: environment) }
            #expect(error?.description.contains(empty.appendingPathComponent("fashion-mnist").path) == true)
        }
        #expect(DatasetLocator.candidates(for: .fashionMNIST, environment: environment).first?.path == empty.appendingPathComponent("fashion-mnist").path)
        // A typo in MLP_DATA_DIR is an error that names it, not a silent fall-through to the other places.
        let typo = #expect(throws: DataError.self) { try DatasetLocator.locate(.mnist, environment: ["MLP_DATA_DIR": empty.path + "-typo"]) }
        #expect(typo?.description.contains("MLP_DATA_DIR=\(empty.path)-typo") == true)
    }
}

/// Fashion-MNIST where Debian's `dataset-fashion-mnist` package put it (`.ci/run` installs the package).
@Suite struct FashionMNISTTests {
    static let debianDirectory = URL(fileURLWithPath: "/usr/share/datasets/fashion-mnist")

    @Test(.enabled(if: Dataset.isComplete(debianDirectory), "Debian's dataset-fashion-mnist package is not installed"))
    func debianCopyLoadsAndMatchesItsChecksums() throws {
        let found = try DatasetLocator.locate(.fashionMNIST, environment: ["HOME": "/nonexistent"])
        #expect(found.path == Self.debianDirectory.path)
        let data = try Dataset.load(directory: found)
        #expect(data.train.count == 60_000 && data.test.count == 10_000)
        #expect(data.train.labelHistogram == [Int](repeating: 6_000, count: 10))
        #expect(data.verifyChecksums(as: .fashionMNIST).values.allSatisfy { $0 })
        #expect(!data.verifyChecksums(as: .mnist).values.contains(true))
    }
}
