@testable import CUDABackend
import Foundation
import Testing

/// The file of timed algorithm choices: what is recorded is found again by a later process with the same context,
/// not with another, and a damaged file is ignored and replaced. (No GPU needed.)
@Suite struct TuningCacheTests {
    static func key(m: Int, epilogue: CUBLASLt.Epilogue = .none) -> MatmulKey {
        MatmulKey(transposeA: true, transposeB: false, m: m, n: 512, k: 128, lda: m, ldb: 512, ldc: 512,
                  epilogue: epilogue, alignA: 16, alignB: 256, alignC: 4, alignBias: 256)
    }

    static func temporaryFile() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("mlp-tuning-\(UUID().uuidString)")
            .appendingPathComponent("sub").appendingPathComponent("cache.json")
    }

    @Test func aRecordedChoiceIsFoundByTheNextProcessWithTheSameContextOnly() throws {
        let url = Self.temporaryFile()
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent().deletingLastPathComponent()) }
        let candidates: [MatmulAlgorithm] = (0..<5).map { i in .lt(algorithm: (0..<64).map { UInt8(($0 * 37 + i) % 256) }, workspace: 4096) }
        let choice = TuningCache.encode(candidates, chosen: 3)
        #expect(choice == "lt:3 of 5")
        #expect(TuningCache.decode(choice, candidates: candidates) == 3)
        #expect(TuningCache.decode(TuningCache.encode(candidates, chosen: 4), candidates: candidates) == 4)
        // Another library's list (another length), or a choice this build cannot make: timed again.
        #expect(TuningCache.decode(choice, candidates: Array(candidates.prefix(4))) == nil)
        #expect(TuningCache.decode("tiled:32x64/3", candidates: candidates) == nil)
        let first = TuningCache(url: url, context: "H100, fp32")
        #expect(first.choice(for: Self.key(m: 784)) == nil)
        try first.record(choice, for: Self.key(m: 784))
        try first.record(TuningCache.encode(candidates, chosen: 1), for: Self.key(m: 783, epilogue: .reluBias))

        let second = TuningCache(url: url, context: "H100, fp32")
        #expect(second.choice(for: Self.key(m: 784)) == choice)
        #expect(second.choice(for: Self.key(m: 783, epilogue: .reluBias)) == "lt:1 of 5")
        #expect(second.choice(for: Self.key(m: 783)) == nil)  // another epilogue is another product
        var bf16 = Self.key(m: 784)
        bf16.bf16 = true
        #expect(second.choice(for: bf16) == nil)  // and bf16 operands another
        #expect(TuningCache(url: url, context: "H100, tf32").choice(for: Self.key(m: 784)) == nil)
    }

    /// The record that a step's products were chosen together is found by a later process for the same set of
    /// products, in whatever order they come, and not for another set or another context.
    @Test func aStepsChoicesAreFoundForTheSameProductsInAnyOrder() throws {
        let url = Self.temporaryFile()
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent().deletingLastPathComponent()) }
        let products = [Self.key(m: 784), Self.key(m: 512, epilogue: .reluBias), Self.key(m: 256)]
        let first = TuningCache(url: url, context: "H200, fp32")
        #expect(first.stepChoice(for: products) == nil)
        try first.recordStepChoice("47.7 µs a step", for: products)
        try first.record("lt:1 of 7", for: Self.key(m: 784))

        let second = TuningCache(url: url, context: "H200, fp32")
        #expect(second.stepChoice(for: products.reversed()) == "47.7 µs a step")
        #expect(second.stepChoice(for: Array(products.prefix(2))) == nil)
        #expect(second.stepChoice(for: products + [Self.key(m: 10)]) == nil)
        #expect(second.choice(for: Self.key(m: 784)) == "lt:1 of 7")
        #expect(TuningCache(url: url, context: "H200, tf32").stepChoice(for: products) == nil)
    }

    /// A split variant is named by the heuristic's algorithm it was made from, counted among the heuristic's only,
    /// so that a later process can make it again from a list without the other variants.
    @Test func aSplitVariantIsNamedByItsBase() {
        let heuristic: [MatmulAlgorithm] = (0..<4).map { i in .lt(algorithm: (0..<64).map { UInt8(($0 * 11 + i) % 256) }, workspace: 0) }
        let variant = SplitVariant(base: 2, parts: 4, scheme: 1)
        let timed = heuristic + [.lt(algorithm: [UInt8](repeating: 7, count: 64), workspace: 1024, splits: 4, variant: variant)]
        let text = TuningCache.encode(timed, chosen: 4)
        #expect(text == "lt:2 of 4, k in 4/1")
        #expect(TuningCache.encode(timed, chosen: 3) == "lt:3 of 4")  // the variants do not change the count
        #expect(TuningCache.decode(text, candidates: timed) == 4)
        // The next process has the heuristic's list only: the variant is found by its description.
        #expect(TuningCache.decode(text, candidates: heuristic) == nil)
        #expect(TuningCache.decodeVariant(text, candidates: heuristic) == variant)
        #expect(TuningCache.decodeVariant(text, candidates: Array(heuristic.prefix(3))) == nil)  // another list
        #expect(TuningCache.decodeVariant("lt:3 of 4", candidates: heuristic) == nil)
        #expect(TuningCache.decodeVariant("lt:9 of 4, k in 4/1", candidates: heuristic) == nil)
    }

    @Test func twoProcessesSavingKeepEachOthersEntries() throws {
        let url = Self.temporaryFile()
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent().deletingLastPathComponent()) }
        let a = TuningCache(url: url, context: "card")
        let b = TuningCache(url: url, context: "card")
        try a.record("lt:aa", for: Self.key(m: 100))
        try b.record("lt:bb", for: Self.key(m: 200))
        let c = TuningCache(url: url, context: "card")
        #expect(c.choice(for: Self.key(m: 100)) == "lt:aa")
        #expect(c.choice(for: Self.key(m: 200)) == "lt:bb")
    }

    @Test func aDamagedFileIsIgnoredAndReplaced() throws {
        let url = Self.temporaryFile()
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent().deletingLastPathComponent()) }
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("{\"format\": 1, \"entries\": {\"x\": ".utf8).write(to: url)
        let cache = TuningCache(url: url, context: "card")
        #expect(cache.entries.isEmpty)
        try cache.record("lt:01", for: Self.key(m: 5))
        #expect(TuningCache(url: url, context: "card").choice(for: Self.key(m: 5)) == "lt:01")
    }

    @Test func theFileIsChosenFromTheEnvironment() {
        #expect(CUDAOptions(environment: ["MLP_CUDA_TUNE_CACHE": "0", "HOME": "/home/u"]).tuningCache == nil)
        #expect(CUDAOptions(environment: ["MLP_CUDA_TUNE_CACHE": "/tmp/t.json"]).tuningCache?.path == "/tmp/t.json")
        #expect(CUDAOptions(environment: ["XDG_CACHE_HOME": "/c", "HOME": "/home/u"]).tuningCache?.path == "/c/mlp/cublaslt-tuning.json")
        #expect(CUDAOptions(environment: ["HOME": "/home/u"]).tuningCache?.path == "/home/u/.cache/mlp/cublaslt-tuning.json")
        #expect(CUDAOptions(environment: [:]).tuningCache == nil)
    }
}

