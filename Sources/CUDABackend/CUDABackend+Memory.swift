import MLPCore

/// Device memory, and the copies between it and the host: small uploads through pinned staging slots, a recorded step's
/// uploads from its own pinned buffers (refreshed before each replay).
extension CUDABackend {
    public func allocate<T>(_ type: T.Type, count: Int) throws -> DevicePointer<T> {
        try allocate(type, count: count, mirrored: true)
    }

    /// `allocate`; with `mirrored` (in bf16), the allocation may get a bf16 mirror (`BF16Mirrors`; mirrors have none).
    func allocate<T>(_ type: T.Type, count: Int, mirrored: Bool) throws -> DevicePointer<T> {
        deviceAllocations += 1
        var address: UInt64 = 0
        let bytes = max(count, 1) * MemoryLayout<T>.stride
        try driver.check(driver.cuMemAlloc(&address, bytes), "cuMemAlloc(\(bytes) bytes)")
        try driver.check(driver.cuMemsetD8(address, 0, bytes), "cuMemsetD8")
        if precision == .bf16 && mirrored { bf16Mirrors.allocated(base: UInt(address), bytes: bytes) }
        return DevicePointer(address: UInt(address))
    }

    public func free<T>(_ pointer: DevicePointer<T>) {
        join()
        if precision == .bf16 {
            let mirror = bf16Mirrors.freed(base: pointer.address)
            if mirror != 0 { _ = driver.cuMemFree(UInt64(mirror)) }
        }
        _ = driver.cuMemFree(UInt64(pointer.address))
    }

    public func upload<T>(_ source: UnsafeBufferPointer<T>, to destination: DevicePointer<T>) {
        join()
        guard let base = source.baseAddress, !source.isEmpty else { return }
        let bytes = source.count * MemoryLayout<T>.stride
        record {
            switch mode {
            case .replaying:
                // The recorded copy reads the recording's pinned buffer: refresh it.
                _ = try stageRecorded(UnsafeRawBufferPointer(source))
                return
            case .capturing:
                let buffer = try stageRecorded(UnsafeRawBufferPointer(source))
                try driver.check(driver.cuMemcpyHtoDAsync(UInt64(destination.address), buffer, bytes, stream), "cuMemcpyHtoDAsync (recorded)")
                return try uploaded(source.count, to: destination)
            case .direct:
                break
            }
            if bytes <= stagingSlotBytes, let staging {
                let slot = nextSlot
                nextSlot = (nextSlot + 1) % stagingSlots
                // Wait only if the copy that last used this slot has not run yet (the GPU is 64 uploads behind).
                try driver.check(driver.cuEventSynchronize(stagingEvents[slot]), "cuEventSynchronize")
                let pinned = staging + slot * stagingSlotBytes
                pinned.copyMemory(from: base, byteCount: bytes)
                try driver.check(driver.cuMemcpyHtoDAsync(UInt64(destination.address), pinned, bytes, stream), "cuMemcpyHtoDAsync")
                try driver.check(driver.cuEventRecord(stagingEvents[slot], stream), "cuEventRecord")
            } else {
                // Large uploads (parameters, datasets) are synchronous: ordered after the stream's work (a blocking
                // stream) and finished when this returns.
                try driver.check(driver.cuMemcpyHtoD(UInt64(destination.address), base, bytes), "cuMemcpyHtoD")
            }
            try uploaded(source.count, to: destination)
        }
    }

    /// In bf16, after an upload: fp32 values' mirror refreshed, anything else's invalidated.
    private func uploaded<T>(_ count: Int, to destination: DevicePointer<T>) throws {
        guard precision == .bf16 else { return }
        wroteWithoutMirror(destination, count: count)
        if T.self == Float.self { try refreshMirror(afterUploadTo: destination.address, count: count) }
    }

    /// In a recorded step, the pinned buffer that the recording reads `source`'s bytes from, filled with them: while
    /// recording, the next free part of the recording's arena; while replaying, the part the recording used at this
    /// point (the previous launch of this recording has finished: `beginStep` waited for it).
    func stageRecorded(_ source: UnsafeRawBufferPointer) throws -> UnsafeMutableRawPointer {
        let bytes = source.count
        switch mode {
        case .replaying(let graph):
            let (buffer, size) = graph.uploads[uploadIndex]
            precondition(size == bytes, "a replayed step uploads \(bytes) bytes where the recording had \(size)")
            buffer.copyMemory(from: source.baseAddress!, byteCount: bytes)
            uploadIndex += 1
            return buffer
        case .capturing(let graph):
            let offset = (graph.arenaUsed + 63) / 64 * 64
            guard offset + bytes <= StepGraph.arenaBytes, let arena = graph.arena else {
                throw CUDAError("a recorded step uploads more than \(StepGraph.arenaBytes) bytes (set MLP_CUDA_OFF=graphs)")
            }
            let buffer = arena + offset
            graph.arenaUsed = offset + bytes
            buffer.copyMemory(from: source.baseAddress!, byteCount: bytes)
            graph.uploads.append((buffer, bytes))
            return buffer
        case .direct:
            preconditionFailure("stageRecorded outside a recorded step")
        }
    }

    public func download<T>(_ source: DevicePointer<T>, count: Int, into destination: UnsafeMutableBufferPointer<T>) {
        join()
        guard count > 0 else { return }
        record {
            try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
            try driver.check(driver.cuMemcpyDtoH(destination.baseAddress!, UInt64(source.address), count * MemoryLayout<T>.stride), "cuMemcpyDtoH")
        }
    }
}
