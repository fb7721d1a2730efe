/// The whole training step of a small MLP as one kernel (`fused_train_step`), in CUDA C compiled into a module of its
/// own after the backend's other kernels (`moduleSource`: it uses their device functions), when a network first
/// asks for it. Opt-in (`MLP_CUDA_FUSED_STEP=1`, `Network(fusesSteps: true)`):
/// measured on an H200 it was slower than the step op by op.
///
/// The idea: at a batch of 128 rows the step's work is small (0.4 GFLOP for 784-512-256-10) and its time is mostly
/// the chain of some fifteen dependent graph nodes (latency-128, the same chain with 16-wide layers, took 35–38 µs
/// of small-128's 44–54). One cooperative launch of two blocks an SM runs the step in phases separated by grid-wide
/// barriers, as tiny-cuda-nn fuses its small MLPs:
///
/// 0. the batch gathered from the dataset's bytes through the indices, normalised as `gather_batch` does;
/// 1. each hidden layer's forward, `H = f([X, 1] · [W; b])` (the bias as a column of ones times the bias row, which
///    follows the weights in the flat buffer);
/// 2. the output layer, a warp per row: logits, loss, its gradient, prediction, and the gradient carried back through
///    the layer and the activation below;
/// 3. for each hidden layer from the last down: the input gradient `dZ = (dZ_above · Wᵀ) ⊙ f'(H)`, and beside it the
///    weight gradient of the layer above, whose weights nothing reads any more, with that layer's optimizer update
///    applied to each element as it is computed (`[Xᵀ; 1ᵀ] · dZ`: the last row is the bias gradient);
/// 4. the first layers' weight gradients with their updates, and the batch's loss and correct count.
///
/// The products are fp32 FMAs (in TF32 mode too), tiles of 16×16 to 32×32 outputs per block with `k` split over the
/// block's warps and their partial sums added in a fixed order: no float atomics, the same results on every run.
///
/// What it measured (Benchmarks/RESULTS.md, H200): 84–86 µs a small-128 step against 55 op by op, 42–47 at latency-128
/// against 38. The barriers cost 0.6–0.9 µs each; the phases are what is slow: every phase has a floor of 2.5–4 µs
/// of dependent memory round trips, and the products, which the chunks of `k` walk one round trip after another,
/// ran 2–3 times slower than cuBLASLt's (Nsight Compute: 35% of issue slots used, most instructions the copies'
/// address arithmetic, warps waiting at the block's barriers).
enum FusedStepKernel {
    /// The most layers the kernel's descriptor holds.
    static let maximumLayers = 8
    /// The most outputs of the last layer (the warp-per-row output phase keeps one logit per output in registers).
    static let maximumOutputs = 16
    /// Threads a block (`FUSED_THREADS`).
    static let threads = 256
    /// Blocks an SM (`FUSED_BLOCKS_PER_SM`): the launch has this many for each SM, all resident at once.
    static let blocksPerSM = 2
    /// Dynamic shared memory a block: two stages of `FUSED_STAGE` floats.
    static let sharedBytes = 2 * 9216 * 4

    /// The descriptor's size in 8-byte words: 5 numbers and 9 pointers, then 6 words per layer (see `FusedStep` in
    /// the source).
    static let descriptorWords = 14 + 6 * maximumLayers
    /// Floats of the optional timeline (`FUSED_TIMELINE`).
    static let timelineFloats = 32

    /// What NVRTC compiles: the backend's kernels (for `activate`, `derivative`, `output_row_loss` and
    /// `updated_parameter`), then this kernel.
    static let moduleSource = Kernels.source + source

