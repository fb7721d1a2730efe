import MLPCore

/// With `MLP_CUDA_TRACE=1`: timing events between a recorded step's operations, read after each replay.
extension CUDABackend {
    /// While recording with `MLP_CUDA_TRACE=1`, a timing event on the main stream after what was queued so far.
    func mark(_ label: @autoclosure () -> String) {
        guard options.traces, case .capturing(let graph) = mode else { return }
        record {
            var event: OpaquePointer?
            try driver.check(driver.cuEventCreate(&event, 0), "cuEventCreate(trace)")
            try driver.check(driver.cuEventRecordWithFlags(event, stream, 1), "cuEventRecordWithFlags(trace, external)")
            graph.marks.append((label(), event))
        }
    }

    /// Adds the intervals between `graph`'s marks in its last replay (finished) to the totals.
    func readMarks(_ graph: StepGraph) {
        for i in graph.marks.indices.dropFirst() {
            var milliseconds: Float = 0
            guard driver.cuEventElapsedTime(&milliseconds, graph.marks[i - 1].event, graph.marks[i].event) == 0 else { continue }
            let label = graph.marks[i].label
            if traceTotals[label] == nil { traceOrder.append(label) }
            let old = traceTotals[label] ?? (0, 0)
            traceTotals[label] = (old.seconds + Double(milliseconds) / 1000, old.count + 1)
        }
    }

    /// With `MLP_CUDA_TRACE=1`: the mean time of each operation of the recorded steps replayed since the last call,
    /// from the end of the operation before it to its own end on the main stream (so a wait for the second stream
    /// counts with the operation that waited), in step order; then forgets them. The events are nodes of the graph
    /// themselves and lengthen the step a little.
    public func takeTrace() -> [(label: String, microseconds: Double, count: Int)] {
        defer { traceTotals = [:]; traceOrder = [] }
        return traceOrder.map { label in
            let t = traceTotals[label]!
            return (label, t.seconds / Double(t.count) * 1e6, t.count)
        }
    }
}
