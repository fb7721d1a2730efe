/// How pixel bytes become network inputs: `x = byte × scale + shift`, one affine map for every pixel.
///
/// The default maps 0…255 to [0, 1]. `standardized(mean:standardDeviation:)` also subtracts the training set's
/// mean and divides by its standard deviation (statistics on the [0, 1] scale). Backends apply the map while
/// gathering a batch, so the dataset stays in bytes (a quarter of the memory, and what a GPU keeps resident).
public struct Normalization: Sendable, Equatable, Codable {
    /// The factor applied to each byte.
    public var scale: Float
    /// The offset added after scaling.
    public var shift: Float

    /// The map `x = byte × scale + shift`.
    public init(scale: Float, shift: Float) {
        self.scale = scale
        self.shift = shift
    }

    /// Pixels to [0, 1].
    public static let unit = Normalization(scale: 1 / 255, shift: 0)

    /// Pixels to [0, 1], then standardised: `(p/255 − mean) / standardDeviation`.
    public static func standardized(mean: Double, standardDeviation: Double) -> Normalization {
        Normalization(scale: Float(1 / (255 * standardDeviation)), shift: Float(-mean / standardDeviation))
    }

    /// Applies the map to one byte.
    @inlinable public func apply(_ byte: UInt8) -> Float { Float(byte) * scale + shift }

    /// Applies the map to one stored float (multiplied, then added: the same two roundings on every backend).
    @inlinable public func apply(value: Float) -> Float { value * scale + shift }

    /// The identity, for values that are inputs as stored (tables, arrays, already standardised).
    public static let identity = Normalization(scale: 1, shift: 0)
}

extension LabeledImages {
    /// All images as a `count × featureCount` row-major Float matrix.
    public func floatImages(_ normalization: Normalization = .unit) -> [Float] {
        pixels.map(normalization.apply)
    }

    /// All labels one-hot: a `count × classCount` row-major matrix of zeros with a one at each label.
    public func oneHotLabels() -> [Float] {
        oneHot(labels.map(Int.init), classCount: classCount)
    }
}

/// `labels` one-hot over `classCount` classes, row-major `labels.count × classCount`.
/// - Precondition: every label is in `0..<classCount`.
public func oneHot(_ labels: [Int], classCount: Int) -> [Float] {
    var out = [Float](repeating: 0, count: labels.count * classCount)
    for (i, l) in labels.enumerated() {
        precondition((0..<classCount).contains(l), "label \(l) is outside 0..<\(classCount)")
        out[i * classCount + l] = 1
    }
    return out
}
