import CAllocationCounter
@testable import CUDABackend
import MLPCore
import MNIST
import Testing
import Glibc

/// The argument blocks a recorded step's replays rewrite: laid out as the driver reads them, and rewritten in place
/// without a heap allocation (the design's "no allocation in a warmed-up step", which the cuda backend's replays
/// keep by setting only these nodes' last arguments; the rest of a replay is checked on the GPU by `mlp check`).
@Suite(.serialized) struct KernelArgumentsTests {
    /// Random arguments of every kind the backend passes, in an order that puts 4-byte values between 8-byte ones.
    static func arguments(_ g: inout SeededGenerator, indices: UnsafeBufferPointer<Int32>) -> [any KernelArgument] {
        [DevicePointer<Float>(address: UInt.random(in: 1...UInt(UInt32.max), using: &g) * 4), Int32.random(in: -9...9_999, using: &g),
         Float.random(in: -2...2, using: &g), Int64.random(in: 1...(1 << 40), using: &g), DevicePointer<UInt8>(address: 0x7f00_0000_0040),
         InlineIndices(indices: indices)]
    }

    @Test func aBlockHoldsEachArgumentInAnAlignedSlotOfItsOwn() {
        var g = SeededGenerator(seed: 11)
        let indices = (0..<37).map { _ in Int32.random(in: 0..<60_000, using: &g) }
        let arguments = indices.withUnsafeBufferPointer { Self.arguments(&g, indices: $0) }
        let block = ArgumentBlock(arguments)
        #expect(block.count == arguments.count)
        var previous: UInt = 0
        for (i, argument) in arguments.enumerated() {
            let address = UInt(bitPattern: block.pointers[i])
            #expect(address % 8 == 0, "slot \(i) at \(address)")
            if i > 0 {
                let previousSlot = UInt((arguments[i - 1].size + 7) / 8 * 8)
                #expect(address >= previous + previousSlot, "slot \(i) overlaps slot \(i - 1)")
            }
            previous = address
            let expected = UnsafeMutableRawPointer.allocate(byteCount: argument.size, alignment: 8)
            defer { expected.deallocate() }
            expected.initializeMemory(as: UInt8.self, repeating: 0, count: argument.size)
            argument.write(to: expected)
            #expect(block.bytes(at: i) == Array(UnsafeRawBufferPointer(start: expected, count: argument.size)), "argument \(i)")
        }
        // The last of them, the indices: the batch's, then zeros to the parameter's end.
        let written = block.bytes(at: arguments.count - 1).withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
        #expect(Array(written.prefix(indices.count)) == indices && written.dropFirst(indices.count).allSatisfy { $0 == 0 })
    }

