@testable import CUDABackend
import MLPCore
import Testing

/// When main-stream work must wait for the side stream: only when one writes memory the other reads or writes.
/// (No GPU needed: addresses are numbers here.)
@Suite struct StreamAccessesTests {
    static func matrix(_ address: UInt) -> DevicePointer<Float> { DevicePointer(address: address) }

    @Test func extentsCoverRowsTimesStrideFloats() {
        let e = StreamAccesses.extent(Self.matrix(4096), rows: 17, stride: 127)
        #expect(e == 4096 ..< 4096 + 17 * 127 * 4)
        #expect(StreamAccesses.extent(Self.matrix(4096), rows: 0, stride: 127).isEmpty)
    }

    @Test func onlySharedMemoryWithAWriteConflicts() {
        // The side stream: a weight gradient reading X [128, 784] and dZ [128, 512], writing dW [784, 512].
        let x = StreamAccesses.extent(Self.matrix(1 << 20), rows: 128, stride: 784)
        let dz = StreamAccesses.extent(Self.matrix(2 << 20), rows: 128, stride: 512)
        let dw = StreamAccesses.extent(Self.matrix(3 << 20), rows: 784, stride: 512)
        var side = StreamAccesses()
        side.read(x)
        side.read(dz)
        side.write(dw)

        // Another weight gradient with its own inputs and output: no conflict (they may run at once), and reading
        // what the side reads is fine.
        let other = StreamAccesses.extent(Self.matrix(5 << 20), rows: 128, stride: 300)
        let otherOut = StreamAccesses.extent(Self.matrix(6 << 20), rows: 300, stride: 10)
        #expect(!side.writes(into: other) && !side.writes(into: x) && !side.uses(otherOut))
        // Reading what the side writes, writing what it reads, writing what it writes: each conflicts.
        #expect(side.writes(into: dw))
        #expect(side.uses(dz))
        #expect(side.uses(dw))
        // A partial overlap counts: the last float of X.
        let lastOfX = (x.upperBound - 4) ..< x.upperBound
        #expect(side.uses(lastOfX))
        // Adjacent is not overlapping: the float just past dW.
        let pastDW = dw.upperBound ..< dw.upperBound + 4
        #expect(!side.writes(into: pastDW) && !side.uses(pastDW))

        side.removeAll()
        #expect(!side.writes(into: dw) && !side.uses(x) && !side.uses(dz) && !side.uses(dw))
    }
}
