import Foundation

/// cuBLASLt (libcublasLt.so.13 or .12): the products with epilogues (bias, ReLU) and a choice among the library's
/// candidate algorithms for each shape.
struct CUBLASLt {
    typealias Status = Int32
    let path: String
    let create: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Status
    let getVersion: @convention(c) () -> Int
    let statusString: @convention(c) (Status) -> UnsafePointer<CChar>?
    let descCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32, Int32) -> Status
    let descDestroy: @convention(c) (OpaquePointer?) -> Status
    let descSetAttribute: @convention(c) (OpaquePointer?, Int32, UnsafeRawPointer, Int) -> Status
    let layoutCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32, UInt64, UInt64, Int64) -> Status
    let layoutDestroy: @convention(c) (OpaquePointer?) -> Status
    let preferenceCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Status
    let preferenceDestroy: @convention(c) (OpaquePointer?) -> Status
    let preferenceSetAttribute: @convention(c) (OpaquePointer?, Int32, UnsafeRawPointer, Int) -> Status
    /// handle, operation, A, B, C, D layouts, preference, requested count, results (`HeuristicResult` array), count.
    let heuristic: @convention(c) (OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?,
                                   OpaquePointer?, Int32, UnsafeMutableRawPointer, UnsafeMutablePointer<Int32>) -> Status
    /// handle, operation, alpha, A, Adesc, B, Bdesc, beta, C, Cdesc, D, Ddesc, algorithm, workspace, bytes, stream.
    let matmul: @convention(c) (OpaquePointer?, OpaquePointer?, UnsafeRawPointer, UnsafeRawPointer?, OpaquePointer?,
                                UnsafeRawPointer?, OpaquePointer?, UnsafeRawPointer, UnsafeRawPointer?, OpaquePointer?,
                                UnsafeMutableRawPointer?, OpaquePointer?, UnsafeRawPointer?, UnsafeMutableRawPointer?, Int,
                                OpaquePointer?) -> Status
    /// algorithm (64 bytes), attribute, value, size (`cublasLtMatmulAlgoConfigSetAttribute`).
    let algoConfigSet: @convention(c) (UnsafeMutableRawPointer, Int32, UnsafeRawPointer, Int) -> Status
    /// algorithm, attribute, value, size, size written (`cublasLtMatmulAlgoConfigGetAttribute`).
    let algoConfigGet: @convention(c) (UnsafeRawPointer, Int32, UnsafeMutableRawPointer, Int, UnsafeMutablePointer<Int>?) -> Status
    /// handle, operation, A, B, C, D layouts, algorithm, result (`HeuristicResult`: its workspace size)
    /// (`cublasLtMatmulAlgoCheck`): whether a configured algorithm can run this product.
    let algoCheck: @convention(c) (OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?,
                                   UnsafeRawPointer, UnsafeMutableRawPointer) -> Status

    // Values from cublasLt.h and library_types.h.
    static let computeFP32: Int32 = 68          // CUBLAS_COMPUTE_32F
    static let computeFastTF32: Int32 = 77      // CUBLAS_COMPUTE_32F_FAST_TF32
    static let realFloat: Int32 = 0             // CUDA_R_32F
    static let realBF16: Int32 = 14             // CUDA_R_16BF
    enum DescAttribute: Int32 {
        case transA = 3, transB = 4, epilogue = 7, biasPointer = 8
    }
    /// `cublasLtMatmulAlgoConfigAttributes_t`: the number of parts `k` is split into, and how they are added
    /// (`cublasLtReductionScheme_t`: 1 in place in the output, 2 in the workspace in the compute type).
    enum AlgoConfigAttribute: Int32 {
        case splitK = 2, reductionScheme = 3
    }
    enum PreferenceAttribute: Int32 {
        case maxWorkspaceBytes = 1, minAlignmentA = 5, minAlignmentB = 6, minAlignmentC = 7, minAlignmentD = 8
    }
    /// `cublasLtEpilogue_t`. (The backward epilogues, `DRELU_BGRAD` with the forward's ReLU bit mask, lost to the plain
    /// product followed by this backend's activation-backward kernel at every shape of the workloads:
    /// Benchmarks/RESULTS.md.)
    enum Epilogue: UInt32 {
        case none = 1, bias = 4, reluBias = 6
    }
    /// `cublasLtMatmulHeuristicResult_t`: the algorithm (64 bytes), workspace size, state, waves, 4 reserved ints.
    static let heuristicResultBytes = 96
    static let algorithmBytes = 64

    static func load() throws -> CUBLASLt {
        let (h, path) = try LibraryLoader.open("cuBLASLt", names: ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"])
        func f<T>(_ name: String) throws -> T { try LibraryLoader.symbol(h, name, in: path, as: T.self) }
        return try CUBLASLt(
            path: path,
            create: f("cublasLtCreate"),
            getVersion: f("cublasLtGetVersion"),
            statusString: f("cublasLtGetStatusString"),
            descCreate: f("cublasLtMatmulDescCreate"),
            descDestroy: f("cublasLtMatmulDescDestroy"),
            descSetAttribute: f("cublasLtMatmulDescSetAttribute"),
            layoutCreate: f("cublasLtMatrixLayoutCreate"),
            layoutDestroy: f("cublasLtMatrixLayoutDestroy"),
            preferenceCreate: f("cublasLtMatmulPreferenceCreate"),
            preferenceDestroy: f("cublasLtMatmulPreferenceDestroy"),
            preferenceSetAttribute: f("cublasLtMatmulPreferenceSetAttribute"),
            heuristic: f("cublasLtMatmulAlgoGetHeuristic"),
            matmul: f("cublasLtMatmul"),
            algoConfigSet: f("cublasLtMatmulAlgoConfigSetAttribute"),
            algoConfigGet: f("cublasLtMatmulAlgoConfigGetAttribute"),
            algoCheck: f("cublasLtMatmulAlgoCheck"))
    }

    /// Turns a status into an error naming the call and cuBLASLt's own description of the status.
    func check(_ status: Status, _ call: @autoclosure () -> String) throws {
        guard status != 0 else { return }
        throw CUDAError("\(call()) failed: \(statusString(status).map { String(cString: $0) } ?? "cublasStatus_t \(status)")")
    }

    func setAttribute<T>(_ desc: OpaquePointer?, _ attribute: DescAttribute, _ value: T) throws {
        var v = value
        try check(withUnsafeBytes(of: &v) { descSetAttribute(desc, attribute.rawValue, $0.baseAddress!, $0.count) },
                  "cublasLtMatmulDescSetAttribute(\(attribute))")
    }

    /// An algorithm's split of `k` (1: none; -1: not a setting of this algorithm; 0 when it cannot be read).
    func splits(of algorithm: [UInt8]) -> Int {
        var value: UInt32 = 0
        let status = algorithm.withUnsafeBytes { a in
            withUnsafeMutableBytes(of: &value) { algoConfigGet(a.baseAddress!, AlgoConfigAttribute.splitK.rawValue, $0.baseAddress!, $0.count, nil) }
        }
        // cuBLASLt reports -1 for some algorithms (a split that is not one of its settings): kept as -1, which the
        // reports show as no split and which gets no split variants (`MatmulPlanner.splitVariants`).
        return status == 0 ? Int(Int32(bitPattern: value)) : 0
    }

    /// A copy of `algorithm` with `attribute` set to `value`, or nil when cuBLASLt refuses it.
    func configured(_ algorithm: [UInt8], _ attribute: AlgoConfigAttribute, _ value: UInt32) -> [UInt8]? {
        var copy = algorithm, v = value
        let status = copy.withUnsafeMutableBytes { a in
            withUnsafeBytes(of: &v) { algoConfigSet(a.baseAddress!, attribute.rawValue, $0.baseAddress!, $0.count) }
        }
        return status == 0 ? copy : nil
    }

    func setPreference<T>(_ preference: OpaquePointer?, _ attribute: PreferenceAttribute, _ value: T) throws {
        var v = value
        try check(withUnsafeBytes(of: &v) { preferenceSetAttribute(preference, attribute.rawValue, $0.baseAddress!, $0.count) },
                  "cublasLtMatmulPreferenceSetAttribute(\(attribute))")
    }
}
