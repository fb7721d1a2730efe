import MLPCore

/// Batches streamed from host memory (`StreamedDataset`): pinned host buffers, and copies on a stream of their own
/// that overlap the step before the one that reads them.
extension CUDABackend {
    public func makeBatchUploader(buffers: Int, bytes: Int) throws -> any BatchUploader {
        join()
        try synchronize()
        return try CUDABatchUploader(self, buffers: buffers, bytes: bytes)
    }

    public var memoryAvailable: (free: Int, total: Int)? {
        var free = 0, total = 0
        guard driver.cuMemGetInfo(&free, &total) == 0 else { return nil }
        return (free, total)
    }
}

/// `BatchUploader` on the cuda backend. Events order the copy stream against the main stream: a copy into a window
/// waits for the event `release` recorded after the last step that read it, and `acquire` makes the main stream wait
/// for the event recorded after the copy. Each host buffer's event, recorded after the copy that read it, is what a
/// producer waits for before refilling it (from its own thread, with the context made current there).
///
/// The waits are between launches, outside any recorded step, so a step's graph is the same whichever window it reads
/// (the windows are datasets of their own, each with its recordings).
final class CUDABatchUploader: BatchUploader, @unchecked Sendable {
    private unowned let backend: CUDABackend
    private let driver: CUDADriver
    let hostBuffers: [UnsafeMutableRawPointer]
    let bufferBytes: Int
    private var copyStream: OpaquePointer?
    /// Per host buffer: recorded after the last copy that read it.
    private var readEvents: [OpaquePointer?] = []
    /// Per window (by address): recorded after the last copy into it, and after the last step that read it.
    private var copiedEvents: [UInt: OpaquePointer?] = [:], releasedEvents: [UInt: OpaquePointer?] = [:]

    init(_ backend: CUDABackend, buffers: Int, bytes: Int) throws {
        self.backend = backend
        driver = backend.driver
        bufferBytes = bytes
        var pinned = [UnsafeMutableRawPointer]()
        do {
            for _ in 0..<buffers {
                var buffer: UnsafeMutableRawPointer?
                try driver.check(driver.cuMemAllocHost(&buffer, max(bytes, 1)),
                                 "cuMemAllocHost(\(bytes) bytes: pinned host memory for a streamed batch)")
                pinned.append(buffer!)
            }
            hostBuffers = pinned
            // CU_STREAM_NON_BLOCKING: the copies do not wait for the legacy stream's work (synchronous copies).
            try driver.check(driver.cuStreamCreate(&copyStream, 1), "cuStreamCreate(batch copies)")
            for _ in 0..<buffers { readEvents.append(try Self.event(driver)) }
        } catch {
            for buffer in pinned { _ = driver.cuMemFreeHost(buffer) }
            if let copyStream { _ = driver.cuStreamDestroy(copyStream) }
            throw error
        }
    }

    deinit {
        // Copies still queued read the host buffers: let them finish first.
        _ = driver.cuStreamSynchronize(copyStream)
        for event in readEvents + Array(copiedEvents.values) + Array(releasedEvents.values) { _ = driver.cuEventDestroy(event) }
        for buffer in hostBuffers { _ = driver.cuMemFreeHost(buffer) }
        _ = driver.cuStreamDestroy(copyStream)
    }

    private static func event(_ driver: CUDADriver) throws -> OpaquePointer? {
        var event: OpaquePointer?
        try driver.check(driver.cuEventCreate(&event, 2), "cuEventCreate")  // CU_EVENT_DISABLE_TIMING
        return event
    }

    /// The window's events, made the first time it is seen.
    private func events(_ window: DevicePointer<UInt8>) throws -> (copied: OpaquePointer?, released: OpaquePointer?) {
        if let copied = copiedEvents[window.address], let released = releasedEvents[window.address] { return (copied, released) }
        let pair = (try Self.event(driver), try Self.event(driver))
        copiedEvents[window.address] = pair.0
        releasedEvents[window.address] = pair.1
        return pair
    }

    func waitUntilRead(_ buffer: Int) throws {
        try driver.check(driver.cuCtxSetCurrent(backend.context), "cuCtxSetCurrent")
        try driver.check(driver.cuEventSynchronize(readEvents[buffer]), "cuEventSynchronize(a streamed batch's copy)")
    }

    func send(_ buffer: Int, ranges: [Range<Int>], to destination: DevicePointer<UInt8>) throws {
        let (copied, released) = try events(destination)
        try driver.check(driver.cuStreamWaitEvent(copyStream, released, 0), "cuStreamWaitEvent(window released)")
        for range in ranges {
            precondition(range.upperBound <= bufferBytes, "a copy of bytes \(range) from a buffer of \(bufferBytes)")
            try driver.check(driver.cuMemcpyHtoDAsync(UInt64(destination.address) + UInt64(range.lowerBound), hostBuffers[buffer] + range.lowerBound,
                                                      range.count, copyStream), "cuMemcpyHtoDAsync(a streamed batch, \(range.count) bytes)")
        }
        try driver.check(driver.cuEventRecord(readEvents[buffer], copyStream), "cuEventRecord")
        try driver.check(driver.cuEventRecord(copied, copyStream), "cuEventRecord")
    }

    func acquire(_ destination: DevicePointer<UInt8>) throws {
        let (copied, _) = try events(destination)
        try driver.check(driver.cuStreamWaitEvent(backend.stream, copied, 0), "cuStreamWaitEvent(batch copied)")
    }

    func release(_ destination: DevicePointer<UInt8>) throws {
        // Every stream's reads of the window are on the main stream once it has joined the others.
        backend.join()
        let (_, released) = try events(destination)
        try driver.check(driver.cuEventRecord(released, backend.stream), "cuEventRecord(window released)")
    }
}
