import Foundation

/// Our own fp32 products for the small shapes of an MLP step: with `MLP_CUDA_TILED=1`, `MatmulPlanner` times them
/// beside cuBLASLt's algorithms and keeps whichever is fastest; `mlp check` checks every configuration either way.
///
/// The idea: at a batch of 128 rows a product such as 128×512×784 has too few output tiles to fill an H100's 132
/// SMs, and cuBLASLt's best fp32 kernel for it took 9.4 µs for 0.1 GFLOP. These kernels split `k` so that every SM
/// holds several blocks, load 64 deep at a time with the next step's loads issued before the current step's
/// arithmetic, and add the splits' partial sums in a fixed order in the last block to finish a tile (no float
/// atomics: the result is the same on every run), applying the bias and the ReLU there as cuBLASLt's epilogues do.
/// The outcome, measured on an H100 (Benchmarks/RESULTS.md): they lost at every shape of the workloads, by 1.15×
/// at best (128×512×256, 7.8 µs against 6.8) and 1.5× at 128×512×784, so they are off by default.
///
/// Each kernel computes, row-major, C[m, n] = act(alpha · op(A)·op(B) + beta · C + bias) with 4×4 outputs per
/// thread; one kernel per tile shape and pair of transposes, named `tiled_gemm_<BM>x<BN>_<t><t>` (`n` or `t`).
struct TiledGemm {
    /// One way to run a product: the tile and the number of splits of `k`.
    struct Config: Hashable, CustomStringConvertible {
        var rowsPerTile: Int, columnsPerTile: Int
        var splits: Int
        var description: String { "own \(rowsPerTile)×\(columnsPerTile) tiles, k in \(splits)" }
    }

    /// The tile shapes compiled (rows × columns of C per block).
    static let tiles = [(32, 32), (64, 32), (32, 64), (64, 64)]
    /// Products above this many floating-point operations get no candidates of ours: they fill the card with
    /// cuBLASLt's tiles, which then win, and timing ours would only lengthen start-up.
    static let maximumFlops = 4e9
    /// The scratch each stream needs: partial sums of the splits, and one arrival counter per tile (zeroed once,
    /// and set back to zero by the last block of each tile).
    static let partialBytes = 16 << 20
    static let counterCount = 1 << 16

    static func kernelName(rowsPerTile: Int, columnsPerTile: Int, transposeA: Bool, transposeB: Bool) -> String {
        "tiled_gemm_\(rowsPerTile)x\(columnsPerTile)_\(transposeA ? "t" : "n")\(transposeB ? "t" : "n")"
    }

    static var kernelNames: [String] {
        tiles.flatMap { tile in
            [(false, false), (false, true), (true, false), (true, true)].map {
                kernelName(rowsPerTile: tile.0, columnsPerTile: tile.1, transposeA: $0.0, transposeB: $0.1)
            }
        }
    }

    /// The configurations worth timing for an `m`×`n`×`k` product on a card with `multiprocessors` SMs: each tile
    /// shape with `k` whole and cut into 64-, 128- and 256-deep pieces (64 is the kernels' load depth), keeping the
    /// splits that launch at most 16 blocks per SM and whose partial sums fit the scratch.
    static func candidates(m: Int, n: Int, k: Int, multiprocessors: Int) -> [Config] {
        guard m > 0, n > 0, k > 0, 2.0 * Double(m) * Double(n) * Double(k) <= maximumFlops else { return [] }
        var result = [Config]()
        for (rows, columns) in tiles {
            let tileCount = ((m + rows - 1) / rows) * ((n + columns - 1) / columns)
            guard tileCount <= counterCount else { continue }
            var splitsSeen = Set<Int>()
            for piece in [k, 64, 128, 256] {
                let splits = (k + piece - 1) / piece
                guard splitsSeen.insert(splits).inserted else { continue }
                let blocks = tileCount * splits
                if splits > 1 {
                    guard blocks <= 16 * multiprocessors, m * n * splits * 4 <= partialBytes else { continue }
                }
                result.append(Config(rowsPerTile: rows, columnsPerTile: columns, splits: splits))
            }
        }
        return result
    }

