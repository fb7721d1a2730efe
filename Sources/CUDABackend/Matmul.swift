import Foundation
import MLPCore

/// The products through cuBLASLt: one plan per shape (descriptors and the algorithm chosen for it), epilogues that
/// fold the bias and the ReLU into the forward product, and the choice of algorithm by timing: the first time a
/// shape runs outside a recording, each of cuBLASLt's candidates (its heuristic returns up to
/// `MatmulPlanner.candidateCount`; variants of its first three that split `k` are added) is recorded ten times
/// (three for a product over 10 GFLOP) into a CUDA graph and
/// timed with events, and the fastest is kept for the life of the process and recorded in the `TuningCache` file,
/// so that later runs on the same card and libraries take it without timing. cuBLAS's own choice (`cublasSgemm`) is
/// tuned for large products; the MLP's are small (a batch of 128 rows leaves most of an H100's 132 SMs idle unless
/// the product splits `k`), which is where timing the candidates pays.
final class MatmulPlan {
    let operation: OpaquePointer?
    let layoutA: OpaquePointer?, layoutB: OpaquePointer?, layoutD: OpaquePointer?
    /// Candidates, best guess first: cuBLASLt's heuristic's (the 64-byte algorithm and the workspace it needs),
    /// then our own kernels' configurations (`TiledGemm`), which only timing can choose.
    var candidates: [MatmulAlgorithm]
    /// Index into `candidates` of the algorithm in use.
    var chosen = 0
    /// Whether `chosen` comes from timing (else it is the heuristic's first).
    var tuned = false
    /// Each candidate's time alone (µs, nil: failed or not timed), when this process timed them.
    var timesAlone: [Double?] = []
    let label: String
    /// The key its choice is kept under in the tuning cache.
    var key: MatmulKey?

    init(operation: OpaquePointer?, layoutA: OpaquePointer?, layoutB: OpaquePointer?, layoutD: OpaquePointer?,
         candidates: [MatmulAlgorithm], label: String) {
        self.operation = operation
        self.layoutA = layoutA
        self.layoutB = layoutB
        self.layoutD = layoutD
        self.candidates = candidates
        self.label = label
    }
}

/// One way to run a product.
enum MatmulAlgorithm: CustomStringConvertible {
    /// A cuBLASLt algorithm (`cublasLtMatmulAlgo_t`, 64 bytes), the workspace it needs, the parts it splits `k` into
    /// (for the reports), and, for a variant made here of one of the heuristic's algorithms, what it was made from.
    case lt(algorithm: [UInt8], workspace: Int, splits: Int = 1, variant: SplitVariant? = nil)
    /// One of our kernels.
    case tiled(TiledGemm.Config)

    var description: String {
        switch self {
        case .lt(_, _, let splits, _): return splits > 1 ? "cuBLASLt, k in \(splits)" : "cuBLASLt"
        case .tiled(let config): return "\(config)"
        }
    }
}

/// A heuristic's algorithm made to split `k`: the index of the algorithm among the heuristic's, the parts, and the
/// reduction scheme (`CUBLASLt.AlgoConfigAttribute.reductionScheme`).
struct SplitVariant: Equatable {
    var base: Int
    var parts: UInt32
    var scheme: UInt32
}

/// The scratch of the products queued on one stream. Products on different streams may run at the same time, so
/// each stream has its own: an algorithm that splits `k` keeps its partial sums here.
struct MatmulWorkspace {
    /// cuBLASLt's workspace, `MatmulPlanner.workspaceBytes` long.
    var lt: UInt64
    /// Our kernels' partial sums (`TiledGemm.partialBytes`) and tile counters (`TiledGemm.counterCount`, zeroed).
    var partials: UInt64
    var counters: UInt64
}

/// What makes two products share a plan: shape, strides, transposes, epilogue, and the alignment of each pointer
/// (cuBLASLt's algorithms assume an alignment, and parameters inside the flat buffer are only 4-byte aligned in
/// general).
struct MatmulKey: Hashable {
    var transposeA: Bool, transposeB: Bool
    var m: Int, n: Int, k: Int, lda: Int, ldb: Int, ldc: Int
    var epilogue: CUBLASLt.Epilogue
    var alignA: Int, alignB: Int, alignC: Int, alignBias: Int
}

