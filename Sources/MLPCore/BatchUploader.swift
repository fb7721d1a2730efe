/// The copies that stream batches from host memory into a backend's (`StreamedDataset`): a ring of host buffers that
/// a producer fills, and copies from them into backend memory that overlap the steps running meanwhile.
///
/// The order of a batch's life, with `h` its host buffer and `d` the backend memory it is copied to:
/// 1. the producer calls `waitUntilRead(h)` (the copy that last read `h` has finished) and fills `h`;
/// 2. the caller calls `send(h, ranges:, to: d)`: the copy is queued, and runs once the work queued before the last
///    `release(d)` is done (no step still reads what it overwrites);
/// 3. the caller calls `acquire(d)` before queueing the step that reads `d`: that step runs after the copy;
/// 4. after queueing that step, the caller calls `release(d)`.
///
/// A backend whose memory is the host's copies at once, in `send` (its steps have finished when they return). The cuda
/// backend's host buffers are pinned and its copies run on a stream of their own, ordered against the step stream by
/// events, so a copy overlaps the step before it.
///
/// `waitUntilRead` is called from the producer's thread; every other call from the thread that queues the steps.
public protocol BatchUploader: AnyObject {
    /// The host buffers, each `bufferBytes` long, 64-byte aligned.
    var hostBuffers: [UnsafeMutableRawPointer] { get }
    /// Bytes of each host buffer.
    var bufferBytes: Int { get }
    /// Blocks until the last copy queued from host buffer `buffer` has read it.
    /// - Throws: a backend failure (the copy failed, or the device was lost).
    func waitUntilRead(_ buffer: Int) throws
    /// Queues the copy of the byte ranges `ranges` of host buffer `buffer` to the same ranges from `destination`, after
    /// the work queued before `destination`'s last `release`.
    /// - Throws: a backend failure.
    func send(_ buffer: Int, ranges: [Range<Int>], to destination: DevicePointer<UInt8>) throws
    /// Makes the work queued from now on wait for the last copy sent to `destination`.
    /// - Throws: a backend failure.
    func acquire(_ destination: DevicePointer<UInt8>) throws
    /// Marks the work queued so far as the last that reads `destination` before its next copy.
    /// - Throws: a backend failure.
    func release(_ destination: DevicePointer<UInt8>) throws
}

/// `BatchUploader` for a backend whose memory is the host's: the host buffers are heap blocks and a copy is a `memcpy`
/// made in `send` (nothing runs behind the caller's back, so there is nothing to order).
public final class HostBatchUploader: BatchUploader {
    public let hostBuffers: [UnsafeMutableRawPointer]
    public let bufferBytes: Int

    /// `count` host buffers of `bytes` each.
    public init(count: Int, bytes: Int) {
        bufferBytes = bytes
        hostBuffers = (0..<count).map { _ in UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 64) }
    }

    deinit { for buffer in hostBuffers { buffer.deallocate() } }

    public func waitUntilRead(_ buffer: Int) throws {}

    public func send(_ buffer: Int, ranges: [Range<Int>], to destination: DevicePointer<UInt8>) throws {
        for range in ranges {
            precondition(range.upperBound <= bufferBytes, "a copy of bytes \(range) from a buffer of \(bufferBytes)")
            (UnsafeMutableRawPointer(destination.host) + range.lowerBound).copyMemory(from: hostBuffers[buffer] + range.lowerBound, byteCount: range.count)
        }
    }

    public func acquire(_ destination: DevicePointer<UInt8>) throws {}
    public func release(_ destination: DevicePointer<UInt8>) throws {}
}

extension HostMemoryBackend {
    public func makeBatchUploader(buffers: Int, bytes: Int) throws -> any BatchUploader {
        HostBatchUploader(count: buffers, bytes: bytes)
    }
}
