import MLPCore

/// The device memory that work queued on one stream reads and writes, kept until another stream waits for that work:
/// work on the other stream must wait first if it writes anything the queued work reads, or reads or writes anything it
/// writes. The cuda backend keeps one for its second stream and its update stream together, so that a product on the
/// main stream waits for them only when they share memory (the first layer's weight gradient, for one, then runs beside
/// the later layers' instead of after them), and so that a layer's optimizer update goes beside the main stream only
/// when those streams still use its memory.
///
/// It is consulted on every step, replays included, so nothing here allocates once its two lists have reached their
/// size (`removeAll` keeps their storage; one range per call, no variadic or literal arrays).
struct StreamAccesses {
    private(set) var reads: [Range<UInt>] = []
    private(set) var writes: [Range<UInt>] = []

    /// The bytes of a row-major matrix of `rows` rows `stride` elements apart (a bound: the last row may be shorter
    /// than the stride).
    static func extent<T>(_ matrix: DevicePointer<T>, rows: Int, stride: Int) -> Range<UInt> {
        matrix.address ..< matrix.address + UInt(max(0, rows) * max(0, stride) * MemoryLayout<T>.stride)
    }

    mutating func read(_ range: Range<UInt>) { reads.append(range) }
    mutating func write(_ range: Range<UInt>) { writes.append(range) }

    /// Forgets everything (the other stream has waited for the work).
    mutating func removeAll() {
        reads.removeAll(keepingCapacity: true)
        writes.removeAll(keepingCapacity: true)
    }

    /// Whether the queued work writes part of `range`: work that reads it must wait.
    func writes(into range: Range<UInt>) -> Bool { writes.contains { $0.overlaps(range) } }

    /// Whether the queued work reads or writes part of `range`: work that writes it must wait.
    func uses(_ range: Range<UInt>) -> Bool { writes(into: range) || reads.contains { $0.overlaps(range) } }
}
