import Foundation
import MLPCore

/// The products through cuBLASLt: one plan per shape (descriptors and the algorithm chosen for it), epilogues that fold
/// the bias and the ReLU into the forward product, and the choice of algorithm by timing: the first time a shape runs
/// outside a recording, each of cuBLASLt's candidates (its heuristic returns up to `MatmulPlanner.candidateCount`;
/// variants of its first three that split `k` are added) is recorded ten times (three for a product over 10 GFLOP) into
/// a CUDA graph and timed with events, and the fastest is kept for the life of the process and recorded in the
/// `TuningCache` file, so that later runs on the same card and libraries take it without timing. The heuristic's first
/// is tuned for large products; the MLP's are small (a batch of 128 rows leaves most of a large GPU's SMs idle unless
/// the product splits `k`), which is where timing the candidates pays.
final class MatmulPlan {
    let operation: OpaquePointer?
    let layoutA: OpaquePointer?, layoutB: OpaquePointer?, layoutD: OpaquePointer?
    /// Candidates, best guess first: cuBLASLt's heuristic's (the 64-byte algorithm and the workspace it needs), then
    /// the variants that split `k` made when the candidates are timed.
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

    var description: String {
        switch self {
        case .lt(_, _, let splits, _): return splits > 1 ? "cuBLASLt, k in \(splits)" : "cuBLASLt"
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

/// What makes two products share a plan: shape, strides, transposes, epilogue, and the alignment of each pointer
/// (cuBLASLt's algorithms assume an alignment, and parameters inside the flat buffer are only 4-byte aligned in
/// general).
struct MatmulKey: Hashable {
    var transposeA: Bool, transposeB: Bool
    var m: Int, n: Int, k: Int, lda: Int, ldb: Int, ldc: Int
    var epilogue: CUBLASLt.Epilogue
    var alignA: Int, alignB: Int, alignC: Int, alignBias: Int
    var bf16 = false
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
    /// Whether `a` and `b` hold bf16 values (`--precision bf16`: the operands' bf16 copies, with the fp32 matrices'
    /// strides), multiplied with fp32 sums into the fp32 `c`.
    var bf16 = false

    var key: MatmulKey {
        MatmulKey(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc,
                  epilogue: epilogue, alignA: alignment(a), alignB: alignment(b), alignC: alignment(c),
                  alignBias: alignment(bias), bf16: bf16)
    }

    var label: String {
        let e: String
        switch epilogue {
        case .none: e = ""
        case .bias: e = " +bias"
        case .reluBias: e = " +bias+relu"
        }
        return "\(m)×\(n)×\(k) \(transposeA ? "T" : "N")\(transposeB ? "T" : "N")\(e)\(bf16 ? " bf16" : "")"
    }
}

/// The largest power of two (up to 256) that divides an address: the alignment cuBLASLt may assume.
func alignment(_ address: UInt) -> Int {
    guard address != 0 else { return 256 }
    return Int(min(256, address & (~address &+ 1)))
}
