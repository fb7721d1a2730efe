/// The address of `Element`s in a backend's memory: host memory for the naive and cpu backends, device memory
/// for a GPU backend.
///
/// One plain value type for every backend (an address, as CUDA's `CUdeviceptr` is), so that the core can hold
/// buffers, take views into them with `+`, and pass them to any backend without knowing which it is. Only the
/// backend that allocated a pointer may read or write through it.
public struct DevicePointer<Element>: Hashable, Sendable {
    /// The raw address.
    public var address: UInt

    /// A pointer to backend memory at `address` (0 for none).
    public init(address: UInt) { self.address = address }

    /// The pointer `offset` elements further on.
    @inlinable
    public static func + (base: DevicePointer, offset: Int) -> DevicePointer {
        DevicePointer(address: base.address &+ UInt(offset * MemoryLayout<Element>.stride))
    }

    /// For backends whose memory is the host's: the pointer as a Swift pointer.
    @inlinable
    public var host: UnsafeMutablePointer<Element> {
        UnsafeMutablePointer(bitPattern: address)!
    }

    /// For backends whose memory is the host's: a Swift pointer as a device pointer.
    @inlinable
    public init(host pointer: UnsafeMutablePointer<Element>) {
        address = UInt(bitPattern: pointer)
    }
}
