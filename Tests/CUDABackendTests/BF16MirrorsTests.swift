@testable import CUDABackend
import MNIST
import Testing

/// The bookkeeping behind the cuda backend's bf16 products (`BF16Mirrors`): where a matrix's bf16 copy is, and when a
/// copy may be read without converting again. A stale copy would train on old values without any error, so each
/// way a range stops being current is checked here (no GPU needed).
@Suite struct BF16MirrorsTests {
    /// Allocations at scattered addresses, of sizes that are not multiples of anything in particular.
    static func allocations(_ g: inout SeededGenerator) -> (BF16Mirrors, [(base: UInt, bytes: Int)]) {
        var mirrors = BF16Mirrors()
        var made: [(base: UInt, bytes: Int)] = []
        var next: UInt = 0x7f00_0000_0000
        for _ in 0..<9 {
            let bytes = 4 * Int.random(in: 1...5_000, using: &g)
            made.append((next, bytes))
            next += UInt(bytes) + UInt.random(in: 1...64, using: &g) * 512
        }
        for (base, bytes) in made.shuffled(using: &g) { mirrors.allocated(base: base, bytes: bytes) }
        return (mirrors, made)
    }

    @Test func anElementsCopyIsAtHalfItsOffsetInItsAllocationsMirror() {
        var g = SeededGenerator(seed: 31)
        var (mirrors, made) = Self.allocations(&g)
        for (i, (base, bytes)) in made.enumerated() {
            let index = mirrors.allocation(containing: base)!
            #expect(mirrors.allocations[index].base == base && mirrors.allocations[index].bytes == bytes)
            #expect(mirrors.mirror(of: base) == nil)  // none until a product needs one
            #expect(mirrors.mirrorBytes(ofAllocation: index) >= bytes / 2)
            let mirror: UInt = 0x1000_0000 * UInt(i + 1)
            mirrors.setMirror(mirror, ofAllocation: index)
        }
        for (i, (base, bytes)) in made.enumerated() {
            for _ in 0..<20 {
                let element = Int.random(in: 0..<(bytes / 4), using: &g)
                let expected: UInt = 0x1000_0000 * UInt(i + 1) + UInt(2 * element)
                #expect(mirrors.mirror(of: base + UInt(4 * element)) == expected)
            }
            // Just past the end, and between allocations: not ours.
            #expect(mirrors.allocation(containing: base + UInt(bytes)) == nil)
        }
        let lowest = made.map { $0.base }.min()!
        #expect(mirrors.allocation(containing: lowest - 4) == nil)
    }

    @Test func aWriteOverlappingACurrentRangeMakesItStale() {
        var mirrors = BF16Mirrors()
        mirrors.allocated(base: 0x10000, bytes: 40_000)
        mirrors.markCurrent(0x10000 + 400, 0x10000 + 4_400, kept: false)
        #expect(mirrors.isCurrent(0x10000 + 400, 0x10000 + 4_400))
        #expect(mirrors.isCurrent(0x10000 + 1_204, 0x10000 + 2_000))  // a part of it
        #expect(!mirrors.isCurrent(0x10000 + 396, 0x10000 + 4_400))   // one element more than was converted
        // A write ending where the range starts leaves it; one that reaches one element into it does not.
        mirrors.invalidate(0x10000, 0x10000 + 400)
        #expect(mirrors.isCurrent(0x10000 + 400, 0x10000 + 4_400))
        mirrors.invalidate(0x10000 + 4_396, 0x10000 + 9_000)
        #expect(!mirrors.isCurrent(0x10000 + 400, 0x10000 + 4_400))
        #expect(mirrors.current.isEmpty)
    }

    @Test func aStepForgetsItsConversionsButNotTheUpdatedWeights() {
        var mirrors = BF16Mirrors()
        mirrors.allocated(base: 0x20000, bytes: 1_000_004)   // parameters
        mirrors.allocated(base: 0x200000, bytes: 77_000)     // activations
        let weights = (UInt(0x20000), UInt(0x20000 + 1_000_004))
        for _ in 0..<3 {  // the same ranges every step: the list does not grow
            mirrors.markCurrent(weights.0, weights.1, kept: true)
            mirrors.markCurrent(0x200000, 0x200000 + 77_000, kept: false)
        }
        #expect(mirrors.current.count == 2)
        mirrors.forgetStep()
        #expect(mirrors.isCurrent(0x20000 + 4_000, 0x20000 + 8_000))
        #expect(!mirrors.isCurrent(0x200000, 0x200000 + 4))
        // Freeing the parameters forgets them (an allocation at the same address later is new memory).
        #expect(mirrors.freed(base: 0x20000) == 0)
        #expect(!mirrors.isCurrent(0x20000 + 4_000, 0x20000 + 8_000))
        #expect(mirrors.allocation(containing: 0x20000) == nil)
    }
}