/// A product with an epilogue, in the backend's row-major terms (see `Backend.gemm`).
struct MatmulCall {
    var transposeA: Bool, transposeB: Bool
    var m: Int, n: Int, k: Int
    var alpha: Float
    var a: UInt, lda: Int, b: UInt, ldb: Int
    var beta: Float
    var c: UInt, ldc: Int
    var epilogue = CUBLASLt.Epilogue.none
    /// The bias, `[n]`.
    var bias: UInt = 0

    var key: MatmulKey {
        MatmulKey(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc,
                  epilogue: epilogue, alignA: alignment(a), alignB: alignment(b), alignC: alignment(c),
                  alignBias: alignment(bias))
    }

    var label: String {
        let e: String
        switch epilogue {
        case .none: e = ""
        case .bias: e = " +bias"
        case .reluBias: e = " +bias+relu"
        }
        return "\(m)×\(n)×\(k) \(transposeA ? "T" : "N")\(transposeB ? "T" : "N")\(e)"
    }
}

/// The largest power of two (up to 256) that divides an address: the alignment cuBLASLt may assume.
func alignment(_ address: UInt) -> Int {
    guard address != 0 else { return 256 }
    return Int(min(256, address & (~address &+ 1)))
}

/// Chooses and keeps the plans. Owned by a `CUDABackend`, used on its stream only.
final class MatmulPlanner {
    static let candidateCount = 16
    let lt: CUBLASLt
    let handle: OpaquePointer?
    let computeType: Int32
    /// The size of each workspace passed to `run` (the heuristic offers no algorithm that needs more).
    let workspaceBytes: Int
    /// Whether to time the candidates (`MLP_CUDA_TUNE=0`: take the heuristic's first).
    let tunes: Bool
    /// Our own kernels (for `CUDABackend.withTiledProducts`), and whether they are timed beside cuBLASLt's
    /// algorithms (`MLP_CUDA_TILED=1`).
    var tiled: TiledGemmKernels?
    let timesTiled: Bool
    /// The choices of earlier runs, and where this run's are saved (nil: timed every run).
    let cache: TuningCache?
    private var plans = [MatmulKey: MatmulPlan?]()
    /// One line per tuned shape: the candidates' count, the chosen time and the heuristic first's time.
    private(set) var report = [String]()
    /// Told, once, when a choice cannot be saved to the tuning cache (the run goes on; later runs time again).
    var warn: (String) -> Void = { _ in }
    private var warnedAboutCache = false

    init(lt: CUBLASLt, computeType: Int32, workspaceBytes: Int, tunes: Bool, tiled: TiledGemmKernels?, timesTiled: Bool, cache: TuningCache?) throws {
        self.lt = lt
        var h: OpaquePointer?
        try lt.check(lt.create(&h), "cublasLtCreate")
        handle = h
        self.computeType = computeType
        self.workspaceBytes = workspaceBytes
        self.tunes = tunes
        self.tiled = tiled
        self.timesTiled = timesTiled
        self.cache = cache
    }

    /// Asks the heuristic once for a small product and throws the answer away. cuBLASLt sets itself up on its
    /// first heuristic query: on an H200 that one query took 86 ms (137 ms timing afresh) where each later one took
    /// under 1 ms (Benchmarks/results/2026-11-30-h200-sanitize-firststep), so the backend pays it at start-up rather
    /// than inside the first training step. Returns the seconds it took.
    func warmUp() throws -> Double {
        let started = DispatchTime.now().uptimeNanoseconds
        let call = MatmulCall(transposeA: false, transposeB: false, m: 64, n: 64, k: 64, alpha: 1,
                              a: 0, lda: 64, b: 0, ldb: 64, beta: 0, c: 0, ldc: 64)
        if let plan = try makePlan(call) {
            _ = lt.descDestroy(plan.operation)
            [plan.layoutA, plan.layoutB, plan.layoutD].forEach { _ = lt.layoutDestroy($0) }
        }
        return Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
    }

    /// The plan for `call`, made on first use; nil when cuBLASLt offers no algorithm for it (an epilogue this
    /// version does not support for fp32, say): the caller then composes the operation from other kernels.
    func plan(for call: MatmulCall) throws -> MatmulPlan? {
        let key = call.key
        if let known = plans[key] { return known }
        let plan = try makePlan(call)
        plans[key] = plan
        return plan
    }

