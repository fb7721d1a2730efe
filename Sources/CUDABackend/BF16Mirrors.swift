/// The bookkeeping of `--precision bf16`'s operand copies: each fp32 allocation of the backend may have a mirror, an
/// allocation of half its bytes where element `i` of the fp32 buffer is kept rounded to bf16 at element `i` of the
/// mirror (so a matrix inside a buffer has its bf16 copy at half its byte offset, with the same strides), and the
/// ranges of fp32 memory whose mirror is current.
///
/// A range becomes current when a conversion writes its mirror or when a kernel that writes it writes its mirror too
/// (the optimizer's update); it stops being current when anything else writes it (`invalidate`), and conversions made
/// for one step are forgotten at the next (`forgetStep`) so that a write the backend did not see cannot leave a stale
/// mirror in use for long. Host-side only: a recorded step replays the conversions its recording made.
struct BF16Mirrors {
    struct Allocation {
        var base: UInt
        var bytes: Int
        /// Its mirror's address, 0 until a product first needs one.
        var mirror: UInt = 0
    }
    /// The backend's allocations, by base address.
    private(set) var allocations: [Allocation] = []
    /// Ranges `[start, end)` of fp32 bytes whose mirror holds their values rounded; `kept` ranges (written with their
    /// mirror by the update or by an upload) outlive `forgetStep`.
    private(set) var current: [(start: UInt, end: UInt, kept: Bool)] = []

    mutating func allocated(base: UInt, bytes: Int) {
        let index = allocations.firstIndex { $0.base > base } ?? allocations.endIndex
        allocations.insert(Allocation(base: base, bytes: bytes), at: index)
    }

    /// Forgets the allocation at `base` and its current ranges; returns its mirror's address (to be freed), or 0.
    mutating func freed(base: UInt) -> UInt {
        guard let index = allocations.firstIndex(where: { $0.base == base }) else { return 0 }
        let gone = allocations.remove(at: index)
        invalidate(gone.base, gone.base + UInt(gone.bytes))
        return gone.mirror
    }

    /// The index of the allocation holding `address`, or nil.
    func allocation(containing address: UInt) -> Int? {
        var low = 0, high = allocations.count
        while low < high {
            let middle = (low + high) / 2
            if allocations[middle].base <= address { low = middle + 1 } else { high = middle }
        }
        guard low > 0, address < allocations[low - 1].base + UInt(allocations[low - 1].bytes) else { return nil }
        return low - 1
    }

    /// The bytes a mirror of allocation `index` takes.
    func mirrorBytes(ofAllocation index: Int) -> Int { (allocations[index].bytes / 4 + 1) * 2 }

    mutating func setMirror(_ mirror: UInt, ofAllocation index: Int) { allocations[index].mirror = mirror }

    /// The bf16 copy's address of the fp32 element at `address`, or nil when its allocation has no mirror.
    func mirror(of address: UInt) -> UInt? {
        guard let index = allocation(containing: address), allocations[index].mirror != 0 else { return nil }
        return allocations[index].mirror + (address - allocations[index].base) / 2
    }

    /// Whether the mirror of `[start, end)` is current.
    func isCurrent(_ start: UInt, _ end: UInt) -> Bool {
        current.contains { $0.start <= start && end <= $0.end }
    }

    mutating func markCurrent(_ start: UInt, _ end: UInt, kept: Bool) {
        if let same = current.firstIndex(where: { $0.start == start && $0.end == end }) {
            current[same].kept = current[same].kept || kept
        } else {
            current.append((start, end, kept))
        }
    }

    /// `[start, end)` was written without its mirror: no range that overlaps it is current any more.
    mutating func invalidate(_ start: UInt, _ end: UInt) {
        current.removeAll { $0.start < end && start < $0.end }
    }

    /// Forgets the ranges converted for a step (those not `kept`).
    mutating func forgetStep() {
        current.removeAll { !$0.kept }
    }
}