    /// The kernels, in CUDA C (compiled by NVRTC into a module of their own when first needed).
    static let source = #"""
// C[m, n] = act(alpha * op(A) op(B) + beta * C + bias), row-major, for one BM x BN tile of C and one split of k.
// op(A)[i, kk] is A[i * lda + kk], or A[kk * lda + i] when TA; op(B)[kk, j] is B[kk * ldb + j], or B[j * ldb + kk]
// when TB. epilogue: 0 none, 1 bias, 2 bias then ReLU. With gridDim.z splits, each block writes its partial tile
// to partials[z][m][n]; the last block of a tile to arrive (counted in counters[tile]) adds them in split order.
template <int BM, int BN, bool TA, bool TB>
__device__ __forceinline__ void tiled_gemm(
        const float* __restrict__ A, int lda, const float* __restrict__ B, int ldb, float* C, int ldc,
        const float* __restrict__ bias, int m, int n, int k, float alpha, float beta, int epilogue, int k_per_split,
        float* partials, unsigned* counters) {
    constexpr int TM = 4, TN = 4, BK = 64;
    constexpr int THREADS = (BM / TM) * (BN / TN);
    constexpr int A_LOADS = BM * BK / THREADS, B_LOADS = BN * BK / THREADS;
    // +4: keeps each row 16-byte aligned for the float4 reads and spreads the column-wise stores over banks.
    __shared__ __align__(16) float As[BK][BM + 4];
    __shared__ __align__(16) float Bs[BK][BN + 4];
    __shared__ bool is_last;
    const int tid = threadIdx.x;
    const int tx = tid % (BN / TN), ty = tid / (BN / TN);
    const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
    const int k_begin = blockIdx.z * k_per_split;
    const int k_end = min(k, k_begin + k_per_split);
    float acc[TM][TN];
    #pragma unroll
    for (int r = 0; r < TM; ++r) {
        #pragma unroll
        for (int c = 0; c < TN; ++c) acc[r][c] = 0.f;
    }
    // The next step's loads are issued before the current step's arithmetic, so that with one or two blocks per SM
    // the wait on memory overlaps the products instead of adding to them.
    float a_buffer[A_LOADS], b_buffer[B_LOADS];
    auto load = [&](int k0) {
        #pragma unroll
        for (int l = 0; l < A_LOADS; ++l) {
            const int idx = tid + l * THREADS;
            const int i = TA ? idx % BM : idx / BK, kk = TA ? idx / BM : idx % BK;
            const int gi = row0 + i, gk = k0 + kk;
            a_buffer[l] = (gi < m && gk < k_end) ? (TA ? A[(long)gk * lda + gi] : A[(long)gi * lda + gk]) : 0.f;
        }
        #pragma unroll
        for (int l = 0; l < B_LOADS; ++l) {
            const int idx = tid + l * THREADS;
            const int j = TB ? idx / BK : idx % BN, kk = TB ? idx % BK : idx / BN;
            const int gj = col0 + j, gk = k0 + kk;
            b_buffer[l] = (gj < n && gk < k_end) ? (TB ? B[(long)gj * ldb + gk] : B[(long)gk * ldb + gj]) : 0.f;
        }
    };
    if (k_begin < k_end) load(k_begin);
    for (int k0 = k_begin; k0 < k_end; k0 += BK) {
        #pragma unroll
        for (int l = 0; l < A_LOADS; ++l) {
            const int idx = tid + l * THREADS;
            const int i = TA ? idx % BM : idx / BK, kk = TA ? idx / BM : idx % BK;
            As[kk][i] = a_buffer[l];
        }
        #pragma unroll
        for (int l = 0; l < B_LOADS; ++l) {
            const int idx = tid + l * THREADS;
            const int j = TB ? idx / BK : idx % BN, kk = TB ? idx % BK : idx / BN;
            Bs[kk][j] = b_buffer[l];
        }
        __syncthreads();
        if (k0 + BK < k_end) load(k0 + BK);
        #pragma unroll 16
        for (int kk = 0; kk < BK; ++kk) {
            const float4 a = *reinterpret_cast<const float4*>(&As[kk][ty * TM]);
            const float4 b = *reinterpret_cast<const float4*>(&Bs[kk][tx * TN]);
            const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
            #pragma unroll
            for (int r = 0; r < TM; ++r) {
                #pragma unroll
                for (int c = 0; c < TN; ++c) acc[r][c] = fmaf(av[r], bv[c], acc[r][c]);
            }
        }
        __syncthreads();
    }
    if (gridDim.z > 1) {
        float* mine = partials + (long)blockIdx.z * m * n;
        #pragma unroll
        for (int r = 0; r < TM; ++r) {
            const int gi = row0 + ty * TM + r;
            #pragma unroll
            for (int c = 0; c < TN; ++c) {
                const int gj = col0 + tx * TN + c;
                if (gi < m && gj < n) mine[(long)gi * n + gj] = acc[r][c];
            }
        }
        __threadfence();
        __syncthreads();
        if (tid == 0) {
            const unsigned tile = blockIdx.y * gridDim.x + blockIdx.x;
            const unsigned arrived = atomicAdd(&counters[tile], 1u);
            is_last = arrived == gridDim.z - 1;
            // Every other split of this tile has arrived: the counter is free for the next product on the stream.
            if (is_last) counters[tile] = 0;
        }
        __syncthreads();
        if (!is_last) return;
        __threadfence();
        // Split by split, all of this thread's partial sums at once (and four splits' loads in flight): a loop over
        // the splits inside each element would wait on memory once per element and split.
        #pragma unroll
        for (int r = 0; r < TM; ++r) {
            #pragma unroll
            for (int c = 0; c < TN; ++c) acc[r][c] = 0.f;
        }
        #pragma unroll 4
        for (int z = 0; z < (int)gridDim.z; ++z) {
            const float* split = partials + (long)z * m * n;
            #pragma unroll
            for (int r = 0; r < TM; ++r) {
                const int gi = row0 + ty * TM + r;
                #pragma unroll
                for (int c = 0; c < TN; ++c) {
                    const int gj = col0 + tx * TN + c;
                    if (gi < m && gj < n) acc[r][c] += __ldcg(split + (long)gi * n + gj);
                }
            }
        }
    }
    #pragma unroll
    for (int r = 0; r < TM; ++r) {
        const int gi = row0 + ty * TM + r;
        #pragma unroll
        for (int c = 0; c < TN; ++c) {
            const int gj = col0 + tx * TN + c;
            if (gi < m && gj < n) {
                float v = alpha * acc[r][c];
                if (beta != 0.f) v = fmaf(beta, C[(long)gi * ldc + gj], v);
                if (epilogue >= 1) v += bias[gj];
                if (epilogue == 2) v = v > 0.f ? v : 0.f;
                C[(long)gi * ldc + gj] = v;
            }
        }
    }
}

#define TILED_GEMM(BM, BN, TA, TB, NAME) \
extern "C" __global__ void __launch_bounds__((BM / 4) * (BN / 4)) NAME( \
        const float* A, int lda, const float* B, int ldb, float* C, int ldc, const float* bias, int m, int n, int k, \
        float alpha, float beta, int epilogue, int k_per_split, float* partials, unsigned* counters) { \
    tiled_gemm<BM, BN, TA, TB>(A, lda, B, ldb, C, ldc, bias, m, n, k, alpha, beta, epilogue, k_per_split, partials, counters); \
}
#define TILED_GEMM_ALL(BM, BN) \
    TILED_GEMM(BM, BN, false, false, tiled_gemm_##BM##x##BN##_nn) \
    TILED_GEMM(BM, BN, false, true, tiled_gemm_##BM##x##BN##_nt) \
    TILED_GEMM(BM, BN, true, false, tiled_gemm_##BM##x##BN##_tn) \
    TILED_GEMM(BM, BN, true, true, tiled_gemm_##BM##x##BN##_tt)
TILED_GEMM_ALL(32, 32)
TILED_GEMM_ALL(64, 32)
TILED_GEMM_ALL(32, 64)
TILED_GEMM_ALL(64, 64)

"""#
}

/// The compiled `TiledGemm` kernels of one backend, and their launch.
final class TiledGemmKernels {
    let driver: CUDADriver
    /// The card's SM count, which decides how far `k` is split.
    let multiprocessors: Int
    private let functions: [String: OpaquePointer?]

    /// Looks up every kernel in `module`, `TiledGemm.source` compiled for the device.
    init(driver: CUDADriver, module: OpaquePointer?, multiprocessors: Int) throws {
        self.driver = driver
        self.multiprocessors = multiprocessors
        var functions = [String: OpaquePointer?]()
        for name in TiledGemm.kernelNames {
            var function: OpaquePointer?
            try driver.check(driver.cuModuleGetFunction(&function, module, name), "cuModuleGetFunction(\(name))")
            functions[name] = function
        }
        self.functions = functions
    }

    func candidates(for call: MatmulCall) -> [TiledGemm.Config] {
        TiledGemm.candidates(m: call.m, n: call.n, k: call.k, multiprocessors: multiprocessors)
    }

    /// Queues `call` with `config` on `stream`, using `workspace`'s partial sums and counters.
    /// - Throws: `CUDAError` when the scratch cannot hold the partial sums of that many splits, or the launch fails.
    func launch(_ config: TiledGemm.Config, _ call: MatmulCall, stream: OpaquePointer?, workspace: MatmulWorkspace) throws {
        let name = TiledGemm.kernelName(rowsPerTile: config.rowsPerTile, columnsPerTile: config.columnsPerTile,
                                        transposeA: call.transposeA, transposeB: call.transposeB)
        let gridX = (call.n + config.columnsPerTile - 1) / config.columnsPerTile
        let gridY = (call.m + config.rowsPerTile - 1) / config.rowsPerTile
        guard let function = functions[name], config.splits >= 1, config.splits == 1
                || (gridX * gridY <= TiledGemm.counterCount && call.m * call.n * config.splits * 4 <= TiledGemm.partialBytes)
        else { throw CUDAError("\(config) cannot run \(call.label): its partial sums do not fit the scratch") }
        let epilogue: Int32
        switch call.epilogue {
        case .none: epilogue = 0
        case .bias: epilogue = 1
        case .reluBias: epilogue = 2
        }
        let kPerSplit = (call.k + config.splits - 1) / config.splits
        // The kernel's parameters, in order, each in an 8-byte slot.
        var slots: [UInt64] = [
            UInt64(call.a), UInt64(call.lda), UInt64(call.b), UInt64(call.ldb), UInt64(call.c), UInt64(call.ldc),
            UInt64(call.bias), UInt64(call.m), UInt64(call.n), UInt64(call.k),
            UInt64(call.alpha.bitPattern), UInt64(call.beta.bitPattern), UInt64(epilogue), UInt64(kPerSplit),
            workspace.partials, workspace.counters,
        ]
        let threads = UInt32((config.rowsPerTile / 4) * (config.columnsPerTile / 4))
        let status = slots.withUnsafeMutableBytes { raw in
            var pointers = (0..<raw.count / 8).map { Optional(raw.baseAddress! + 8 * $0) }
            return pointers.withUnsafeMutableBufferPointer { p in
                driver.cuLaunchKernel(function, UInt32(gridX), UInt32(gridY), UInt32(config.splits), threads, 1, 1, 0, stream, p.baseAddress, nil)
            }
        }
        try driver.check(status, "cuLaunchKernel(\(call.label), \(config))")
    }
}
