import MLPCore

/// The side stream (weight gradients, off the critical path) and the update stream (layer-by-layer updates), and when
/// the main stream must wait for them: only when their queued work touches memory that the main stream's next operation
/// reads or writes in a way that conflicts (`StreamAccesses`).
extension CUDABackend {
    /// Makes the main stream wait for everything queued on the side stream and the update stream.
    func join() {
        guard sidePending || updatePending else { return }
        let side = sidePending, update = updatePending
        sidePending = false
        updatePending = false
        sideAccesses.removeAll()
        if case .replaying = mode { return }
        record {
            if side { try driver.check(driver.cuStreamWaitEvent(stream, joinEvent, 0), "cuStreamWaitEvent(join)") }
            if update { try driver.check(driver.cuStreamWaitEvent(stream, updateDone, 0), "cuStreamWaitEvent(join updates)") }
        }
    }

    /// dW [in, out] = Xᵀ [in, B] · dZ [B, out], on the side stream: nothing reads it before the optimizer (which
    /// joins), so it runs beside what the main stream does next. `thenOnSideStream` queues more work on the side stream
    /// after the product (it runs only while recording or running directly, not when a step is replayed; non-escaping,
    /// so that a replayed step allocates no closure context).
    func enqueueWeightGradient(_ weightGradient: DevicePointer<Float>, inputs: DevicePointer<Float>, gradient: DevicePointer<Float>, rows: Int, inputSize: Int, outputSize: Int, thenOnSideStream: () throws -> Void = {}) {
        if case .replaying = mode {
            sidePending = true
        } else {
            record {
                let call = MatmulCall(transposeA: true, transposeB: false, m: inputSize, n: outputSize, k: rows, alpha: 1,
                                      a: inputs.address, lda: inputSize, b: gradient.address, ldb: outputSize, beta: 0,
                                      c: weightGradient.address, ldc: outputSize)
                // bf16: the operands' copies made current on the main stream, before the fork, so that the main
                // stream's products can read them too.
                if runsInBF16(call) { _ = try bf16Operands(of: call, on: stream) }
                try driver.check(driver.cuEventRecord(forkEvent, stream), "cuEventRecord(fork)")
                try driver.check(driver.cuStreamWaitEvent(sideStream, forkEvent, 0), "cuStreamWaitEvent(fork)")
                try matmul(call, on: sideStream)
                try thenOnSideStream()
                try driver.check(driver.cuEventRecord(joinEvent, sideStream), "cuEventRecord(join)")
                sidePending = true
            }
        }
        sideAccesses.read(StreamAccesses.extent(inputs, rows: rows, stride: inputSize))
        sideAccesses.read(StreamAccesses.extent(gradient, rows: rows, stride: outputSize))
        sideAccesses.write(StreamAccesses.extent(weightGradient, rows: inputSize, stride: outputSize))
    }

    /// Whether the side and update streams' queued work writes `gradients` or touches `parameters` or a state slot.
    func otherStreamsUse(parameters: DevicePointer<Float>, gradients: DevicePointer<Float>, state: DevicePointer<Float>, count: Int, stateStride: Int, slots: Int) -> Bool {
        if sideAccesses.writes(into: StreamAccesses.extent(gradients, rows: 1, stride: count)) { return true }
        if sideAccesses.uses(StreamAccesses.extent(parameters, rows: 1, stride: count)) { return true }
        for slot in 0..<slots where sideAccesses.uses(StreamAccesses.extent(state + slot * stateStride, rows: 1, stride: count)) { return true }
        return false
    }
}