/// The cuda backend's switches, read from the environment once. (No GPU needed.)
@Suite struct CUDAOptionsTests {
    @Test func theDefaultsTurnEveryStrategyOn() {
        let options = CUDAOptions(environment: ["HOME": "/home/u"])
        #expect(CUDAOptions.Strategy.allCases.allSatisfy(options.uses))
        #expect(!options.synchronizesEachOperation && options.timesAlgorithms && !options.traces && options.problems.isEmpty)
        #expect(options.description.contains("MLP_CUDA_OFF=(none)"))
    }

    @Test func eachSwitchIsRead() {
        let options = CUDAOptions(environment: ["MLP_CUDA_SYNC": "1", "MLP_CUDA_TUNE": "0", "MLP_CUDA_TRACE": "1",
                                                "MLP_CUDA_OFF": "graphs, pdl,split-k"])
        #expect(options.synchronizesEachOperation && !options.timesAlgorithms && options.traces)
        #expect(options.disabled == [.graphs, .pdl, .splitK])
        #expect(!options.uses(.graphs) && options.uses(.streams))
        #expect(options.description.contains("MLP_CUDA_OFF=graphs,pdl,split-k"))
    }

    /// A name that is no strategy, or a value a switch does not take, is reported (the backend warns) and ignored.
    @Test func whatCannotBeReadIsReported() {
        let options = CUDAOptions(environment: ["MLP_CUDA_OFF": "graphs,tiled", "MLP_CUDA_SYNC": "yes", "MLP_CUDA_TUNE": "1"])
        #expect(options.disabled == [.graphs])
        #expect(!options.synchronizesEachOperation && options.timesAlgorithms)
        #expect(options.problems.count == 2)
        #expect(options.problems.contains { $0.contains("\"tiled\" is not a strategy") && $0.contains("wide-output") })
        #expect(options.problems.contains { $0.hasPrefix("MLP_CUDA_SYNC=yes") })
    }
}