    /// A recorded node's parameters: the function, grid, block and the block's slot array where
    /// `CUDA_KERNEL_NODE_PARAMS_v2` has them; a replay's new arguments replace the old ones, as the backend sets them
    /// (an update's step values and the next batch's indices, `optimizer_update_gather`'s arguments; a gather's
    /// indices), leaving the others, and setting them allocates nothing.
    @Test func aRecordedNodeRewritesItsChangingArgumentsWithoutAllocating() throws {
        var g = SeededGenerator(seed: 12)
        let configuration = try OptimizerConfiguration(kind: .adamw, learningRate: 0.003, weightDecay: 0.01, beta1: 0.85, beta2: 0.98, epsilon: 1e-6)
        let first = configuration.step(1, learningRate: 0.003)
        let firstIndices = (0..<128).map { _ in Int32.random(in: 0..<60_000, using: &g) }
        let arguments: [any KernelArgument] = firstIndices.withUnsafeBufferPointer {
            [DevicePointer<Float>(address: 0x1000), DevicePointer<Float>(address: 0x2000), DevicePointer<Float>(address: 0x3000),
             Int64(70_001), Int64(71_235), Int32(2), Int32(0), StepValues(step: first), DevicePointer<UInt16>(address: 0x3800),
             Int32(69), DevicePointer<Float>(address: 0x4000),
             DevicePointer<Int32>(address: 0x5000), DevicePointer<UInt8>(address: 0x6000), DevicePointer<UInt8>(address: 0x7000),
             Int32(784), Float(1.0 / 255), Float(0), Int32(4), InlineIndices(indices: $0)]
        }
        let valuesAt = CUDABackend.stepValuesArgument, indicesAt = arguments.count - 1
        let function = OpaquePointer(bitPattern: UInt.random(in: 0x1000...0xffff_ffff, using: &g))
        let node = RecordedKernelNode(node: nil, function: function, grid: (69, 1), block: 256, arguments: ArgumentBlock(arguments))
        let p = node.parameters
        #expect(p.load(as: OpaquePointer?.self) == function)
        #expect((0..<7).map { p.load(fromByteOffset: 8 + 4 * $0, as: UInt32.self) } == [69, 1, 1, 256, 1, 1, 0])
        #expect(p.load(fromByteOffset: 40, as: UnsafeMutablePointer<UnsafeMutableRawPointer?>.self) == node.arguments.pointers)
        #expect((48..<72).allSatisfy { p.load(fromByteOffset: $0, as: UInt8.self) == 0 })
        let unchanged = (0..<arguments.count).filter { $0 != valuesAt && $0 != indicesAt }
        let others = unchanged.map { node.arguments.bytes(at: $0) }

        let steps = (2...40).map { configuration.step($0, learningRate: Float.random(in: 1e-4...1e-2, using: &g)) }
        var indices = (0..<960).map { _ in Int32.random(in: 0..<60_000, using: &g) }
        let gather = indices.withUnsafeBufferPointer { RecordedKernelNode(node: nil, function: function, grid: (4, 960), block: 256, arguments: ArgumentBlock(Self.arguments(&g, indices: $0))) }
        indices.shuffle(using: &g)
        let batch = Array(indices.prefix(333))

        // Twice: the first round warms up (the Swift runtime builds generic types' metadata once, on the heap), the
        // second is counted (MLP_TRAP_ALLOCATIONS=1 traps at its first allocation, for the backtrace).
        let trap = getenv("MLP_TRAP_ALLOCATIONS") != nil
        for round in 0..<2 {
            mlp_reset_allocation_count()
            mlp_count_allocations_on_this_thread(Int32(round))
            if round == 1 && trap { mlp_trap(1) }
            // (Through a buffer pointer: the debug build's array iterator allocates its own frame on the heap.)
            batch.withUnsafeBufferPointer { b in
                steps.withUnsafeBufferPointer {
                    for i in 0..<$0.count {
                        node.arguments.set(StepValues(step: $0[i]), at: valuesAt)
                        node.setLast(InlineIndices(indices: UnsafeBufferPointer(rebasing: b[0..<(i % 2 == 0 ? 77 : 128)])))
                    }
                }
                gather.setLast(InlineIndices(indices: b))
            }
            mlp_trap(0)
            mlp_count_allocations_on_this_thread(0)
        }
        #expect(mlp_allocation_count() == 0, "\(mlp_allocation_count()) heap allocations setting 79 arguments")

        let last = steps.last!
        let values = node.arguments.bytes(at: valuesAt).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        #expect(values == [last.learningRate, 0, 0.01, 0.85, 0.98, 1e-6, last.biasCorrections.first, last.biasCorrections.second])
        #expect(unchanged.map { node.arguments.bytes(at: $0) } == others)
        // The last step set 77 indices after one of 128: the rest of the parameter zeros again, though the kernel
        // never reads past its batch.
        let nextIndices = node.arguments.bytes(at: indicesAt).withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
        #expect(Array(nextIndices.prefix(77)) == Array(batch.prefix(77)) && nextIndices.dropFirst(77).allSatisfy { $0 == 0 })
        let written = gather.arguments.bytes(at: 5).withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
        #expect(Array(written.prefix(333)) == batch && written.dropFirst(333).allSatisfy { $0 == 0 })
    }
}
