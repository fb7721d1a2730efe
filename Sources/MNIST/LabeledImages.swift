/// A set of grayscale images with one class label each, as stored in IDX files: pixels are bytes, row-major,
/// image after image.
///
/// This is the form in which data reaches a backend: a GPU backend uploads these bytes once and normalises
/// batches on the device, a CPU backend gathers and normalises each batch as it goes.
public struct LabeledImages: Sendable {
    /// `count × rows × columns` pixel bytes, 0 (background) to 255.
    public var pixels: [UInt8]
    /// `count` labels, each in `0..<classCount`.
    public var labels: [UInt8]
    /// Pixel rows per image.
    public var rows: Int
    /// Pixel columns per image.
    public var columns: Int
    /// The number of classes.
    public var classCount: Int

    /// Number of images.
    public var count: Int { labels.count }
    /// Pixels per image (784 for MNIST).
    public var featureCount: Int { rows * columns }

    /// Creates a set, checking that sizes agree and every label is below `classCount`.
    /// - Throws: `DataError.inconsistent` naming `labelsFile` (or `imagesFile`) when they do not.
    public init(
        pixels: [UInt8], labels: [UInt8], rows: Int, columns: Int, classCount: Int = 10,
        imagesFile: String = "images", labelsFile: String = "labels"
    ) throws {
        guard rows > 0, columns > 0 else {
            throw DataError.inconsistent(file: imagesFile, reason: "images of \(rows)×\(columns) pixels (expected at least 1×1)")
        }
        let images = pixels.count / (rows * columns)
        guard images * rows * columns == pixels.count else {
            throw DataError.inconsistent(
                file: imagesFile, reason: "\(pixels.count.grouped) pixel bytes are not a whole number of \(rows)×\(columns) images")
        }
        guard labels.count == images else {
            throw DataError.inconsistent(
                file: labelsFile, reason: "\(labels.count.grouped) labels but \(images.grouped) images")
        }
        if let bad = labels.firstIndex(where: { Int($0) >= classCount }) {
            throw DataError.inconsistent(
                file: labelsFile,
                reason: "label \(labels[bad]) at index \(bad.grouped) is out of range (expected 0 to \(classCount - 1))")
        }
        self.pixels = pixels
        self.labels = labels
        self.rows = rows
        self.columns = columns
        self.classCount = classCount
    }

    /// The subset at `indices`, in that order (a validation split, a smaller run).
    public func subset(_ indices: some Collection<Int>) -> LabeledImages {
        let f = featureCount
        var p = [UInt8]()
        p.reserveCapacity(indices.count * f)
        var l = [UInt8]()
        l.reserveCapacity(indices.count)
        for i in indices {
            p.append(contentsOf: pixels[i * f..<(i + 1) * f])
            l.append(labels[i])
        }
        // Sizes and labels come from a set that was already checked.
        return try! LabeledImages(pixels: p, labels: l, rows: rows, columns: columns, classCount: classCount)
    }

    /// How many images carry each label.
    public var labelHistogram: [Int] {
        var h = [Int](repeating: 0, count: classCount)
        for l in labels { h[Int(l)] += 1 }
        return h
    }

    /// Mean and standard deviation of all pixels, on the [0, 1] scale (computed in Double).
    public var pixelStatistics: (mean: Double, standardDeviation: Double) { MNIST.pixelStatistics(pixels) }
}

/// Mean and standard deviation of pixel bytes, on the [0, 1] scale (computed in Double, from a histogram).
public func pixelStatistics(_ pixels: [UInt8]) -> (mean: Double, standardDeviation: Double) {
    var histogram = [Int](repeating: 0, count: 256)
    for p in pixels { histogram[Int(p)] += 1 }
    let n = Double(pixels.count)
    var mean = 0.0
    for (v, c) in histogram.enumerated() { mean += Double(v) / 255 * Double(c) }
    mean /= n
    var variance = 0.0
    for (v, c) in histogram.enumerated() {
        let d = Double(v) / 255 - mean
        variance += d * d * Double(c)
    }
    return (mean, (variance / n).squareRoot())
}
