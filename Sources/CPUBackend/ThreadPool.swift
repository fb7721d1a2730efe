import Foundation
import Synchronization

/// A fixed set of worker threads that run the parts of one operation at a time, with the calling thread taking
/// part. Made once per backend: a step issues a dozen parallel operations, and starting threads (or going
/// through a general-purpose queue) for each would cost more than the smaller ones take.
///
/// Workers spin for about a millisecond after each job, because the next one usually follows within microseconds, then sleep
/// on a condition variable so that an idle pool costs nothing (and leaves the cores to a BLAS's own threads).
public final class ThreadPool: @unchecked Sendable {
    /// Threads that run parts, the caller included.
    public let threadCount: Int
    private let state = SharedState()

    /// What the caller and the workers share. Workers hold it (not the pool), so the pool can go away while
    /// they wind down.
    final class SharedState: @unchecked Sendable {
        let generation = Atomic<Int>(0)
        let nextTask = Atomic<Int>(0)
        let remaining = Atomic<Int>(0)
        let stopping = Atomic<Bool>(false)
        /// Workers inside `work()`: the caller waits for 0 before it sets up the next job, so that no late worker
        /// takes a task index of the new job with the old one's count.
        let active = Atomic<Int>(0)
        var taskCount = 0
        var job: ((Int) -> Void)?
        let lock = NSCondition()
        var sleepers = 0

        func work() {
            while true {
                let t = nextTask.wrappingAdd(1, ordering: .sequentiallyConsistent).oldValue
                if t >= taskCount { return }
                job!(t)
                remaining.subtract(1, ordering: .sequentiallyConsistent)
            }
        }

        func workerLoop() {
            var seen = generation.load(ordering: .sequentiallyConsistent)
            while true {
                // Spin for about a millisecond before sleeping: between the operations of a step there is
                // single-threaded work of tens of microseconds, and waking a sleeping thread costs as much again
                // (far more in a virtual machine).
                var current = generation.load(ordering: .sequentiallyConsistent)
                let spinUntil = DispatchTime.now().uptimeNanoseconds + 1_000_000
                var spins = 0
                while current == seen {
                    spins &+= 1
                    if spins & 1023 == 0 && DispatchTime.now().uptimeNanoseconds > spinUntil { break }
                    current = generation.load(ordering: .sequentiallyConsistent)
                }
                if current == seen {
                    lock.lock()
                    sleepers += 1
                    while generation.load(ordering: .sequentiallyConsistent) == seen { lock.wait() }
                    sleepers -= 1
                    lock.unlock()
                    current = generation.load(ordering: .sequentiallyConsistent)
                }
                seen = current
                if stopping.load(ordering: .sequentiallyConsistent) { return }
                active.add(1, ordering: .sequentiallyConsistent)
                if remaining.load(ordering: .sequentiallyConsistent) > 0 { work() }
                active.subtract(1, ordering: .sequentiallyConsistent)
            }
        }
    }

    /// - Parameters:
    ///   - threadCount: threads in all, the caller included (1: everything runs on the caller).
    ///   - workerStart: run first on each worker thread (the cpu backend sets its floating-point mode there).
    public init(threadCount: Int, workerStart: (@Sendable () -> Void)? = nil) {
        self.threadCount = max(1, threadCount)
        for index in 1..<self.threadCount {
            let thread = Thread { [state] in
                workerStart?()
                state.workerLoop()
            }
            thread.name = "mlp-cpu-\(index)"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    deinit {
        state.stopping.store(true, ordering: .sequentiallyConsistent)
        state.lock.lock()
        state.generation.add(1, ordering: .sequentiallyConsistent)
        state.lock.broadcast()
        state.lock.unlock()
    }

    /// Runs `body` once on every thread of the pool, the caller included (for per-thread set-up, and for tests
    /// that watch each thread).
    public func runOnEveryThread(_ body: @escaping () -> Void) {
        let arrived = Atomic<Int>(0)
        let n = threadCount
        run(tasks: n) { _ in
            body()
            // Hold each thread here until all have arrived, so that no thread can take a second task.
            arrived.add(1, ordering: .sequentiallyConsistent)
            while arrived.load(ordering: .sequentiallyConsistent) < n {}
        }
    }

    /// Runs `job(0)`, …, `job(tasks − 1)` across the threads and returns when all have finished.
    ///
    /// The job is an escaping closure that the caller makes once and keeps (the cpu backend binds one per
    /// operation when it starts): a closure made per call would be a heap allocation per call.
    public func run(tasks: Int, _ job: @escaping (Int) -> Void) {
        if tasks <= 0 { return }
        if tasks == 1 || threadCount == 1 {
            for t in 0..<tasks { job(t) }
            return
        }
        let s = state
        s.job = job
        s.taskCount = tasks
        s.nextTask.store(0, ordering: .sequentiallyConsistent)
        s.remaining.store(tasks, ordering: .sequentiallyConsistent)
        s.lock.lock()
        s.generation.add(1, ordering: .sequentiallyConsistent)
        if s.sleepers > 0 { s.lock.broadcast() }
        s.lock.unlock()
        s.work()
        while s.remaining.load(ordering: .sequentiallyConsistent) > 0 || s.active.load(ordering: .sequentiallyConsistent) > 0 {}
        s.job = nil
    }
}
