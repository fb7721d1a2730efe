import CAllocationCounter
import CPUBackend
import MLPCore
import MNIST
import Testing
import TestSupport
import Glibc

/// A warmed-up training step on the cpu backend allocates nothing on the heap.
///
/// How: the test binary interposes malloc, calloc, realloc, posix_memalign, aligned_alloc and memalign
/// (`CAllocationCounter`), counting calls from the threads that opted in: the test's own thread and every thread of
/// the backend's pool. Counting only those threads keeps allocations of tests running beside this one out.
/// It runs in the debug build `swift test` makes, where generic code allocates more than in a release build, so
/// passing here is the stronger statement.
@Suite(.serialized) struct AllocationTests {
    /// On dense random images (the dense products) and on MNIST's (products that skip the inputs' zeros).
    @Test(arguments: [false, true])
    func aWarmedUpStepAllocatesNothing(sparse: Bool) throws {
        #if os(Linux)
        let during = try allocationsInWarmedUpSteps(sparse: sparse, precision: .fp32, batch: 50)
        #expect(during == 0, "\(during) heap allocations in 3 training steps")
        #endif
    }

    /// The same with bf16 products, at a batch of 130 so that every product but the output layer's takes them (the
    /// bf16 buffers grow on the first step, then are kept).
    @Test(.enabled(if: CPUBackend.supportsBF16, "this CPU lacks AVX-512 BF16"), arguments: [false, true])
    func aWarmedUpBF16StepAllocatesNothing(sparse: Bool) throws {
        #if os(Linux)
        let during = try allocationsInWarmedUpSteps(sparse: sparse, precision: .bf16, batch: 130)
        #expect(during == 0, "\(during) heap allocations in 3 bf16 training steps")
        #endif
    }

    /// Heap allocations on the test's and the pool's threads during three training steps after a first one.
    private func allocationsInWarmedUpSteps(sparse: Bool, precision: CPUBackend.Precision, batch: Int) throws -> Int {
        let backend = try CPUBackend(threads: 2, precision: precision)
        let spec = try NetworkSpec(layerSizes: [784, 67, 33, 10])
        let optimizer = OptimizerConfiguration.adam()
        let network = try Network(spec: spec, optimizer: optimizer, backend: backend, maxBatch: batch)
        let count = 4 * batch
        let images = sparse ? try Dataset.load(directory: bundledMNIST).train.subset(0..<count)
            : syntheticImages(count: count, rows: 28, columns: 28, classes: 10)
        let data = try ResidentDataset(images, on: backend)
        var g = SeededGenerator(seed: 1)
        network.setParameters(ParameterLayout(spec).initialParameters(for: spec, using: &g))
        let epoch = EpochBatches(indices: (0..<count).map(Int32.init), batchSize: batch, dropLast: true, generator: &g)
        network.trainStep(data, batch: epoch.order[epoch.range(ofBatch: 0)], step: optimizer.step(1, learningRate: 1e-3))
        #expect(backend.skipsZerosOfLastBatch == sparse)

        // The counter works: an allocation on a counted thread is seen.
        mlp_reset_allocation_count()
        backend.pool.runOnEveryThread { mlp_count_allocations_on_this_thread(1) }
        let probe = [Int](repeating: 7, count: Int.random(in: 100...200))
        #expect(mlp_allocation_count() >= 1, "the allocation counter saw nothing (\(probe.count))")

        // MLP_TRAP_ALLOCATIONS=1 makes the first counted allocation trap, so that the crash backtrace shows where
        // it came from.
        let trap = getenv("MLP_TRAP_ALLOCATIONS") != nil
        mlp_reset_allocation_count()
        if trap { mlp_trap(1) }
        for b in 1..<4 {
            network.trainStep(data, batch: epoch.order[epoch.range(ofBatch: b)], step: optimizer.step(b + 1, learningRate: 1e-3))
            _ = network.readTrainingMetrics()  // the trainer's loss check after every step
        }
        let during = mlp_allocation_count()
        mlp_trap(0)
        backend.pool.runOnEveryThread { mlp_count_allocations_on_this_thread(0) }
        return Int(during)
    }
}