    private func makePlan(_ call: MatmulCall) throws -> MatmulPlan? {
        var operation: OpaquePointer?
        try lt.check(lt.descCreate(&operation, computeType, CUBLASLt.realFloat), "cublasLtMatmulDescCreate")
        // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: cuBLASLt's A is our B and its B our A, each
        // keeping its transpose flag; a row-major matrix read column-major is its transpose.
        try lt.setAttribute(operation, .transA, Int32(call.transposeB ? 1 : 0))
        try lt.setAttribute(operation, .transB, Int32(call.transposeA ? 1 : 0))
        try lt.setAttribute(operation, .epilogue, call.epilogue.rawValue)
        try setPointers(operation, call)
        var layoutA: OpaquePointer?, layoutB: OpaquePointer?, layoutD: OpaquePointer?
        let (aRows, aCols) = call.transposeB ? (call.k, call.n) : (call.n, call.k)
        let (bRows, bCols) = call.transposeA ? (call.m, call.k) : (call.k, call.m)
        try lt.check(lt.layoutCreate(&layoutA, CUBLASLt.realFloat, UInt64(aRows), UInt64(aCols), Int64(call.ldb)), "cublasLtMatrixLayoutCreate(A)")
        try lt.check(lt.layoutCreate(&layoutB, CUBLASLt.realFloat, UInt64(bRows), UInt64(bCols), Int64(call.lda)), "cublasLtMatrixLayoutCreate(B)")
        try lt.check(lt.layoutCreate(&layoutD, CUBLASLt.realFloat, UInt64(call.n), UInt64(call.m), Int64(call.ldc)), "cublasLtMatrixLayoutCreate(D)")
        var preference: OpaquePointer?
        try lt.check(lt.preferenceCreate(&preference), "cublasLtMatmulPreferenceCreate")
        defer { _ = lt.preferenceDestroy(preference) }
        try lt.setPreference(preference, .maxWorkspaceBytes, UInt64(workspaceBytes))
        let key = call.key
        try lt.setPreference(preference, .minAlignmentA, UInt32(key.alignB))
        try lt.setPreference(preference, .minAlignmentB, UInt32(key.alignA))
        try lt.setPreference(preference, .minAlignmentC, UInt32(key.alignC))
        try lt.setPreference(preference, .minAlignmentD, UInt32(key.alignC))
        let results = UnsafeMutableRawPointer.allocate(byteCount: CUBLASLt.heuristicResultBytes * Self.candidateCount, alignment: 16)
        defer { results.deallocate() }
        results.initializeMemory(as: UInt8.self, repeating: 0, count: CUBLASLt.heuristicResultBytes * Self.candidateCount)
        var returned: Int32 = 0
        let status = lt.heuristic(handle, operation, layoutA, layoutB, layoutD, layoutD, preference, Int32(Self.candidateCount), results, &returned)
        var candidates = [MatmulAlgorithm]()
        if status == 0 {
            for i in 0..<Int(returned) {
                let entry = results + i * CUBLASLt.heuristicResultBytes
                let workspace = entry.load(fromByteOffset: 64, as: Int.self)
                let state = entry.load(fromByteOffset: 72, as: Int32.self)
                guard state == 0, workspace <= workspaceBytes else { continue }
                let algorithm = Array(UnsafeRawBufferPointer(start: entry, count: CUBLASLt.algorithmBytes))
                candidates.append(.lt(algorithm: algorithm, workspace: workspace, splits: lt.splits(of: algorithm)))
            }
        }
        // Ours come after the heuristic's, so that without timing its first is used.
        if let tiled, tunes, timesTiled { candidates += tiled.candidates(for: call).map { .tiled($0) } }
        guard !candidates.isEmpty else {
            _ = lt.descDestroy(operation)
            [layoutA, layoutB, layoutD].forEach { _ = lt.layoutDestroy($0) }
            return nil
        }
        return MatmulPlan(operation: operation, layoutA: layoutA, layoutB: layoutB, layoutD: layoutD,
                          candidates: candidates, label: call.label)
    }

    /// Whether an earlier run (or this one) chose the algorithms of these products inside a whole step: its choices
    /// are then in the cache, each under its product's key, and need not be sought again.
    func stepChoicesKnown(_ plans: [MatmulPlan]) -> Bool {
        guard let cache, let signature = stepSignature(plans) else { return false }
        return cache.stepChoice(for: signature) != nil
    }

