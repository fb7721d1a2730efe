import Foundation
import MLPCore

/// The products' algorithms chosen inside whole replayed training steps (`TrainingStep.tunes`, which `Network.warmUp`
/// sets for the step an epoch repeats).
extension CUDABackend {
    /// Steps longer than this are not tuned whole: their products are large enough that the time each takes alone
    /// decides, and each trial would take milliseconds.
    static let stepTuningLimit = 500e-6
    /// A candidate replaces the choice only if the step gets faster by more than this fraction, so that one that
    /// measures faster by chance does not (the choice is kept for later runs).
    static let stepTuningMargin = 0.005

    /// Chooses the algorithm of each product of the step `key` by timing whole replayed steps, one product at a time,
    /// each of its candidates in turn (those within 1.5× of the fastest alone), keeping a candidate only if the step
    /// gets faster. Timing alone does not see what the step's other kernels do to a product: a product beside another
    /// stream's product runs slower than alone, and a candidate that was slower alone can make the step faster
    /// (Benchmarks/RESULTS.md). The choices go to the tuning cache, with a record that this step's products were chosen
    /// together, so that later runs skip the search. `MLP_CUDA_OFF=step-tuning` turns it off; the step then runs once,
    /// as any other.
    func tuneStep(_ key: RecordingKey, _ schedule: StepSchedule, _ queue: (StepSchedule) -> Void) {
        func step() { runStep(key, schedule, queue) }
        guard usesGraphs, options.uses(.stepTuning), !options.traces, planner.tunes, pendingError == nil, runsDirectly else {
            return step()
        }
        // Until the step is recorded: run directly (its products planned and timed alone), then recorded twice.
        for _ in 0..<3 { step() }
        // The products whose choice timing made (and the cache keeps); not those that add to their output.
        let plans = lastRecordedPlans.filter { $0.tuned && $0.key != nil && $0.candidates.count > 1 }
        guard !plans.isEmpty, !planner.stepChoicesKnown(plans) else { return }
        let started = DispatchTime.now().uptimeNanoseconds
        // Each trial records the step twice: one log line for the search, not two recordings' worth per trial.
        recordsQuietly = true
        defer { recordsQuietly = false }
        do {
            var best = try stepSeconds(step)
            guard best <= Self.stepTuningLimit else {
                // Kept too, so that later runs do not measure the step again.
                planner.recordStepChoices(plans, summary: String(format: "not searched: %.0f µs a step, over the limit of %.0f", best * 1e6, Self.stepTuningLimit * 1e6))
                return
            }
            let first = best
            var trials = 0
            for plan in plans {
                let fastestAlone = plan.timesAlone.compactMap { $0 }.min()
                var kept = plan.chosen
                for candidate in plan.candidates.indices where candidate != kept {
                    if let fastestAlone, plan.timesAlone.indices.contains(candidate) {
                        guard let alone = plan.timesAlone[candidate], alone <= 1.5 * fastestAlone else { continue }
                    }
                    plan.chosen = candidate
                    discardRecordings()
                    let seconds = try stepSeconds(step)
                    trials += 1
                    if seconds < best * (1 - Self.stepTuningMargin) {
                        best = seconds
                        kept = candidate
                    }
                }
                plan.chosen = kept
            }
            discardRecordings()
            let summary = String(format: "%.1f µs a step, from %.1f with the products timed alone (%d trials)", best * 1e6, first * 1e6, trials)
            planner.recordStepChoices(plans, summary: summary)
            log((planner.report.last ?? summary) + String(format: " (in %.0f ms)", Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6))
        } catch {
            pendingError = pendingError ?? (error as? CUDAError ?? CUDAError("\(error)"))
        }
    }

    /// The GPU's seconds per replayed step: the fastest of three runs of several steps, after three untimed ones (which
    /// record the step again if its recordings were discarded).
    private func stepSeconds(_ step: () -> Void) throws -> Double {
        for _ in 0..<3 { step() }
        var start: OpaquePointer?, stop: OpaquePointer?
        try driver.check(driver.cuEventCreate(&start, 0), "cuEventCreate")
        try driver.check(driver.cuEventCreate(&stop, 0), "cuEventCreate")
        defer { _ = driver.cuEventDestroy(start); _ = driver.cuEventDestroy(stop) }
        var fastest = Double.infinity, count = 10
        for _ in 0..<3 {
            try driver.check(driver.cuEventRecord(start, stream), "cuEventRecord")
            for _ in 0..<count { step() }
            try driver.check(driver.cuEventRecord(stop, stream), "cuEventRecord")
            try driver.check(driver.cuEventSynchronize(stop), "cuEventSynchronize")
            if let pendingError { throw pendingError }
            var milliseconds: Float = 0
            try driver.check(driver.cuEventElapsedTime(&milliseconds, start, stop), "cuEventElapsedTime")
            let seconds = Double(milliseconds) / 1e3 / Double(count)
            fastest = min(fastest, seconds)
            // About 2 ms of steps a run, 10 to 40 of them.
            count = max(10, min(40, Int(2e-3 / seconds)))
        }
        return fastest
    }
}
