import Foundation
import MLPCore

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
    /// Whether variants that split `k` are among the timed candidates (`MLP_CUDA_OFF=split-k`: no).
    let offersSplitVariants: Bool
    /// The choices of earlier runs, and where this run's are saved (nil: timed every run).
    let cache: TuningCache?
    private var plans = [MatmulKey: MatmulPlan?]()
    /// One line per tuned shape: the candidates' count, the chosen time and the heuristic first's time.
    private(set) var report = [String]()
    /// Told, once, when a choice cannot be saved to the tuning cache (the run goes on; later runs time again).
    var warn: (String) -> Void = { _ in }
    private var warnedAboutCache = false

    init(lt: CUBLASLt, computeType: Int32, workspaceBytes: Int, tunes: Bool, offersSplitVariants: Bool, cache: TuningCache?) throws {
        self.lt = lt
        var h: OpaquePointer?
        try lt.check(lt.create(&h), "cublasLtCreate")
        handle = h
        self.computeType = computeType
        self.workspaceBytes = workspaceBytes
        self.tunes = tunes
        self.offersSplitVariants = offersSplitVariants
        self.cache = cache
    }

    /// Asks the heuristic once for a small product and throws the answer away. cuBLASLt sets itself up on its first
    /// heuristic query, which takes far longer than any later one, so the backend pays it at start-up rather than
    /// inside the first training step. Returns the seconds it took.
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

    /// The plan for `call`, made on first use; nil when cuBLASLt offers no algorithm for it. Where it offers none in
    /// the backend's reduced precision (TF32), the product runs in strict fp32, and `report` says so.
    func plan(for call: MatmulCall) throws -> MatmulPlan? {
        let key = call.key
        if let known = plans[key] { return known }
        var plan = try makePlan(call)
        if plan == nil && computeType != CUBLASLt.computeFP32 && !call.bf16 {
            plan = try makePlan(call, computeType: CUBLASLt.computeFP32)
            if plan != nil { report.append("\(call.label): no algorithm in the backend's precision; strict fp32") }
        }
        plans[key] = plan
        return plan
    }

    private func makePlan(_ call: MatmulCall, computeType: Int32? = nil) throws -> MatmulPlan? {
        var operation: OpaquePointer?
        try lt.check(lt.descCreate(&operation, call.bf16 ? CUBLASLt.computeFP32 : computeType ?? self.computeType, CUBLASLt.realFloat),
                     "cublasLtMatmulDescCreate")
        // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: cuBLASLt's A is our B and its B our A, each
        // keeping its transpose flag; a row-major matrix read column-major is its transpose.
        try lt.setAttribute(operation, .transA, Int32(call.transposeB ? 1 : 0))
        try lt.setAttribute(operation, .transB, Int32(call.transposeA ? 1 : 0))
        try lt.setAttribute(operation, .epilogue, call.epilogue.rawValue)
        try setPointers(operation, call)
        var layoutA: OpaquePointer?, layoutB: OpaquePointer?, layoutD: OpaquePointer?
        let (aRows, aCols) = call.transposeB ? (call.k, call.n) : (call.n, call.k)
        let (bRows, bCols) = call.transposeA ? (call.m, call.k) : (call.k, call.m)
        // bf16 operands keep fp32's sums (the compute type, CUBLAS_COMPUTE_32F) and output.
        let operandType = call.bf16 ? CUBLASLt.realBF16 : CUBLASLt.realFloat
        try lt.check(lt.layoutCreate(&layoutA, operandType, UInt64(aRows), UInt64(aCols), Int64(call.ldb)), "cublasLtMatrixLayoutCreate(A)")
        try lt.check(lt.layoutCreate(&layoutB, operandType, UInt64(bRows), UInt64(bCols), Int64(call.lda)), "cublasLtMatrixLayoutCreate(B)")
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
        guard !candidates.isEmpty else {
            _ = lt.descDestroy(operation)
            [layoutA, layoutB, layoutD].forEach { _ = lt.layoutDestroy($0) }
            return nil
        }
        return MatmulPlan(operation: operation, layoutA: layoutA, layoutB: layoutB, layoutD: layoutD,
                          candidates: candidates, label: call.label)
    }

    /// Whether an earlier run (or this one) chose the algorithms of these products inside a whole step: its choices are
    /// then in the cache, each under its product's key, and need not be sought again.
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

    /// How many of the heuristic's first candidates get variants that split `k`, and into how many parts.
    static let splitBases = 3
    static let splitCounts: [UInt32] = [2, 3, 4, 6, 8]

    /// Variants of the heuristic's first few algorithms that split `k` where they do not (the heuristic's own choices
    /// for the workloads' forward products already split it; for the weight-gradient products it offers few that do):
    /// each split count with the parts added in the output (in place, in a fixed order) or in the workspace, each kept
    /// if cuBLASLt accepts it for this product within the workspace. Made only when the candidates are timed (checking
    /// each takes cuBLASLt some time); timing decides among them.
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

    /// Queues `call` on `stream` with the plan's chosen algorithm (or candidate `index`). `workspace` (`workspaceBytes`
    /// long) must not be in use by any product that may run at the same time: an algorithm that splits `k` keeps its
    /// partial sums there, so two streams sharing one would corrupt each other's results.
    func run(_ plan: MatmulPlan, _ call: MatmulCall, stream: OpaquePointer?, workspace: UInt64, candidate index: Int? = nil) throws {
        switch plan.candidates[index ?? plan.chosen] {
        case .lt(let algorithm, _, _, _):
            try setPointers(plan.operation, call)
            var alpha = call.alpha, beta = call.beta
            let status = algorithm.withUnsafeBytes { algo in
                lt.matmul(handle, plan.operation, &alpha,
                          UnsafeRawPointer(bitPattern: call.b), plan.layoutA, UnsafeRawPointer(bitPattern: call.a), plan.layoutB,
                          &beta, UnsafeRawPointer(bitPattern: call.c), plan.layoutD, UnsafeMutableRawPointer(bitPattern: call.c), plan.layoutD,
                          algo.baseAddress, UnsafeMutableRawPointer(bitPattern: UInt(workspace)), workspaceBytes, stream)
            }
            try lt.check(status, "cublasLtMatmul(\(plan.label))")
        }
    }

    /// Times every candidate of `plan` on `call`'s buffers and keeps the fastest. Each candidate runs `repeats` times
    /// back to back inside a CUDA graph (how a training step runs them), timed by events around a second launch. Only
    /// for calls whose outputs may be overwritten repeatedly (beta = 0: C is not read). Returns the line added to
    /// `report`, if any.
    @discardableResult
    func tune(_ plan: MatmulPlan, _ call: MatmulCall, stream: OpaquePointer?, workspace: UInt64, driver: CUDADriver) throws -> String? {
        plan.tuned = true
        guard tunes, call.beta == 0 else { return nil }
        let key = call.key
        plan.key = key
        if let recorded = cache?.choice(for: key) {
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
        if offersSplitVariants { plan.candidates += splitVariants(plan, call) }
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
        guard let best = timed.min(by: { $0.1 < $1.1 }) else { return nil }
        plan.chosen = best.0
        let first = times[0].map { String(format: "%.1f µs", $0) } ?? "failed"
        var line = "\(plan.label): \(timed.count) of \(plan.candidates.count) candidates ran; chose #\(best.0 + 1) (\(plan.candidates[best.0])) at \(String(format: "%.1f µs", best.1)) (heuristic's first: \(first))"
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