    /// Keeps the choices of `plans`, made inside a whole step, in the cache: each under its product's key (so that a
    /// later run takes it as it takes any choice) and the set of them as chosen together.
    func recordStepChoices(_ plans: [MatmulPlan], summary: String) {
        report.append("chosen inside the step: \(summary); " + plans.map { "\($0.label): \($0.candidates[$0.chosen]) (\(TuningCache.encode($0.candidates, chosen: $0.chosen)))" }.joined(separator: "; "))
        guard let cache, let signature = stepSignature(plans) else { return }
        do {
            for plan in plans {
                if let key = plan.key { try cache.record(TuningCache.encode(plan.candidates, chosen: plan.chosen), for: key) }
            }
            try cache.recordStepChoice(summary, for: signature)
        } catch {
            if !warnedAboutCache {
                warnedAboutCache = true
                warn("the algorithm choices made inside the training step were not saved to the tuning cache \(cache.url?.path ?? ""): \(error.localizedDescription)")
            }
        }
    }

    /// The products of a step, named by their cache keys in a fixed order; nil if one has no key (never tuned).
    private func stepSignature(_ plans: [MatmulPlan]) -> [MatmulKey]? {
        let keys = plans.compactMap(\.key)
        return keys.count == plans.count ? keys : nil
    }

    /// `MLP_CUDA_CHOOSE="128×512×256 NT=3;784×512×128 TN=1"` (an experiment): for each product named by its label,
    /// the candidate of that number (from 1, in the order the timing lists them) instead of the fastest alone, timed
    /// afresh and not saved, to measure how a choice plays inside the step, beside the other streams' kernels. The
    /// other products keep the choices of the tuning file, and no step is searched (`CUDABackend.tuneSteps`).
    static let forcedChoices: [String: Int] = parseForcedChoices(ProcessInfo.processInfo.environment["MLP_CUDA_CHOOSE"] ?? "").choices
    /// The items of `MLP_CUDA_CHOOSE` that do not read as `label=number` (the backend warns of each).
    static let malformedForcedChoices: [String] = parseForcedChoices(ProcessInfo.processInfo.environment["MLP_CUDA_CHOOSE"] ?? "").malformed

    /// `label=number` items separated by `;`: each label's candidate index (the number less one), and the items
    /// that are not of that form.
    static func parseForcedChoices(_ text: String) -> (choices: [String: Int], malformed: [String]) {
        var choices = [String: Int](), malformed = [String]()
        for item in text.split(separator: ";") {
            let parts = item.split(separator: "=")
            if parts.count == 2, let number = Int(parts[1]), number >= 1 {
                choices[String(parts[0])] = number - 1
            } else {
                malformed.append(String(item))
            }
        }
        return (choices, malformed)
    }

    /// How many of the heuristic's first candidates get variants that split `k`, and into how many parts.
    static let splitBases = 3
    static let splitCounts: [UInt32] = [2, 3, 4, 6, 8]
    /// `MLP_CUDA_SPLITK=0` times the heuristic's candidates only (to measure what the variants buy).
    static let offersSplitVariants = ProcessInfo.processInfo.environment["MLP_CUDA_SPLITK"] != "0"

    /// Variants of the heuristic's first few algorithms that split `k` where they do not (the heuristic's own
    /// choices for the workloads' forward products already split it; for the weight-gradient products it offers
    /// few that do): each split count with the parts added in the output (in place, in a fixed order) or in the
    /// workspace, each kept if cuBLASLt accepts it for this product within the workspace. Made only when the
    /// candidates are timed (checking each takes cuBLASLt some time); timing decides among them.
    private func splitVariants(_ plan: MatmulPlan, _ call: MatmulCall) -> [MatmulAlgorithm] {
        var variants = [MatmulAlgorithm]()
        for base in plan.candidates.indices.prefix(Self.splitBases) {
            guard case .lt(_, _, 1, nil) = plan.candidates[base] else { continue }
            for parts in Self.splitCounts where Int(parts) * 32 <= call.k {
                for scheme: UInt32 in [1, 2] {
                    if let variant = splitVariant(plan, SplitVariant(base: base, parts: parts, scheme: scheme)) { variants.append(variant) }
                }
            }
        }
        return variants
    }

