import Foundation
import MNIST
import Synchronization

/// A dataset that stays in host memory and reaches the backend a batch at a time, for data larger than the backend's
/// memory (or sharing it): producer threads gather each coming batch's samples, in their stored type, into the
/// uploader's host buffers (pinned, for the cuda backend) up to `hostBufferCount` batches ahead; each batch is copied
/// into one of `windowCount` windows in backend memory while the step before it runs, and the network gathers and
/// normalises it there exactly as from a `ResidentDataset`. The same seed therefore gives the same weights streamed
/// or resident.
///
/// Backend memory holds the windows (a few batches), and host memory the host buffers: neither holds a second copy
/// of the set.
public final class StreamedDataset: BatchSource {
    /// The backend the batches are streamed to.
    public let backend: any Backend
    /// The samples, in host memory.
    public let samples: LabeledSamples
    /// The most samples in one batch.
    public let batchCapacity: Int
    public var count: Int { samples.count }
    public var featureCount: Int { samples.featureCount }
    public var valueType: SampleValueType { samples.values.type }
    public var classCount: Int { samples.classCount }
    public var targetCount: Int { samples.targetCount }
    public var hostTargets: [Float] { samples.targets }
    public var residentParts: [ResidentDataset] { windows }

    /// The producer threads, each gathering every `producerCount`-th batch: a quarter of the host's cores, 1 to 4
    /// (gathering rows from random places in host memory is slow: on the GPU host, two threads fell behind a TF32 step
    /// at small-1024, see Benchmarks/RESULTS.md).
    public let producerCount: Int
    /// Host buffers: batches gathered ahead, two for each producer (at least four).
    public let hostBufferCount: Int
    /// Windows in backend memory: a batch is copied into one while the step before reads the other.
    public static let windowCount = 2

    /// Where a batch's parts lie in a host buffer and in a window, in bytes: the values, then the labels (each
    /// sample's class, or for a regression its row in the window), then a regression's targets.
    struct Layout {
        let labels: Int, targets: Int, bytes: Int
        init(capacity: Int, features: Int, valueSize: Int, targets targetCount: Int) {
            func aligned(_ n: Int) -> Int { (n + 63) / 64 * 64 }
            labels = aligned(capacity * features * valueSize)
            targets = labels + aligned(capacity * 4)
            bytes = targets + aligned(capacity * targetCount * 4)
        }
    }
    let layout: Layout
    /// The parts of a window a batch of `rows` samples fills (its values, labels and targets), by batch size: a pass
    /// has two sizes at most, so these are made once and looked up at each batch.
    private var rangesByRows: [Int: [Range<Int>]] = [:]
    /// Bytes copied to the backend for a batch of `rows` samples.
    public func batchBytes(rows: Int) -> Int { ranges(rows: rows).reduce(0) { $0 + $1.count } }
    let uploader: any BatchUploader
    /// One allocation holding every window.
    let memory: DevicePointer<UInt8>
    let windows: [ResidentDataset]
    /// `0, 1, …, batchCapacity - 1`: a batch's rows in its window.
    let windowRows: [Int32]
    /// The pass in progress, ended when the next one starts.
    private weak var currentPass: StreamedPass?

    /// Sets up streaming of `samples` to `backend` in batches of at most `batchCapacity` samples.
    /// - Throws: when the host buffers (pinned memory) or the windows cannot be allocated.
    public convenience init(_ samples: LabeledSamples, on backend: any Backend, batchCapacity: Int) throws {
        try self.init(samples, on: backend, batchCapacity: batchCapacity, uploader: nil, producers: nil)
    }

    /// With `uploader` in place of the backend's (the tests' failing one), and `producers` threads in place of a
    /// quarter of the cores (the tests run several on a machine of two).
    init(_ samples: LabeledSamples, on backend: any Backend, batchCapacity: Int, uploader: (any BatchUploader)?, producers: Int?) throws {
        precondition(batchCapacity >= 1, "batch capacity \(batchCapacity)")
        self.backend = backend
        self.samples = samples
        self.batchCapacity = batchCapacity
        producerCount = producers ?? min(4, max(1, ProcessInfo.processInfo.activeProcessorCount / 4))
        hostBufferCount = max(4, 2 * producerCount)
        layout = Layout(capacity: batchCapacity, features: samples.featureCount, valueSize: samples.values.type.size,
                        targets: samples.targetCount)
        self.uploader = try uploader ?? backend.makeBatchUploader(buffers: hostBufferCount, bytes: layout.bytes)
        memory = try backend.allocate(UInt8.self, count: Self.windowCount * layout.bytes)
        windowRows = (0..<Int32(batchCapacity)).map { $0 }
        var windows = [ResidentDataset]()
        for w in 0..<Self.windowCount {
            let base = memory + w * layout.bytes
            windows.append(ResidentDataset(
                window: batchCapacity, of: samples, values: base,
                labels: DevicePointer(address: (base + layout.labels).address),
                targets: samples.isRegression ? DevicePointer(address: (base + layout.targets).address) : nil, on: backend))
        }
        self.windows = windows
    }

    deinit {
        currentPass?.end()
        // Copies may still be in flight into the windows (a pass ended early leaves the next batch's): let every copy
        // land, and the steps that read the windows finish, before the memory goes.
        for buffer in 0..<hostBufferCount { try? uploader.waitUntilRead(buffer) }
        try? backend.synchronize()
        backend.free(memory)
    }

    public func pass(_ batches: [ArraySlice<Int32>]) throws -> any BatchPass {
        currentPass?.end()
        precondition(batches.allSatisfy { $0.count <= batchCapacity }, "a batch larger than the stream's \(batchCapacity)")
        let pass = StreamedPass(self, batches)
        currentPass = pass
        return pass
    }

