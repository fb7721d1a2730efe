import MLPCore

/// The device memory that work queued on one stream reads and writes, kept until another stream waits for that work:
/// work on the other stream must wait first if it writes anything the queued work reads, or reads or writes
/// anything it writes. The cuda backend keeps one for its second stream, so that a product on the main stream waits
/// for the second stream only when they share memory (the first layer's weight gradient, for one, then runs beside
/// the later layers' instead of after them).
struct StreamAccesses {
    private(set) var reads: [Range<UInt>] = []
    private(set) var writes: [Range<UInt>] = []

    /// The bytes of a row-major float matrix of `rows` rows `stride` floats apart (a bound: the last row may be
    /// shorter than the stride).
    static func extent(_ matrix: DevicePointer<Float>, rows: Int, stride: Int) -> Range<UInt> {
        matrix.address ..< matrix.address + UInt(max(0, rows) * max(0, stride) * 4)
    }

    mutating func read(_ ranges: Range<UInt>...) { reads += ranges }
    mutating func write(_ ranges: Range<UInt>...) { writes += ranges }

    /// Forgets everything (the other stream has waited for the work).
    mutating func removeAll() {
        reads.removeAll(keepingCapacity: true)
        writes.removeAll(keepingCapacity: true)
    }

    /// Whether work that reads `reading` and writes `writing` must wait for the queued work.
    func conflict(reading: [Range<UInt>], writing: [Range<UInt>]) -> Bool {
        reading.contains { r in writes.contains { $0.overlaps(r) } }
            || writing.contains { w in writes.contains { $0.overlaps(w) } || reads.contains { $0.overlaps(w) } }
    }
}