    static let source = #"""

// ---- The whole training step of a small MLP in one kernel (FusedStepKernel.swift) ----

#define FUSED_MAX_LAYERS 8
#define FUSED_THREADS 256
#define FUSED_CHUNK 128                // k loaded into shared memory at a time
#define FUSED_STAGE 9216               // floats a stage of shared memory: the largest tile's operands (32x32: 128 x 36 each)
#define FUSED_BLOCKS_PER_SM 2          // the launch's blocks an SM, all resident (two stages each: 72 KB)

extern "C" {

// Every field 8 bytes, so that the host writes the descriptor as an array of 64-bit words.
struct FusedLayer {
    long long weight_offset;   // into the flat buffer; the bias ([outputs]) follows the weights ([inputs, outputs])
    long long inputs, outputs;
    long long activation;      // of this layer's outputs (0 relu, 1 tanh, 2 sigmoid, 3 identity)
    float* out;                // [rows, outputs]: f(Z), the logits for the last layer
    float* grad;               // [rows, outputs]: the loss's gradient with respect to Z
};
struct FusedStep {
    long long layers, loss, kind, nesterov;   // loss 0 softmax cross-entropy, 1 squared error; kind as optimizer_update
    long long count;                          // parameters: the optimizer state's slot stride
    float* params; float* grads; float* state;
    float* inputs;                            // [rows, features], written
    int* labels;                              // [rows], written
    float* metrics;                           // [2], accumulated: loss sum, correct count
    float* row_stats;                         // [2 * rows]: each row's loss and correctness
    unsigned* barrier;                        // [2]: arrivals, generation (zero before the first launch)
    float* timeline;                          // null, or [FUSED_TIMELINE] sums over launches (see grid_barrier)
    FusedLayer layer[FUSED_MAX_LAYERS];
};

// With a timeline (MLP_CUDA_FUSED_TIMELINE=1), where a launch's time goes, in floats summed over launches, in
// nanoseconds of the global timer: slot 2p phase p's work (from block 0's leaving the barrier before it, or its
// start, to the last block's arrival at the barrier after it), slot 2p + 1 that barrier's own latency (to block 0's
// leaving it); slot FUSED_TIMELINE - 3 the number of launches; the last two floats hold the last arrival's time
// (64 bits). The last phase ends at an extra barrier, made only with a timeline.
#define FUSED_TIMELINE 32
__device__ __forceinline__ unsigned long long global_nanoseconds() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

// Every block waits until every block has arrived. The arrival count returns to zero at each barrier and the
// generation only grows, so the pair stays valid from one launch to the next. Needs every block resident at once:
// the host launches one block an SM, cooperatively (the launch fails rather than deadlocks otherwise).
// `timeline`: see FUSED_TIMELINE; `phase` numbers the barriers of a launch; `*left` is when block 0 left the last
// one (or started).
__device__ __forceinline__ void grid_barrier(unsigned* barrier, float* timeline, int phase, unsigned long long* left) {
    __syncthreads();
    if (threadIdx.x == 0) {
        volatile unsigned* generation = barrier + 1;
        unsigned seen = *generation;   // cannot move before this block arrives
        __threadfence();               // this block's writes, and the read above, before the arrival
        if (atomicAdd(barrier, 1u) == gridDim.x - 1) {
            if (timeline) ((volatile unsigned long long*)timeline)[FUSED_TIMELINE / 2 - 1] = global_nanoseconds();
            atomicExch(barrier, 0u);
            __threadfence();
            atomicAdd(barrier + 1, 1u);
        } else {
            while (*generation == seen) __nanosleep(20);
        }
        __threadfence();
        if (timeline && blockIdx.x == 0) {
            unsigned long long arrived = ((volatile unsigned long long*)timeline)[FUSED_TIMELINE / 2 - 1], now = global_nanoseconds();
            timeline[2 * phase] += (float)(arrived - *left);
            timeline[2 * phase + 1] += (float)(now - arrived);
            *left = now;
        }
    }
    __syncthreads();
}

}  // extern "C"

// ---- Operands of the tile products: where op(A)[m, k] and op(B)[k, n] are (null for a one: the bias's column or
// row); K_CONTIGUOUS says along which index consecutive elements sit in memory, so that the copies into shared
// memory are coalesced ----

// [X, 1]: a layer's input rows with a column of ones after them (the bias's), X [rows, cols].
struct RowsWithOnes {
    static constexpr bool K_CONTIGUOUS = true;
    const float* x; int cols;
    __device__ __forceinline__ const float* address(int m, int k) const { return k < cols ? x + (long)m * cols + k : 0; }
};

// [Xᵀ; 1ᵀ]: a layer's inputs transposed, with a row of ones under them, X [rows, cols] (the weight gradient's A:
// its last row gives the bias gradient).
struct TransposedWithOnes {
    static constexpr bool K_CONTIGUOUS = false;
    const float* x; int cols;
    __device__ __forceinline__ const float* address(int m, int k) const { return m < cols ? x + (long)k * cols + m : 0; }
};

// B [k, n] row-major with row stride ld (weights with their bias row; a gradient).
struct RowMajor {
    static constexpr bool K_CONTIGUOUS = false;
    const float* b; int ld;
    __device__ __forceinline__ const float* address(int k, int n) const { return b + (long)k * ld + n; }
};

// Wᵀ: B[k, n] = W[n, k] for W [*, ld] (the input gradient's product with the weights).
struct Transposed {
    static constexpr bool K_CONTIGUOUS = true;
    const float* w; int ld;
    __device__ __forceinline__ const float* address(int k, int n) const { return w + (long)n * ld + k; }
};

// The kernel's shared memory (dynamic: two stages of FUSED_STAGE floats, more than the 48 KB a static array may
// have), named here rather than passed as a pointer: through a pointer parameter its loads and stores were generic
// ones.
extern __shared__ __align__(16) float fused_smem[];

// A 4-byte copy from global to shared memory that the copying thread does not wait for (sm_80 and later; a plain
// copy before): cp_async_wait then waits for this thread's copies, a __syncthreads for everyone's.
__device__ __forceinline__ void cp_async4(float* to, const float* from) {
#if __CUDA_ARCH__ >= 800
    unsigned address = (unsigned)__cvta_generic_to_shared(to);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" :: "r"(address), "l"(from));
#else
    *to = *from;
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#if __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::);
#endif
}
// Waits until at most `pending` of this thread's committed groups of copies are still in flight.
template <int pending>
__device__ __forceinline__ void cp_async_wait() {
#if __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;\n" :: "n"(pending));
#endif
}

// ---- One TM x TN tile of C = op(A) op(B), M x N x K, by the block's 256 threads ----
// Each thread keeps 4 x 4 outputs; the TM*TN/16 threads of a group cover the tile, and the 256 / (TM*TN/16) groups
// split each chunk of FUSED_CHUNK k between them. Chunks go through shared memory in two stages (A stored [m][k]
// when it is contiguous along k, else [k][m]; B likewise): the next chunk's copies are issued (cp.async, no
// registers held for them) before this chunk's arithmetic. Elements outside the matrices are zeros, the operands'
// ones (the bias's) are stored directly. At the end the groups' partial tiles are added in group order and
// `epilogue(m, n, value)` is called for each output inside M x N.
template <int TM, int TN, class OpA, class OpB, class Epilogue>
__device__ __forceinline__ void tile_product(const OpA a, const OpB b, int m0, int n0, int M, int N, int K,
                                             const Epilogue epilogue) {
    constexpr int GT = TM * TN / 16;                 // threads a group
    constexpr int G = FUSED_THREADS / GT;            // groups
    constexpr int KG = FUSED_CHUNK / G;              // k a group per chunk
    constexpr int LA = OpA::K_CONTIGUOUS ? FUSED_CHUNK + 4 : TM + 4;   // row stride of A's copy
    constexpr int LB = OpB::K_CONTIGUOUS ? FUSED_CHUNK + 4 : TN + 4;
    constexpr int A_FLOATS = OpA::K_CONTIGUOUS ? TM * LA : FUSED_CHUNK * LA;
    constexpr int NA = TM * FUSED_CHUNK / FUSED_THREADS, NB = FUSED_CHUNK * TN / FUSED_THREADS;
    static_assert(A_FLOATS + (OpB::K_CONTIGUOUS ? TN * LB : FUSED_CHUNK * LB) <= FUSED_STAGE, "tile too large");
    static_assert(G * TM * TN <= 2 * FUSED_STAGE, "partial tiles too large");
    const int t = threadIdx.x, g = t / GT, lt = t % GT;
    const int ti = lt / (TN / 4), tj = lt % (TN / 4);   // this thread's outputs: rows ti*4.., columns tj*4..
    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0.f;

    // Issues the copies of the chunk at k0 into `stage`.
    auto issue = [&](int k0, int stage) {
        float* As = fused_smem + stage * FUSED_STAGE;
        float* Bs = As + A_FLOATS;
#pragma unroll 4
        for (int s = 0; s < NA; s++) {
            int e = t + s * FUSED_THREADS;
            int m = OpA::K_CONTIGUOUS ? e / FUSED_CHUNK : e % TM, k = OpA::K_CONTIGUOUS ? e % FUSED_CHUNK : e / TM;
            float* to = OpA::K_CONTIGUOUS ? &As[m * LA + k] : &As[k * LA + m];
            if (m0 + m < M && k0 + k < K) {
                const float* from = a.address(m0 + m, k0 + k);
                if (from) cp_async4(to, from); else *to = 1.f;
            } else {
                *to = 0.f;
            }
        }
#pragma unroll 4
        for (int s = 0; s < NB; s++) {
            int e = t + s * FUSED_THREADS;
            int n = OpB::K_CONTIGUOUS ? e / FUSED_CHUNK : e % TN, k = OpB::K_CONTIGUOUS ? e % FUSED_CHUNK : e / TN;
            float* to = OpB::K_CONTIGUOUS ? &Bs[n * LB + k] : &Bs[k * LB + n];
            if (n0 + n < N && k0 + k < K) cp_async4(to, b.address(k0 + k, n0 + n)); else *to = 0.f;
        }
        cp_async_commit();
    };

    __syncthreads();   // the block's previous use of shared memory is over
    issue(0, 0);
    int stage = 0;
    for (int k0 = 0; k0 < K; k0 += FUSED_CHUNK, stage ^= 1) {
        if (k0 + FUSED_CHUNK < K) {
            issue(k0 + FUSED_CHUNK, stage ^ 1);   // in flight during the arithmetic below
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();   // this chunk's copies, everyone's, have landed
        const float* As = fused_smem + stage * FUSED_STAGE;
        const float* Bs = As + A_FLOATS;
#pragma unroll 1
        for (int kk = g * KG; kk < g * KG + KG; kk += 4) {
            float av[4][4], bv[4][4];   // av[i][q] = A[ti*4 + i, kk + q], bv[q][j] = B[kk + q, tj*4 + j]
#pragma unroll
            for (int i = 0; i < 4; i++) {
                float4 v = OpA::K_CONTIGUOUS ? *(const float4*)&As[(ti * 4 + i) * LA + kk]
                                             : *(const float4*)&As[(kk + i) * LA + ti * 4];
                if (OpA::K_CONTIGUOUS) { av[i][0] = v.x; av[i][1] = v.y; av[i][2] = v.z; av[i][3] = v.w; }
                else { av[0][i] = v.x; av[1][i] = v.y; av[2][i] = v.z; av[3][i] = v.w; }
            }
#pragma unroll
            for (int j = 0; j < 4; j++) {
                float4 v = OpB::K_CONTIGUOUS ? *(const float4*)&Bs[(tj * 4 + j) * LB + kk]
                                             : *(const float4*)&Bs[(kk + j) * LB + tj * 4];
                if (OpB::K_CONTIGUOUS) { bv[0][j] = v.x; bv[1][j] = v.y; bv[2][j] = v.z; bv[3][j] = v.w; }
                else { bv[j][0] = v.x; bv[j][1] = v.y; bv[j][2] = v.z; bv[j][3] = v.w; }
            }
#pragma unroll
            for (int q = 0; q < 4; q++)
#pragma unroll
                for (int i = 0; i < 4; i++)
#pragma unroll
                    for (int j = 0; j < 4; j++) acc[i][j] += av[i][q] * bv[q][j];
        }
        __syncthreads();   // every group is done with this stage before the chunk after next is copied into it
    }
    // The groups' partial tiles, added in group order.
    float* partial = fused_smem;   // [G][TM * TN]
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) partial[g * TM * TN + (ti * 4 + i) * TN + tj * 4 + j] = acc[i][j];
    __syncthreads();
    for (int e = t; e < TM * TN; e += FUSED_THREADS) {
        float v = 0.f;
#pragma unroll
        for (int s = 0; s < G; s++) v += partial[s * TM * TN + e];
        int m = m0 + e / TN, n = n0 + e % TN;
        if (m < M && n < N) epilogue(m, n, v);
    }
}

// The tile shape for an M x N product spread over `blocks` blocks: of 32x32, 16x32 and 16x16 (0, 1, 2 in *shape),
// the one whose rounds of tiles (the most any block takes) times a tile's cost is smallest. A tile's cost is its
// outputs plus 8 per row and column: per k, a TM x TN tile makes TM*TN multiply-adds and loads TM + TN values, and
// an SM makes about 8 multiply-adds in the time it loads a value from L2. Returns the number of tiles.
__device__ __forceinline__ int tile_count(int M, int N, int blocks, int* shape) {
    const int rows_per[3] = {32, 16, 16}, columns_per[3] = {32, 32, 16};
    int best = 0, best_tiles = 0;
    long best_cost = 0;
    for (int s = 0; s < 3; s++) {
        int tiles = ((M + rows_per[s] - 1) / rows_per[s]) * ((N + columns_per[s] - 1) / columns_per[s]);
        long cost = (long)((tiles + blocks - 1) / blocks) * (rows_per[s] * columns_per[s] + 8 * (rows_per[s] + columns_per[s]));
        if (s == 0 || cost < best_cost) { best = s; best_tiles = tiles; best_cost = cost; }
    }
    *shape = best;
    return best_tiles;
}

// Not inlined: each instantiation gets its own registers (inlined into the one kernel, every product shared 255 of
// them and spilled). The operands and the epilogue come by value, in registers.
template <class OpA, class OpB, class Epilogue>
__device__ __noinline__ void product_tile(int shape, int tile, const OpA a, const OpB b, int M, int N, int K,
                                          const Epilogue epilogue) {
    if (shape == 0) {
        int columns = (N + 31) / 32;
        tile_product<32, 32>(a, b, tile / columns * 32, tile % columns * 32, M, N, K, epilogue);
    } else if (shape == 1) {
        int columns = (N + 31) / 32;
        tile_product<16, 32>(a, b, tile / columns * 16, tile % columns * 32, M, N, K, epilogue);
    } else {
        int columns = (N + 15) / 16;
        tile_product<16, 16>(a, b, tile / columns * 16, tile % columns * 16, M, N, K, epilogue);
    }
}

// ---- Epilogues ----

// A hidden layer's output: out[m, n] = f(v) (the bias is inside v).
struct StoreActivated {
    float* out; int n_out, activation;
    __device__ __forceinline__ void operator()(int m, int n, float v) const {
        out[(long)m * n_out + n] = activate(v, activation);
    }
};

// The layer below's gradient: grad[m, n] = v * f'(h[m, n]).
struct StoreBackward {
    float* grad; const float* h; int n_out, activation;
    __device__ __forceinline__ void operator()(int m, int n, float v) const {
        long i = (long)m * n_out + n;
        grad[i] = v * derivative(h[i], activation);
    }
};

// A weight (or, in the last row, bias) gradient: kept in the gradient buffer and applied at once.
struct StoreAndUpdate {
    float* params; float* grads; float* state; long long stride; long long offset; int n_out;
    OptimizerValues o;
    __device__ __forceinline__ void operator()(int m, int n, float v) const {
        long i = offset + (long)m * n_out + n;
        grads[i] = v;
        float s1 = o.first_state ? state[i] : 0.f, s2 = o.second_state ? state[stride + i] : 0.f;
        params[i] = updated_parameter(o, params[i], v, s1, s2);
        if (o.first_state) state[i] = s1;
        if (o.second_state) state[stride + i] = s2;
    }
};

// The tiles of layer l's weight gradient [Xᵀ; 1ᵀ] · dZ (inputs + 1 rows: the bias's last), each element updated.
struct WeightGradient {
    int shape, tiles;
    __device__ __forceinline__ void prepare(const FusedStep* d, int l, int blocks) {
        tiles = tile_count((int)d->layer[l].inputs + 1, (int)d->layer[l].outputs, blocks, &shape);
    }
};

__device__ __forceinline__ void weight_gradient_tile(const FusedStep* d, int l, int shape, int tile, int rows,
                                                     const OptimizerValues& o) {
    const FusedLayer& L = d->layer[l];
    int in = (int)L.inputs, out = (int)L.outputs;
    const float* x = l == 0 ? d->inputs : d->layer[l - 1].out;
    StoreAndUpdate e{d->params, d->grads, d->state, d->count, L.weight_offset, out, o};
    product_tile(shape, tile, TransposedWithOnes{x, in}, RowMajor{L.grad, out}, in + 1, out, rows, e);
}

// ---- The output layer: a warp per row (out <= OUT_MAX) ----
// Logits z = x · W + b, the loss and its gradient (times scale) into the layer's grad, the row's loss and
// correctness into row_stats; with a layer below, that layer's gradient (g · Wᵀ) ⊙ f'(x).
__device__ __forceinline__ void fused_output_rows(const FusedStep* d, const unsigned char* source_labels,
                                                  const int* indices, int rows, float scale) {
    const int l = (int)d->layers - 1;
    const FusedLayer& L = d->layer[l];
    const int in = (int)L.inputs, out = (int)L.outputs;
    const float* x_all = l == 0 ? d->inputs : d->layer[l - 1].out;
    const float* w = d->params + L.weight_offset;
    const float* bias = w + (long)in * out;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = FUSED_THREADS / 32;
    const unsigned mask = 0xffffffffu;
    for (int r = blockIdx.x + gridDim.x * warp; r < rows; r += gridDim.x * warps) {
        const float* x = x_all + (long)r * in;
        float z[OUT_MAX];
#pragma unroll
        for (int c = 0; c < OUT_MAX; c++) z[c] = 0.f;
        for (int k = lane; k < in; k += 32) {
            float xv = x[k];
            const float* wk = w + (long)k * out;
#pragma unroll
            for (int c = 0; c < OUT_MAX; c++) if (c < out) z[c] += xv * wk[c];
        }
#pragma unroll
        for (int c = 0; c < OUT_MAX; c++) {
            if (c < out) {
#pragma unroll
                for (int o = 16; o > 0; o >>= 1) z[c] += __shfl_xor_sync(mask, z[c], o);
                z[c] += bias[c];
            }
        }
        int label = source_labels[indices[r]];
        int best;
        float g[OUT_MAX];
        float row_loss = output_row_loss(z, out, label, (int)d->loss, scale, g, &best);
#pragma unroll
        for (int c = 0; c < OUT_MAX; c++) {
            if (c < out && lane == c) {
                L.out[(long)r * out + c] = z[c];
                L.grad[(long)r * out + c] = g[c];
            }
        }
        if (lane == 0) {
            d->labels[r] = label;
            d->row_stats[2 * r] = row_loss;
            d->row_stats[2 * r + 1] = best == label ? 1.f : 0.f;
        }
        if (l > 0) {
            float* below = d->layer[l - 1].grad + (long)r * in;
            int activation = (int)d->layer[l - 1].activation;
            for (int k = lane; k < in; k += 32) {
                const float* wk = w + (long)k * out;
                float s = 0.f;
#pragma unroll
                for (int c = 0; c < OUT_MAX; c++) if (c < out) s += g[c] * wk[c];
                below[k] = s * derivative(x[k], activation);
            }
        }
    }
}

// The batch's loss and correct count from row_stats, added to metrics in a fixed order (one warp).
__device__ __forceinline__ void fused_metrics(const FusedStep* d, int rows) {
    if (threadIdx.x >= 32) return;
    float loss = 0.f, correct = 0.f;
    for (int r = threadIdx.x; r < rows; r += 32) {
        loss += d->row_stats[2 * r];
        correct += d->row_stats[2 * r + 1];
    }
    for (int o = 16; o > 0; o >>= 1) {
        loss += __shfl_xor_sync(0xffffffffu, loss, o);
        correct += __shfl_xor_sync(0xffffffffu, correct, o);
    }
    if (threadIdx.x == 0) {
        d->metrics[0] += loss;
        d->metrics[1] += correct;
    }
}

extern "C" {

// One training step (see FusedStepKernel.swift): FUSED_BLOCKS_PER_SM blocks an SM, launched cooperatively with
// 2 * FUSED_STAGE floats of dynamic shared memory; h holds the optimizer's
// values for the step (optimizer_update's layout).
__global__ void __launch_bounds__(FUSED_THREADS, FUSED_BLOCKS_PER_SM)
fused_train_step(const FusedStep* d, const unsigned char* pixels, const unsigned char* source_labels,
                 const int* indices, int rows, int features, float scale, float shift, const float* h) {
    const int layers = (int)d->layers, blocks = gridDim.x;
    int phase = 0;
    unsigned long long left = d->timeline ? global_nanoseconds() : 0;
    // 0. The batch, gathered from the dataset's bytes through the indices into the inputs buffer (rounded as
    // gather_batch does). Apart from the first product, whose loads would otherwise each wait for an index and then
    // a pixel.
    for (long i = blockIdx.x * (long)FUSED_THREADS + threadIdx.x; i < (long)rows * features; i += (long)blocks * FUSED_THREADS) {
        long r = i / features, f = i % features;
        d->inputs[i] = __fadd_rn(__fmul_rn((float)pixels[(long)indices[r] * features + f], scale), shift);
    }
    grid_barrier(d->barrier, d->timeline, phase++, &left);
    // 1. The hidden layers' forward.
    for (int l = 0; l < layers - 1; l++) {
        const FusedLayer& L = d->layer[l];
        int in = (int)L.inputs, out = (int)L.outputs, shape;
        int tiles = tile_count(rows, out, blocks, &shape);
        StoreActivated e{L.out, out, (int)L.activation};
        const float* x = l == 0 ? d->inputs : d->layer[l - 1].out;
        for (int tile = blockIdx.x; tile < tiles; tile += blocks) {
            product_tile(shape, tile, RowsWithOnes{x, in}, RowMajor{d->params + L.weight_offset, out}, rows, out, in + 1, e);
        }
        grid_barrier(d->barrier, d->timeline, phase++, &left);
    }
    // 2. The output layer, the loss, and the gradient of the layer below.
    fused_output_rows(d, source_labels, indices, rows, 1.f / rows);
    grid_barrier(d->barrier, d->timeline, phase++, &left);
    const OptimizerValues o = optimizer_values(h, (int)d->kind, (int)d->nesterov);
    // 3. Down the hidden layers: layer l's input gradient, and the weight gradient and update of layer l + 1.
    for (int l = layers - 2; l >= 1; l--) {
        const FusedLayer& L = d->layer[l];
        int in = (int)L.inputs, out = (int)L.outputs, shape;
        int tiles = tile_count(rows, in, blocks, &shape);
        WeightGradient above;
        above.prepare(d, l + 1, blocks);
        StoreBackward e{d->layer[l - 1].grad, d->layer[l - 1].out, in, (int)d->layer[l - 1].activation};
        for (int item = blockIdx.x; item < tiles + above.tiles; item += blocks) {
            if (item < tiles) {
                product_tile(shape, item, RowsWithOnes{L.grad, out}, Transposed{d->params + L.weight_offset, out},
                             rows, in, out, e);   // K = out: the ones column is never reached
            } else {
                weight_gradient_tile(d, l + 1, above.shape, item - tiles, rows, o);
            }
        }
        grid_barrier(d->barrier, d->timeline, phase++, &left);
    }
    // 4. The first two layers' weight gradients and updates (the first only, for one layer), and the metrics.
    WeightGradient first, second;
    first.prepare(d, 0, blocks);
    second.tiles = 0;
    if (layers > 1) second.prepare(d, 1, blocks);
    for (int item = blockIdx.x; item < first.tiles + second.tiles; item += blocks) {
        if (item < second.tiles) weight_gradient_tile(d, 1, second.shape, item, rows, o);
        else weight_gradient_tile(d, 0, first.shape, item - second.tiles, rows, o);
    }
    if (blockIdx.x == blocks - 1) fused_metrics(d, rows);
    if (d->timeline) {
        grid_barrier(d->barrier, d->timeline, phase, &left);
        if (blockIdx.x == 0 && threadIdx.x == 0) d->timeline[FUSED_TIMELINE - 3] += 1.f;
    }
}

}  // extern "C"
"""#
}