    func ranges(rows: Int) -> [Range<Int>] {
        if let ranges = rangesByRows[rows] { return ranges }
        var ranges = [0..<rows * featureCount * valueType.size, layout.labels..<layout.labels + rows * 4]
        if samples.isRegression { ranges.append(layout.targets..<layout.targets + rows * targetCount * 4) }
        rangesByRows[rows] = ranges
        return ranges
    }

    /// Gathers `batch`'s samples into a host buffer laid out as `layout`.
    func fill(_ buffer: UnsafeMutableRawPointer, with batch: ArraySlice<Int32>) {
        let rowBytes = featureCount * valueType.size
        func copyRows(_ source: UnsafeRawBufferPointer) {
            for (r, sample) in batch.enumerated() {
                (buffer + r * rowBytes).copyMemory(from: source.baseAddress! + Int(sample) * rowBytes, byteCount: rowBytes)
            }
        }
        switch samples.values {
        case .bytes(let values): values.withUnsafeBytes(copyRows)
        case .floats(let values): values.withUnsafeBytes(copyRows)
        }
        let labels = (buffer + layout.labels).assumingMemoryBound(to: Int32.self)
        if samples.isRegression {
            let k = targetCount
            let targets = (buffer + layout.targets).assumingMemoryBound(to: Float.self)
            samples.targets.withUnsafeBufferPointer { all in
                for (r, sample) in batch.enumerated() {
                    labels[r] = Int32(r)
                    (targets + r * k).update(from: all.baseAddress! + Int(sample) * k, count: k)
                }
            }
        } else {
            samples.labels.withUnsafeBufferPointer { all in
                for (r, sample) in batch.enumerated() { labels[r] = all[Int(sample)] }
            }
        }
    }
}

/// One pass of a `StreamedDataset`: producer threads fill the host buffers in turn (batch `u` in buffer
/// `u % hostBufferCount`, by producer `u % producerCount`); `next()` sends each batch to its window one step ahead of
/// the step that reads it.
///
/// The semaphores order everything between the threads: `filled[h]` (the producer filled buffer `h`, or stopped with an
/// error) and `emptied[h]` (the copy from `h` is queued, so its producer may wait for it to be read and refill it).
/// They start at zero (a semaphore must not be released below its starting value).
final class StreamedPass: BatchPass, @unchecked Sendable {
    let source: StreamedDataset
    let batches: [ArraySlice<Int32>]
    private let filled: [DispatchSemaphore], emptied: [DispatchSemaphore]
    private let producersDone = DispatchSemaphore(value: 0)
    private let stopping = Atomic<Bool>(false)
    /// A producer's failure, by buffer, read after `filled[h]`.
    private var failures: [Error?]
    /// Batches sent to their windows, and handed to the caller.
    private var sent = 0, handed = 0
    private var ended = false

    init(_ source: StreamedDataset, _ batches: [ArraySlice<Int32>]) {
        self.source = source
        self.batches = batches
        let buffers = source.hostBufferCount
        filled = (0..<buffers).map { _ in DispatchSemaphore(value: 0) }
        emptied = (0..<buffers).map { _ in DispatchSemaphore(value: 0) }
        failures = Array(repeating: nil, count: buffers)
        for semaphore in emptied { semaphore.signal() }
        for producer in 0..<source.producerCount {
            let thread = Thread { [self] in produce(producer) }
            thread.name = "mlp batch producer \(producer)"
            thread.start()
        }
    }

    deinit { end() }

    /// Producer `p`'s loop: batches `p`, `p + producerCount`, … into their buffers, each once its last copy has read it.
    private func produce(_ p: Int) {
        defer { producersDone.signal() }
        let buffers = source.hostBufferCount
        for u in stride(from: p, to: batches.count, by: source.producerCount) {
            let h = u % buffers
            emptied[h].wait()
            if stopping.load(ordering: .acquiring) { return }
            do {
                try source.uploader.waitUntilRead(h)
                source.fill(source.uploader.hostBuffers[h], with: batches[u])
            } catch {
                failures[h] = error
                filled[h].signal()
                return
            }
            filled[h].signal()
        }
    }

    func next() throws -> PassBatch? {
        guard !ended, handed < batches.count else { return nil }
        let windows = source.windows
        // The step before is queued: its window may be refilled once that step has run.
        if handed > 0 { try source.uploader.release(windows[(handed - 1) % windows.count].values) }
        // This batch and the one after are on their way (the next copy overlaps this step).
        while sent <= min(handed + 1, batches.count - 1) {
            let h = sent % source.hostBufferCount
            filled[h].wait()
            if let failure = failures[h] {
                end()
                throw failure
            }
            try source.uploader.send(h, ranges: source.ranges(rows: batches[sent].count), to: windows[sent % windows.count].values)
            emptied[h].signal()
            sent += 1
        }
        let window = windows[handed % windows.count]
        try source.uploader.acquire(window.values)
        defer { handed += 1 }
        return PassBatch(data: window, rows: source.windowRows[0..<batches[handed].count], samples: batches[handed], next: nil)
    }

    func end() {
        guard !ended else { return }
        ended = true
        // The last batch's step is queued: the next pass's copies into its window wait for it (a pass that follows at
        // once, as a benchmark's next epoch does, must not overwrite a batch still being read).
        if handed > 0 { try? source.uploader.release(source.windows[(handed - 1) % source.windows.count].values) }
        stopping.store(true, ordering: .releasing)
        // Wake producers waiting for a buffer; each then sees `stopping` and returns.
        for semaphore in emptied { semaphore.signal() }
        for _ in 0..<source.producerCount { producersDone.wait() }
    }
}
