import MLPCore

/// `--precision bf16`: the products take bf16 copies of their operands ("mirrors", `BF16Mirrors`) and sum in fp32 into
/// fp32 outputs. Every buffer the `Backend` operations name stays fp32 and holds what those operations promise (the
/// products' fp32 results, the fp32 parameters); the mirrors sit beside them. The weights' mirrors are written by the
/// optimizer's update with the new values (and refreshed after an upload), so a step converts only its activations and
/// gradients: each once, on the main stream, the first time a product reads it. Our own kernels (the output layer, the
/// loss, the activations) compute in fp32, as do products with a side under `bf16MinimumSize` (the output layer's
/// narrow weight gradient).
extension CUDABackend {
    /// Products with `m`, `n` or `k` under this stay fp32: converting a ten-column gradient costs a launch and saves
    /// nothing.
    static let bf16MinimumSize = 16

    /// Whether `call` runs on bf16 copies of its operands.
    func runsInBF16(_ call: MatmulCall) -> Bool {
        precision == .bf16 && Swift.min(call.m, call.n, call.k) >= Self.bf16MinimumSize
    }

    /// `call` reading the bf16 copies of its operands, made current first where they are not (on `target`; see
    /// `mirror(of:rows:columns:stride:on:)`).
    func bf16Operands(of call: MatmulCall, on target: OpaquePointer?) throws -> MatmulCall {
        var converted = call
        converted.a = try mirror(of: call.a, rows: call.transposeA ? call.k : call.m, columns: call.transposeA ? call.m : call.k, stride: call.lda, on: target)
        converted.b = try mirror(of: call.b, rows: call.transposeB ? call.n : call.k, columns: call.transposeB ? call.k : call.n, stride: call.ldb, on: target)
        converted.bf16 = true
        return converted
    }

    /// The bf16 copy of the fp32 matrix at `address` (`rows` × `columns`, rows `stride` apart), converted on `target`
    /// unless it is current. The mirror of its allocation is made on first use, which happens in a step's first,
    /// unrecorded run. A conversion on the side stream is not marked current: the main stream has not waited for it.
    func mirror(of address: UInt, rows: Int, columns: Int, stride: Int, on target: OpaquePointer?) throws -> UInt {
        let count = (rows - 1) * stride + columns
        let start = address, end = address + UInt(4 * count)
        guard let index = bf16Mirrors.allocation(containing: address) else {
            throw CUDAError("a bf16 product's operand at 0x\(String(address, radix: 16)) is not in memory this backend allocated")
        }
        guard try makeMirror(ofAllocation: index) else {
            throw CUDAError("a bf16 product's operand first needs its bf16 copy inside a recorded step, where nothing can be allocated (set MLP_CUDA_OFF=graphs)")
        }
        let mirror = bf16Mirrors.mirror(of: address)!
        if !bf16KeepsCopies || !bf16Mirrors.isCurrent(start, end) {
            // The side stream's weight gradients read the mirrors of what they read in fp32: rewrite one only after them.
            if target == stream && sidePending && sideAccesses.uses(StreamAccesses.extent(DevicePointer<Float>(address: address), rows: 1, stride: count)) {
                join()
            }
            try enqueueKernel("to_bf16", grid: (blocks(count, 1024), 1), block: 256, on: target,
                              [DevicePointer<UInt16>(address: mirror), DevicePointer<Float>(address: address), Int64(count)])
            if target == stream { bf16Mirrors.markCurrent(start, end, kept: false) }
        }
        return mirror
    }

    /// Where a kernel about to write `count` gradients from `gradient` on, on `target`, writes their bf16 copy too
    /// (marked current), or 0: outside bf16, on the side stream (the main stream has not waited for it), or where the
    /// copy would first be made inside a recording (the gradients are then marked stale, and converted when read).
    func gradientMirror(_ gradient: DevicePointer<Float>, count: Int, on target: OpaquePointer?) throws -> DevicePointer<UInt16> {
        guard precision == .bf16 else { return DevicePointer(address: 0) }
        wroteWithoutMirror(gradient, count: count)
        guard bf16KeepsCopies, target == stream, let index = bf16Mirrors.allocation(containing: gradient.address),
              try makeMirror(ofAllocation: index) else { return DevicePointer(address: 0) }
        bf16Mirrors.markCurrent(gradient.address, gradient.address + UInt(4 * count), kept: false)
        return DevicePointer(address: bf16Mirrors.mirror(of: gradient.address)!)
    }

    /// Makes allocation `index`'s mirror if it has none and nothing is being recorded; returns whether it has one.
    private func makeMirror(ofAllocation index: Int) throws -> Bool {
        if bf16Mirrors.allocations[index].mirror != 0 { return true }
        guard case .direct = mode else { return false }
        let mirror = try allocate(UInt8.self, count: bf16Mirrors.mirrorBytes(ofAllocation: index), mirrored: false)
        bf16Mirrors.setMirror(mirror.address, ofAllocation: index)
        return true
    }

    /// `count` fp32 values from `pointer` on were written without their mirror (by a product's output, a kernel,
    /// a copy): their mirror is no longer current.
    func wroteWithoutMirror<T>(_ pointer: DevicePointer<T>, count: Int) {
        guard precision == .bf16, count > 0 else { return }
        bf16Mirrors.invalidate(pointer.address, pointer.address + UInt(count * MemoryLayout<T>.stride))
    }

    /// Where the optimizer's update of `count` parameters from `parameters` on writes their bf16 copy (marked
    /// current, kept until something else writes them), or 0 where they have no mirror yet.
    func updateMirror(_ parameters: DevicePointer<Float>, count: Int) -> DevicePointer<UInt16> {
        guard precision == .bf16, bf16KeepsCopies, let mirror = bf16Mirrors.mirror(of: parameters.address) else { return DevicePointer(address: 0) }
        if case .replaying = mode {} else {
            bf16Mirrors.markCurrent(parameters.address, parameters.address + UInt(4 * count), kept: true)
        }
        return DevicePointer(address: mirror)
    }

    /// After an upload of `count` fp32 values to `destination`: their mirror converted, if they have one (kept
    /// current: only a write can change them).
    func refreshMirror(afterUploadTo destination: UInt, count: Int) throws {
        guard precision == .bf16, let mirror = bf16Mirrors.mirror(of: destination) else { return }
        try enqueueKernel("to_bf16", grid: (blocks(count, 1024), 1), block: 256, on: stream,
                          [DevicePointer<UInt16>(address: mirror), DevicePointer<Float>(address: destination), Int64(count)])
        bf16Mirrors.markCurrent(destination, destination + UInt(4 * count), kept: true)
    }
}
