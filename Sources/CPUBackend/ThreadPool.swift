import Foundation
import Synchronization

/// A fixed set of worker threads that run the parts of one operation at a time, with the calling thread taking
/// part. Made once per backend: a step issues a dozen parallel operations, and starting threads (or going
/// through a general-purpose queue) for each would cost more than the smaller ones take.
///
/// Workers spin briefly after each job, because the next one usually follows within microseconds, then sleep
/// on a condition variable so that an idle pool costs nothing (and leaves the cores to a BLAS's own threads).
public final class ThreadPool: @unchecked Sendable {
    /// Threads that run parts, the caller included.
    public let threadCount: Int

    private let generation = Atomic<Int>(0)
    private let nextTask = Atomic<Int>(0)
    private let remaining = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    /// Workers inside `work()`: the caller waits for 0 before it sets up the next job, so that no late worker
    /// takes a task index of the new job with the old one's count.
    private let active = Atomic<Int>(0)
    private var taskCount = 0
    private var job: ((Int) -> Void)?
    private let lock = NSCondition()
    private var sleepers = 0
    private var threads = [Thread]()

    /// - Parameter threadCount: threads in all, the caller included (1: everything runs on the caller).
    public init(threadCount: Int) {
        self.threadCount = max(1, threadCount)
        for index in 1..<self.threadCount {
            let thread = Thread { [unowned self] in self.workerLoop() }
            thread.name = "mlp-cpu-\(index)"
            thread.stackSize = 1 << 20
            threads.append(thread)
            thread.start()
        }
    }

    deinit {
        stopping.store(true, ordering: .sequentiallyConsistent)
        lock.lock()
        generation.add(1, ordering: .sequentiallyConsistent)
        lock.broadcast()
        lock.unlock()
        // Workers hold an unowned reference: wait until they have all left their loop.
        while remainingWorkers.load(ordering: .sequentiallyConsistent) > 0 { usleep(100) }
    }

    private let remainingWorkers = Atomic<Int>(0)

    /// Runs `body(0)`, …, `body(tasks − 1)` across the threads and returns when all have finished.
    public func run(tasks: Int, _ body: (Int) -> Void) {
        if tasks <= 0 { return }
        if tasks == 1 || threadCount == 1 {
            for t in 0..<tasks { body(t) }
            return
        }
        withoutActuallyEscaping(body) { body in
            job = body
            taskCount = tasks
            nextTask.store(0, ordering: .sequentiallyConsistent)
            remaining.store(tasks, ordering: .sequentiallyConsistent)
            lock.lock()
            generation.add(1, ordering: .sequentiallyConsistent)
            if sleepers > 0 { lock.broadcast() }
            lock.unlock()
            work()
            while remaining.load(ordering: .sequentiallyConsistent) > 0 || active.load(ordering: .sequentiallyConsistent) > 0 {}
            job = nil
        }
    }

    private func work() {
        while true {
            let t = nextTask.wrappingAdd(1, ordering: .sequentiallyConsistent).oldValue
            if t >= taskCount { return }
            job!(t)
            remaining.subtract(1, ordering: .sequentiallyConsistent)
        }
    }

    private func workerLoop() {
        remainingWorkers.add(1, ordering: .sequentiallyConsistent)
        var seen = generation.load(ordering: .sequentiallyConsistent)
        while true {
            var spins = 0
            var current = generation.load(ordering: .sequentiallyConsistent)
            while current == seen && spins < 20_000 {
                spins += 1
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
            if stopping.load(ordering: .sequentiallyConsistent) { break }
            active.add(1, ordering: .sequentiallyConsistent)
            if remaining.load(ordering: .sequentiallyConsistent) > 0 { work() }
            active.subtract(1, ordering: .sequentiallyConsistent)
        }
        remainingWorkers.subtract(1, ordering: .sequentiallyConsistent)
    }

    /// Splits `0..<count` into `parts` contiguous ranges whose boundaries are multiples of `alignment`.
    public static func split(_ count: Int, parts: Int, alignment: Int = 1) -> [Range<Int>] {
        let units = (count + alignment - 1) / alignment
        let p = max(1, min(parts, units))
        return (0..<p).map { i in
            let lo = min(count, (units * i / p) * alignment)
            let hi = min(count, (units * (i + 1) / p) * alignment)
            return lo..<hi
        }
    }
}