    /// The heuristic's algorithm `variant.base` made to split `k` as `variant` says, if cuBLASLt accepts it for this
    /// product within the workspace (`cublasLtMatmulAlgoCheck`).
    private func splitVariant(_ plan: MatmulPlan, _ variant: SplitVariant) -> MatmulAlgorithm? {
        guard plan.candidates.indices.contains(variant.base), case .lt(let algorithm, _, _, nil) = plan.candidates[variant.base],
              let split = lt.configured(algorithm, .splitK, variant.parts),
              let configured = lt.configured(split, .reductionScheme, variant.scheme) else { return nil }
        let result = UnsafeMutableRawPointer.allocate(byteCount: CUBLASLt.heuristicResultBytes, alignment: 16)
        defer { result.deallocate() }
        result.initializeMemory(as: UInt8.self, repeating: 0, count: CUBLASLt.heuristicResultBytes)
        let status = configured.withUnsafeBytes {
            lt.algoCheck(handle, plan.operation, plan.layoutA, plan.layoutB, plan.layoutD, plan.layoutD, $0.baseAddress!, result)
        }
        let workspace = result.load(fromByteOffset: 64, as: Int.self)
        guard status == 0, workspace <= workspaceBytes else { return nil }
        return .lt(algorithm: configured, workspace: workspace, splits: Int(variant.parts), variant: variant)
    }

    /// The per-call pointers of the epilogue: they live in the descriptor, so they are set before each use.
    private func setPointers(_ operation: OpaquePointer?, _ call: MatmulCall) throws {
        if call.bias != 0 {
            try lt.setAttribute(operation, .biasPointer, UnsafeRawPointer(bitPattern: call.bias))
        }
    }

    /// Queues `call` on `stream` with the plan's chosen algorithm (or candidate `index`). `workspace`
    /// (`workspaceBytes` long) must not be in use by any product that may run at the same time: an algorithm that
    /// splits `k` keeps its partial sums there, so two streams sharing one would corrupt each other's results.
    func run(_ plan: MatmulPlan, _ call: MatmulCall, stream: OpaquePointer?, workspace: MatmulWorkspace, candidate index: Int? = nil) throws {
        switch plan.candidates[index ?? plan.chosen] {
        case .tiled(let config):
            guard let tiled else { return }
            try tiled.launch(config, call, stream: stream, workspace: workspace)
        case .lt(let algorithm, _, _, _):
            try setPointers(plan.operation, call)
            var alpha = call.alpha, beta = call.beta
            let status = algorithm.withUnsafeBytes { algo in
                lt.matmul(handle, plan.operation, &alpha,
                          UnsafeRawPointer(bitPattern: call.b), plan.layoutA, UnsafeRawPointer(bitPattern: call.a), plan.layoutB,
                          &beta, UnsafeRawPointer(bitPattern: call.c), plan.layoutD, UnsafeMutableRawPointer(bitPattern: call.c), plan.layoutD,
                          algo.baseAddress, UnsafeMutableRawPointer(bitPattern: UInt(workspace.lt)), workspaceBytes, stream)
            }
            try lt.check(status, "cublasLtMatmul(\(plan.label))")
        }
    }

