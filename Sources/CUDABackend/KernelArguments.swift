import MLPCore

/// A value passed to a kernel: written into a slot (8-byte aligned, `size` bytes) whose address goes into the launch's
/// parameter array.
protocol KernelArgument {
    /// The bytes the kernel's parameter takes (8 unless said).
    var size: Int { get }
    /// Writes the value into `slot` (`size` bytes). Allocates nothing: a replayed step calls it.
    func write(to slot: UnsafeMutableRawPointer)
}

extension KernelArgument {
    var size: Int { 8 }
}

/// An optimizer step's values passed by value (`OptimizerArguments` in the kernels' source): learning rate, momentum,
/// weight decay, beta1, beta2, epsilon, 1 - beta1^t, 1 - beta2^t.
struct StepValues: KernelArgument {
    let step: OptimizerStep
    var size: Int { 32 }
    func write(to slot: UnsafeMutableRawPointer) {
        let (c1, c2) = step.biasCorrections
        // One store each (no array literal: this runs on every replay, which must not allocate).
        slot.storeBytes(of: step.learningRate, toByteOffset: 0, as: Float.self)
        slot.storeBytes(of: step.momentum, toByteOffset: 4, as: Float.self)
        slot.storeBytes(of: step.weightDecay, toByteOffset: 8, as: Float.self)
        slot.storeBytes(of: step.beta1, toByteOffset: 12, as: Float.self)
        slot.storeBytes(of: step.beta2, toByteOffset: 16, as: Float.self)
        slot.storeBytes(of: step.epsilon, toByteOffset: 20, as: Float.self)
        slot.storeBytes(of: c1, toByteOffset: 24, as: Float.self)
        slot.storeBytes(of: c2, toByteOffset: 28, as: Float.self)
    }
}

/// A batch's indices passed by value (`InlineIndices` in the kernels' source, of `inlineIndexCapacity` ints, or
/// `InlineIndicesLarge`, of `largeInlineIndexCapacity`), those past the batch zero.
struct InlineIndices: KernelArgument {
    let indices: UnsafeBufferPointer<Int32>
    var capacity = CUDABackend.inlineIndexCapacity
    var size: Int { 4 * capacity }
    func write(to slot: UnsafeMutableRawPointer) {
        precondition(indices.count <= capacity, "\(indices.count) indices for a parameter of \(capacity)")
        slot.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        if let base = indices.baseAddress { slot.copyMemory(from: base, byteCount: 4 * indices.count) }
    }
}

extension DevicePointer: KernelArgument {
    func write(to slot: UnsafeMutableRawPointer) { slot.storeBytes(of: UInt64(address), as: UInt64.self) }
}
extension Int32: KernelArgument {
    func write(to slot: UnsafeMutableRawPointer) { slot.storeBytes(of: self, as: Int32.self) }
}
extension Int64: KernelArgument {
    func write(to slot: UnsafeMutableRawPointer) { slot.storeBytes(of: self, as: Int64.self) }
}
extension Float: KernelArgument {
    func write(to slot: UnsafeMutableRawPointer) { slot.storeBytes(of: self, as: Float.self) }
}

/// Arguments laid out as the driver takes them (`kernelParams`): each value in its own 8-byte-aligned slot of one
/// block, and an array of the slots' addresses. A launch makes one and drops it; a recorded step's node whose arguments
/// change between replays keeps one (`RecordedKernelNode`) and rewrites a slot in place.
final class ArgumentBlock {
    /// The slots' addresses, in the kernel's parameter order.
    let pointers: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    let count: Int
    private let slots: UnsafeMutableRawPointer
    private let sizes: [Int]

    init(_ arguments: [any KernelArgument]) {
        count = arguments.count
        sizes = arguments.map(\.size)
        let offsets = sizes.reduce(into: [0]) { $0.append($0.last! + ($1 + 7) / 8 * 8) }
        slots = UnsafeMutableRawPointer.allocate(byteCount: max(8, offsets.last!), alignment: 8)
        slots.initializeMemory(as: UInt8.self, repeating: 0, count: max(8, offsets.last!))
        pointers = .allocate(capacity: max(1, count))
        for (i, argument) in arguments.enumerated() {
            pointers[i] = slots + offsets[i]
            argument.write(to: slots + offsets[i])
        }
    }

    deinit {
        slots.deallocate()
        pointers.deallocate()
    }

    /// Rewrites argument `index` (of the same size as the one laid out there) in place.
    func set<A: KernelArgument>(_ argument: A, at index: Int) {
        precondition(index < count && argument.size == sizes[index], "argument \(index) of \(count) set with \(argument.size) bytes")
        argument.write(to: pointers[index]!)
    }

    /// Argument `index`'s bytes (for tests).
    func bytes(at index: Int) -> [UInt8] {
        Array(UnsafeRawBufferPointer(start: pointers[index], count: sizes[index]))
    }
}

/// A kernel node of a recorded step whose last argument changes between replays (the gather's indices, an optimizer
/// update's step values). Its arguments are laid out once, as the step is recorded, and its
/// `CUDA_KERNEL_NODE_PARAMS_v2` when the recording ends; a replay rewrites the last argument and hands `parameters` to
/// `cuGraphExecKernelNodeSetParams`, allocating nothing on the host. Every other argument stays as recorded: a
/// recording is for one network, dataset and batch size (`RecordingKey`), which fix them.
final class RecordedKernelNode {
    /// The node, in the captured graph (whose executable graph the parameters are set in).
    let node: OpaquePointer?
    let arguments: ArgumentBlock
    /// `CUDA_KERNEL_NODE_PARAMS_v2`: the function, 7 UInt32s (grid, block, shared bytes), the parameter array at byte
    /// 40, `extra` at 48, a `CUkernel` at 56 and a context at 64 (both nil: the function, the current one).
    let parameters: UnsafeMutableRawPointer
    static let parameterBytes = 72

    init(node: OpaquePointer?, function: OpaquePointer?, grid: (UInt32, UInt32), block: UInt32, sharedBytes: UInt32 = 0, arguments: ArgumentBlock) {
        self.node = node
        self.arguments = arguments
        parameters = .allocate(byteCount: Self.parameterBytes, alignment: 8)
        parameters.initializeMemory(as: UInt8.self, repeating: 0, count: Self.parameterBytes)
        parameters.storeBytes(of: function, as: OpaquePointer?.self)
        for (i, value) in [grid.0, grid.1, 1, block, 1, 1, sharedBytes].enumerated() {
            parameters.storeBytes(of: value, toByteOffset: 8 + 4 * i, as: UInt32.self)
        }
        parameters.storeBytes(of: self.arguments.pointers, toByteOffset: 40, as: UnsafeMutablePointer<UnsafeMutableRawPointer?>.self)
    }

    deinit { parameters.deallocate() }

    /// Rewrites the last argument for the next replay.
    func setLast<A: KernelArgument>(_ argument: A) {
        arguments.set(argument, at: arguments.count - 1)
    }
}