    /// Times every candidate of `plan` on `call`'s buffers and keeps the fastest. Each candidate runs `repeats` times
    /// back to back inside a CUDA graph (how a training step runs them), timed by events around a second launch.
    /// Only for calls whose outputs may be overwritten repeatedly (beta = 0: C is not read).
    /// Returns the line added to `report`, if any.
    @discardableResult
    func tune(_ plan: MatmulPlan, _ call: MatmulCall, stream: OpaquePointer?, workspace: MatmulWorkspace, driver: CUDADriver) throws -> String? {
        plan.tuned = true
        guard tunes, call.beta == 0 else { return nil }
        let key = call.key
        plan.key = key
        let forced = Self.forcedChoices[plan.label]
        if forced == nil, let recorded = cache?.choice(for: key) {
            // A split variant chosen earlier is made again from its description (without making all the others).
            if let variant = TuningCache.decodeVariant(recorded, candidates: plan.candidates), let algorithm = splitVariant(plan, variant) {
                plan.candidates.append(algorithm)
            }
            if let index = TuningCache.decode(recorded, candidates: plan.candidates) {
                plan.chosen = index
                let line = "\(plan.label): chose \(plan.candidates[index]) (\(recorded)), as recorded in the tuning cache"
                report.append(line)
                return line
            }
        }
        if Self.offersSplitVariants { plan.candidates += splitVariants(plan, call) }
        guard plan.candidates.count > 1 else { return nil }
        let flops = 2.0 * Double(call.m) * Double(call.n) * Double(call.k)
        let repeats = flops > 1e10 ? 3 : 10
        var start: OpaquePointer?, stop: OpaquePointer?
        try driver.check(driver.cuEventCreate(&start, 0), "cuEventCreate")
        try driver.check(driver.cuEventCreate(&stop, 0), "cuEventCreate")
        defer { _ = driver.cuEventDestroy(start); _ = driver.cuEventDestroy(stop) }
        var times = [Double?](repeating: nil, count: plan.candidates.count)
        for index in plan.candidates.indices {
            try driver.check(driver.cuStreamBeginCapture(stream, 1), "cuStreamBeginCapture (tuning)")
            var failed = false
            for _ in 0..<repeats where !failed {
                do { try run(plan, call, stream: stream, workspace: workspace, candidate: index) } catch { failed = true }
            }
            var graph: OpaquePointer?
            let ended = driver.cuStreamEndCapture(stream, &graph)
            guard !failed, ended == 0, graph != nil else {
                if graph != nil { _ = driver.cuGraphDestroy(graph) }
                continue
            }
            defer { _ = driver.cuGraphDestroy(graph) }
            var executable: OpaquePointer?
            guard driver.cuGraphInstantiate(&executable, graph, 0) == 0 else { continue }
            defer { _ = driver.cuGraphExecDestroy(executable) }
            try driver.check(driver.cuGraphLaunch(executable, stream), "cuGraphLaunch (tuning warm-up)")
            try driver.check(driver.cuEventRecord(start, stream), "cuEventRecord")
            try driver.check(driver.cuGraphLaunch(executable, stream), "cuGraphLaunch (tuning)")
            try driver.check(driver.cuEventRecord(stop, stream), "cuEventRecord")
            try driver.check(driver.cuEventSynchronize(stop), "cuEventSynchronize (tuning)")
            var milliseconds: Float = 0
            try driver.check(driver.cuEventElapsedTime(&milliseconds, start, stop), "cuEventElapsedTime")
            times[index] = Double(milliseconds) * 1000 / Double(repeats)
        }
        plan.timesAlone = times
        let timed = times.indices.compactMap { i in times[i].map { (i, $0) } }
        if let forced {
            // An experiment: the candidate named, whatever its time, and nothing saved.
            guard times.indices.contains(forced), let time = times[forced] else {
                throw CUDAError("MLP_CUDA_CHOOSE: \(plan.label) has no candidate #\(forced + 1) that runs (\(plan.candidates.count) candidates)")
            }
            plan.chosen = forced
            let all = times.indices.map { i in "#\(i + 1) \(plan.candidates[i]) \(times[i].map { String(format: "%.1f", $0) } ?? "failed")" }
            let line = "\(plan.label): forced #\(forced + 1) (\(plan.candidates[forced])) at \(String(format: "%.1f µs", time)); candidates: \(all.joined(separator: ", "))"
            report.append(line)
            return line
        }
        guard let best = timed.min(by: { $0.1 < $1.1 }) else { return nil }
        plan.chosen = best.0
        let first = times[0].map { String(format: "%.1f µs", $0) } ?? "failed"
        var line = "\(plan.label): \(timed.count) of \(plan.candidates.count) candidates ran; chose #\(best.0 + 1) (\(plan.candidates[best.0])) at \(String(format: "%.1f µs", best.1)) (heuristic's first: \(first))"
        let own = timed.filter { if case .tiled = plan.candidates[$0.0] { return true } else { return false } }
        if let bestOwn = own.min(by: { $0.1 < $1.1 }) {
            line += "; own kernels' best: \(plan.candidates[bestOwn.0]) at \(String(format: "%.1f µs", bestOwn.1))"
        }
        if let cache {
            do {
                try cache.record(TuningCache.encode(plan.candidates, chosen: best.0), for: key)
            } catch {
                let problem = "not saved to the tuning cache \(cache.url?.path ?? ""): \(error.localizedDescription)"
                line += "; " + problem
                if !warnedAboutCache {
                    warnedAboutCache = true
                    warn("cuBLASLt's algorithm choices were \(problem) (later runs will time them again; MLP_CUDA_TUNE_CACHE names another file, 0 none)")
                }
            }
        }
        report.append(line)
        return line
    }
}
