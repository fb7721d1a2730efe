extension Kernels {
    /// The output layer, its loss and its backward in one kernel, for narrow layers (a warp per row), and for ten outputs of many inputs (a block per 8 rows).
    static let outputLayer = #"""
// The output layer and the loss in one kernel, for narrow layers (out <= OUT_MAX, in x out weights that fit in
// shared memory: 48 KB, or up to 227 KB a block where the host opted in, which takes wide-1024's 4096x10 layer at
// one block an SM). Blocks of 4 or 8 warps (blockDim.x / 32; the host gives 8 to batches with more rows than 128
// blocks of 4 warps have warps, so each warp has one row and each SM more loads in flight). A block copies the
// weights to shared memory (row stride w_stride: `out` rounded up to odd, so that the 32 lanes reading 32 rows of it
// hit different banks; with cp.async on sm_80 and later, every copy in flight at once) and each of its warps takes
// one row at a time: the lanes split the row's inputs (lane l takes
// inputs l, l + 32, ...), each keeps a partial sum per output, and a butterfly of shuffles gives every lane the same
// complete logits (partners add the same two numbers, so the lanes agree bit for bit). Every lane then computes the
// row's softmax (or squared error), gradient and prediction (the first largest logit) itself, with no further
// exchange. A warp per row keeps a batch of 128 rows on 32 SMs with short chains of dependent instructions and of
// waits on memory.
// With in_gradient (a training step's backward), the warp also carries its row's gradient back through the layer:
// in_gradient[r, i] = (sum over c of gradient[r, c] * w[i, c]) * f'(x[r, i]), f the previous layer's activation
// (in_activation), lane l again taking inputs l, l + 32, ...: the input-gradient product and the activation
// backward of the layer below, without their two launches (the column sums of in_gradient, the layer below's bias
// gradient, are left to the caller: they are not on the critical path).
// Sums without float atomics, so that results are the same on every run: each block adds its rows' bias gradients,
// losses and correct counts (per warp, then the warps in order) into `partials` [blocks, OUT_MAX + 2]; the last
// block to finish adds the blocks' sums in a fixed order into bias_gradient and metrics (add_blocks_sums), or, in
// a training step with a second stream (defer_sums), output_layer_sums does there.
#define OUT_MAX 16
#define OUTPUT_MAX_WARPS 8   // warps a block: 4 or 8 (blockDim.x / 32)
#define SUM_SLICES 7   // the last block's threads per sum: 7 x (OUT_MAX + 2) = 126 of its 128 or more
// Inputs of a row each lane loads before using any (rows of 10 outputs and many inputs; 4 otherwise), so that their
// loads are all in flight at once. One at a time, each of the backward's loads waited behind the store before it (the compiler
// cannot tell that in_gradient and x do not overlap): a memory latency for every 32 inputs, 128 in a row of 4096
// (seen in the SASS).
#define ROW_LOADS 16

// One row's loss from its logits z (bias included; entries from `out` on unused): the loss's gradient times `scale`
// in g (zero from `out` on), the prediction (the first largest logit) in *best, and the loss returned. The loss is
// 0 softmax cross-entropy, 1 squared error against the one-hot label.
__device__ __forceinline__ float output_row_loss(const float* z, int out, int label, int loss, float scale, float* g, int* best) {
    int b = 0;
    float best_v = z[0];
#pragma unroll
    for (int c = 1; c < OUT_MAX; c++) if (c < out && z[c] > best_v) { best_v = z[c]; b = c; }
    *best = b;
    float row_loss = 0.f;
    if (loss == 0) {
        float e[OUT_MAX], s = 0.f, zl = 0.f;
#pragma unroll
        for (int c = 0; c < OUT_MAX; c++) {
            e[c] = c < out ? expf(z[c] - best_v) : 0.f;
            s += e[c];
            if (c == label) zl = z[c];
        }
        row_loss = best_v + logf(s) - zl;
#pragma unroll
        for (int c = 0; c < OUT_MAX; c++) {
            g[c] = c < out ? e[c] / s * scale : 0.f;
            if (c == label) g[c] -= scale;
        }
    } else {
#pragma unroll
        for (int c = 0; c < OUT_MAX; c++) {
            float d = c < out ? z[c] - (c == label ? 1.f : 0.f) : 0.f;
            row_loss += d * d;
            g[c] = scale * 2.f * d;
        }
    }
    return row_loss;
}

// Adds the OUT_MAX + 2 sums (bias gradients, loss, correct count) of `blocks` blocks in partials, in block order,
// into bias_gradient (when not null) and metrics. Thread (v, s) adds sum v of blocks s, s + SUM_SLICES, ... (their
// loads all in flight: other blocks wrote them, so from L2), then thread v adds the slices in order. Every thread of
// the block must call it; it needs SUM_SLICES * (OUT_MAX + 2) threads.
__device__ __forceinline__ void sum_blocks(const float* partials, int blocks, int out, float* bias_gradient, float* metrics) {
    __shared__ float slices[SUM_SLICES][OUT_MAX + 2];
    int t = threadIdx.x;
    int v = t % (OUT_MAX + 2), slice = t / (OUT_MAX + 2);
    if (slice < SUM_SLICES) {
        float s = 0.f;
#pragma unroll 8
        for (int i = slice; i < blocks; i += SUM_SLICES) s += __ldcg(partials + (long)i * (OUT_MAX + 2) + v);
        slices[slice][v] = s;
    }
    __syncthreads();
    if (t < OUT_MAX + 2) {
        float s = 0.f;
        for (int k = 0; k < SUM_SLICES; k++) s += slices[k][t];
        if (t < out) { if (bias_gradient) bias_gradient[t] = s; }
        else if (t == OUT_MAX) metrics[0] += s;
        else if (t == OUT_MAX + 1) metrics[1] += s;
    }
}

// After each block has written its sums to partials[blockIdx.x]: the last block to finish (counted in `counter`,
// which it sets back to zero) adds every block's (sum_blocks).
__device__ __forceinline__ void add_blocks_sums(float* partials, unsigned int* counter, int out, float* bias_gradient, float* metrics) {
    __shared__ bool last_block;
    int t = threadIdx.x;
    __threadfence();
    __syncthreads();
    if (t == 0) last_block = atomicAdd(counter, 1u) == gridDim.x - 1;
    __syncthreads();
    if (!last_block) return;
    __threadfence();
    sum_blocks(partials, gridDim.x, out, bias_gradient, metrics);
    if (t == 0) *counter = 0u;
}

// The sums of an output_layer_loss launch that left them to this kernel (defer_sums), on another stream: one block
// of at least SUM_SLICES * (OUT_MAX + 2) threads, the same additions in the same order as its last block's.
__global__ void output_layer_sums(const float* partials, int blocks, int out, float* bias_gradient, float* metrics) {
    sum_blocks(partials, blocks, out, bias_gradient, metrics);
}

}  // extern "C": the output layer's body is a template, instantiated below for 10 outputs and for any number.

// One batch of LOADS inputs of a row for lane-strided k = k0, k0 + 32, ...: every input loaded before any is used
// (FULL: all LOADS are inside the row, no test per input), then each one's products with the weights' row
// added to the logits z (N outputs, N = 0: n_out at run time).
template <int N, bool FULL, int LOADS>
__device__ __forceinline__ void add_inputs_times_weights(const float* xr, const float* w_s, int w_stride, int k0, int in,
                                                         int n_out, float* z) {
    float xv[LOADS];
#pragma unroll
    for (int u = 0; u < LOADS; u++) xv[u] = FULL || k0 + 32 * u < in ? xr[k0 + 32 * u] : 0.f;
#pragma unroll
    for (int u = 0; u < LOADS; u++) {
        if (FULL || k0 + 32 * u < in) {
            const float* wk = w_s + (k0 + 32 * u) * w_stride;
#pragma unroll
            for (int c = 0; c < OUT_MAX; c++) if (c < (N > 0 ? N : n_out)) z[c] = fmaf(xv[u], wk[c], z[c]);
        }
    }
}

// The same batch of the row's input gradient: ig[i] = (sum over c of g[c] * w[i, c]) * f'(x[r, i]); with igm (not
// null, bf16 products), rounded to bf16 there too.
template <int N, bool FULL, int LOADS>
__device__ __forceinline__ void store_input_gradients(const float* xr, float* ig, unsigned short* igm, const float* w_s, int w_stride, int i0,
                                                      int in, int n_out, const float* g, int in_activation) {
    float xv[LOADS];
#pragma unroll
    for (int u = 0; u < LOADS; u++) xv[u] = FULL || i0 + 32 * u < in ? xr[i0 + 32 * u] : 0.f;
#pragma unroll
    for (int u = 0; u < LOADS; u++) {
        int i = i0 + 32 * u;
        if (FULL || i < in) {
            const float* wi = w_s + i * w_stride;
            float d = 0.f;
#pragma unroll
            for (int c = 0; c < OUT_MAX; c++) if (c < (N > 0 ? N : n_out)) d = fmaf(g[c], wi[c], d);
            float v = d * derivative(xv[u], in_activation);
            ig[i] = v;
            if (igm) igm[i] = bf16_bits(v);
        }
    }
}

// output_layer_loss for N outputs (N = 0: `out` of them, known only at run time), loading LOADS inputs of a row at
// once; it leaves this block's sums in partials[blockIdx.x].
template <int N, int LOADS>
__device__ __forceinline__ void output_layer_rows(float (*sums)[OUT_MAX + 2], float* outputs, float* gradient,
                                                  int* predictions, const float* x, const float* w, const float* b,
                                                  const int* labels, int rows, int in, int out_arg, int loss, float scale,
                                                  float* partials, float* in_gradient, unsigned short* in_mirror, int in_activation, int w_stride) {
    const int out = N > 0 ? N : out_arg;
    extern __shared__ float w_s[];   // the weights, [in, w_stride]
    int t = threadIdx.x, lane = t & 31, warp = t >> 5, warps = blockDim.x >> 5;
    {
        // Element i = k * out + c of w goes to w_s[k * w_stride + c]; k and c advance without a division per element.
        int step_k = blockDim.x / out, step_c = blockDim.x % out, k = t / out, c = t % out;
#pragma unroll 8
        for (int i = t; i < in * out; i += blockDim.x) {
#if __CUDA_ARCH__ >= 800
            unsigned to = (unsigned)__cvta_generic_to_shared(w_s + k * w_stride + c);
            asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" :: "r"(to), "l"(w + i));
#else
            w_s[k * w_stride + c] = w[i];
#endif
            k += step_k;
            c += step_c;
            if (c >= out) { c -= out; k++; }
        }
    }
    float bias_v[OUT_MAX], bias_sum[OUT_MAX];
#pragma unroll
    for (int c = 0; c < OUT_MAX; c++) {
        bias_v[c] = c < out ? b[c] : 0.f;
        bias_sum[c] = 0.f;
    }
    float loss_sum = 0.f, correct_sum = 0.f;
    // The weights and bias (the optimizer's, from the step before) are on their way; the inputs are the product's
    // before this kernel, which may still be finishing.
    wait_for_previous_kernel();
#if __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_all;\n" ::);
#endif
    __syncthreads();
    const unsigned mask = 0xffffffffu;
    const int row_step = gridDim.x * warps;
    // A lane's last full batch of inputs starts below this (batches without a test per input: for N > 0 only, to
    // keep the code NVRTC compiles at start-up small).
    const int full_below = in - 32 * (LOADS - 1);
    for (int r = blockIdx.x * warps + warp; r < rows; r += row_step) {   // the same for every lane of a warp
        int label = labels[r];
        const float* xr = x + (long)r * in;
        float z[OUT_MAX];
#pragma unroll
        for (int c = 0; c < OUT_MAX; c++) z[c] = 0.f;
        for (int k0 = lane; k0 < in; k0 += 32 * LOADS) {
            if (N > 0 && k0 < full_below) add_inputs_times_weights<N, true, LOADS>(xr, w_s, w_stride, k0, in, out, z);
            else add_inputs_times_weights<N, false, LOADS>(xr, w_s, w_stride, k0, in, out, z);
        }
#pragma unroll
        for (int c = 0; c < OUT_MAX; c++) {
            if (c < out) {   // the same for every lane: every lane takes part in each shuffle
#pragma unroll
                for (int o = 16; o > 0; o >>= 1) z[c] += __shfl_xor_sync(mask, z[c], o);
            }
            z[c] += bias_v[c];
        }
        int best;
        float g[OUT_MAX];
        float row_loss = output_row_loss(z, out, label, loss, scale, g, &best);
#pragma unroll
        for (int c = 0; c < OUT_MAX; c++) {
            if (c < out && lane == c) {
                outputs[(long)r * out + c] = z[c];
                if (gradient) gradient[(long)r * out + c] = g[c];
            }
            bias_sum[c] += g[c];
        }
        if (lane == 0 && predictions) predictions[r] = best;
        loss_sum += row_loss;
        correct_sum += best == label ? 1.f : 0.f;
        if (in_gradient) {
            float* ig = in_gradient + (long)r * in;
            unsigned short* igm = in_mirror ? in_mirror + (long)r * in : 0;
            for (int i0 = lane; i0 < in; i0 += 32 * LOADS) {
                if (N > 0 && i0 < full_below) store_input_gradients<N, true, LOADS>(xr, ig, igm, w_s, w_stride, i0, in, out, g, in_activation);
                else store_input_gradients<N, false, LOADS>(xr, ig, igm, w_s, w_stride, i0, in, out, g, in_activation);
            }
        }
    }
    // This block's sums: the warps' (every lane holds its warp's), then added in warp order.
    if (lane == 0) {
#pragma unroll
        for (int c = 0; c < OUT_MAX; c++) sums[warp][c] = bias_sum[c];
        sums[warp][OUT_MAX] = loss_sum;
        sums[warp][OUT_MAX + 1] = correct_sum;
    }
    __syncthreads();
    if (t < OUT_MAX + 2) {
        float s = 0.f;
        for (int k = 0; k < warps; k++) s += sums[k][t];
        partials[(long)blockIdx.x * (OUT_MAX + 2) + t] = s;
    }
}

// output_layer_wide's shape (see there).
#define WIDE_ROWS 8
#define WIDE_OUT 10
#define WIDE_THREADS 256
#define WIDE_BATCH 4   // pairs of inputs a thread loads (for each of the rows) before using any

// The partial logits v[WIDE_ROWS * WIDE_OUT] of each lane, added over the warp: afterwards lane l holds in v[0..4]
// the five sums from index wide_sums_base(l) on (lanes l and l ^ 1 the same ones).
__device__ __forceinline__ int wide_sums_base(int lane) {
    return ((lane >> 4) & 1) * 40 + ((lane >> 3) & 1) * 20 + ((lane >> 2) & 1) * 10 + ((lane >> 1) & 1) * 5;
}

// A pair of inputs' 2 * WIDE_OUT weights from shared memory, 16 bytes at a time (k even: 80-byte aligned).
__device__ __forceinline__ void load_pair_weights(float* wk, const float* from) {
#pragma unroll
    for (int q = 0; q < WIDE_OUT / 2; q++) {
        float4 f = ((const float4*)from)[q];
        wk[4 * q] = f.x; wk[4 * q + 1] = f.y; wk[4 * q + 2] = f.z; wk[4 * q + 3] = f.w;
    }
}

template <int HALF, int OFFSET>
__device__ __forceinline__ void wide_halve(float* v, int lane) {
    const bool upper = (lane & OFFSET) != 0;
#pragma unroll
    for (int i = 0; i < HALF; i++) {
        float send = upper ? v[i] : v[i + HALF], keep = upper ? v[i + HALF] : v[i];
        v[i] = keep + __shfl_xor_sync(0xffffffffu, send, OFFSET);
    }
}

// A thread's WIDE_BATCH pairs of inputs, from k0 on, 2 * WIDE_THREADS apart, of each of a group's n rows from xg
// (zeros past the inputs' end or the group's rows), all loaded before any is used.
__device__ __forceinline__ void load_pair_rows(float2 (*xv)[WIDE_ROWS], const float* xg, int k0, int in, int n) {
#pragma unroll
    for (int u = 0; u < WIDE_BATCH; u++) {
#pragma unroll
        for (int r = 0; r < WIDE_ROWS; r++) {
            int k = k0 + 2 * WIDE_THREADS * u;
            xv[u][r] = k < in && r < n ? *(const float2*)(xg + (long)r * in + k) : make_float2(0.f, 0.f);
        }
    }
}

// output_layer_wide's backward for one group of n rows (xg, igg: their first inputs and input gradients):
// igg[r, k] = (sum over c of g[r, c] * w[k, c]) * f'(x[r, k]) for the thread's pairs of inputs, the same operations
// in the same order as store_input_gradients. RELU: f' as a select of 1 or 0 (the same value as derivative's). With
// iggm (not null, bf16 products), each pair rounded to bf16 there too (4-byte aligned: half igg's 8).
template <bool RELU>
__device__ __forceinline__ void wide_input_gradients(float* igg, unsigned short* iggm, const float* xg, const float* g_s, const float* wt_s,
                                                     int in, int n, int in_activation) {
    const int t = threadIdx.x, pair_step = 2 * WIDE_THREADS;
    float g[WIDE_ROWS][WIDE_OUT];
#pragma unroll
    for (int r = 0; r < WIDE_ROWS; r++) {
#pragma unroll
        for (int c = 0; c < WIDE_OUT; c++) g[r][c] = g_s[r * WIDE_OUT + c];
    }
    for (int k0 = 2 * t; k0 < in; k0 += pair_step * WIDE_BATCH) {
        float2 xv[WIDE_BATCH][WIDE_ROWS];
        load_pair_rows(xv, xg, k0, in, n);
#pragma unroll
        for (int u = 0; u < WIDE_BATCH; u++) {
            int k = k0 + pair_step * u;
            if (k < in) {
                float wk[2 * WIDE_OUT];
                load_pair_weights(wk, wt_s + k * WIDE_OUT);
#pragma unroll
                for (int r = 0; r < WIDE_ROWS; r++) {
                    if (r < n) {
                        float dx = 0.f, dy = 0.f;
#pragma unroll
                        for (int c = 0; c < WIDE_OUT; c++) { dx = fmaf(g[r][c], wk[c], dx); dy = fmaf(g[r][c], wk[WIDE_OUT + c], dy); }
                        float fx = RELU ? (xv[u][r].x > 0.f ? 1.f : 0.f) : derivative(xv[u][r].x, in_activation);
                        float fy = RELU ? (xv[u][r].y > 0.f ? 1.f : 0.f) : derivative(xv[u][r].y, in_activation);
                        float2 v = make_float2(dx * fx, dy * fy);
                        *(float2*)(igg + (long)r * in + k) = v;
                        if (iggm) *(unsigned int*)(iggm + (long)r * in + k) = (unsigned int)bf16_bits(v.x) | ((unsigned int)bf16_bits(v.y) << 16);
                    }
                }
            }
        }
    }
}


extern "C" {

__global__ void output_layer_loss(float* outputs, float* gradient, float* bias_gradient, float* metrics, int* predictions,
                                  const float* x, const float* w, const float* b, const int* labels,
                                  int rows, int in, int out, int loss, float scale,
                                  float* partials, unsigned int* counter,
                                  float* in_gradient, int in_activation, int w_stride, int long_rows_from, int defer_sums,
                                  unsigned short* in_mirror) {
    __shared__ float sums[OUTPUT_MAX_WARPS][OUT_MAX + 2];
    // Ten outputs (MNIST's classes) unrolled without a test per output, ROW_LOADS inputs at once for rows of at least
    // long_rows_from inputs and 4 for shorter ones (whose warps run the code once or twice: straight-line code for 16
    // would be fetched cold); any other number of outputs as it comes.
    if (out == 10 && in >= long_rows_from) {
        output_layer_rows<10, ROW_LOADS>(sums, outputs, gradient, predictions, x, w, b, labels, rows, in, out, loss, scale,
                                         partials, in_gradient, in_mirror, in_activation, w_stride);
    } else if (out == 10) {
        output_layer_rows<10, 4>(sums, outputs, gradient, predictions, x, w, b, labels, rows, in, out, loss, scale,
                                 partials, in_gradient, in_mirror, in_activation, w_stride);
    } else {
        output_layer_rows<0, 4>(sums, outputs, gradient, predictions, x, w, b, labels, rows, in, out, loss, scale,
                                partials, in_gradient, in_mirror, in_activation, w_stride);
    }
    // With defer_sums, output_layer_sums adds the blocks' sums later, off the critical path: this kernel ends
    // without the last block's fence, count and additions.
    if (!defer_sums) add_blocks_sums(partials, counter, out, gradient != 0 ? bias_gradient : 0, metrics);
}

// The output layer for wide inputs: ten outputs (MNIST's classes), an even number of inputs (from
// outputWideFrom on), 8-byte-aligned rows. output_layer_loss gives each row a warp that reads all the weights from
// shared memory: 160 KB of shared loads per row and pass, which bounded wide-1024's 4096x10 layer. Here a block of WIDE_THREADS threads takes
// WIDE_ROWS rows at once and its threads split the inputs (thread t takes the pairs at 2t, 2t + 2 * WIDE_THREADS,
// ...), so each pair of weights loaded from shared memory serves WIDE_ROWS rows. The weights are staged as they are
// (a pair of inputs' 20 weights are 80 contiguous bytes: five 16-byte loads, which 8 threads in a row make on
// different banks), by 16-byte copies. Each thread's partial
// logits (WIDE_ROWS x WIDE_OUT) are added across its warp by halving shuffles (each exchange sends half of what a
// lane holds and keeps the other half: 80 shuffles, not 400) and across the warps through shared memory in warp
// order; one thread a row then computes the loss, gradient and prediction, and in the backward every thread carries
// the rows' gradients back through its pairs of inputs as output_layer_loss does (the same operations in the same
// order for in_gradient). Every sum has a fixed order: the results are the same on every run. The block's sums
// (bias gradients, loss, correct count; rows in order) go to partials[blockIdx.x] as output_layer_loss's do.
__global__ void __launch_bounds__(WIDE_THREADS, 1)
output_layer_wide(float* outputs, float* gradient, float* bias_gradient, float* metrics, int* predictions,
                  const float* x, const float* w, const float* b, const int* labels, int rows, int in, int loss,
                  float scale, float* partials, unsigned int* counter, float* in_gradient, int in_activation,
                  int defer_sums, unsigned short* in_mirror) {
    extern __shared__ float wt_s[];   // the weights as they are, [in, WIDE_OUT]: a pair of inputs' 20 weights in a row
    __shared__ float warp_sums[WIDE_THREADS / 32][WIDE_ROWS * WIDE_OUT];
    __shared__ float z_s[WIDE_ROWS * WIDE_OUT];
    __shared__ float g_s[WIDE_ROWS * WIDE_OUT];
    __shared__ float row_loss_s[WIDE_ROWS], correct_s[WIDE_ROWS];
    const int t = threadIdx.x, lane = t & 31, warp = t >> 5;
    {
        // A plain copy, 16 bytes at a time where the weights are 16-byte aligned (in * WIDE_OUT is a multiple of 4).
        const int count = in * WIDE_OUT;
        if (((unsigned long)w & 15) == 0) {
#pragma unroll 4
            for (int i = 4 * t; i < count; i += 4 * WIDE_THREADS) {
#if __CUDA_ARCH__ >= 800
                unsigned to = (unsigned)__cvta_generic_to_shared(wt_s + i);
                asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" :: "r"(to), "l"(w + i));
#else
                *(float4*)(wt_s + i) = *(const float4*)(w + i);
#endif
            }
        } else {
            for (int i = t; i < count; i += WIDE_THREADS) {
#if __CUDA_ARCH__ >= 800
                unsigned to = (unsigned)__cvta_generic_to_shared(wt_s + i);
                asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" :: "r"(to), "l"(w + i));
#else
                wt_s[i] = w[i];
#endif
            }
        }
    }
    const float bias_v = t < WIDE_ROWS * WIDE_OUT ? b[t % WIDE_OUT] : 0.f;
    float block_sum = 0.f;   // thread t < OUT_MAX + 2: this block's sum t (as output_layer_loss's partials)
    // The weights and bias (the optimizer's, from the step before) are on their way; the inputs are the product's
    // before this kernel, which may still be finishing.
    wait_for_previous_kernel();
#if __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_all;\n" ::);
#endif
    __syncthreads();
    const int groups = (rows + WIDE_ROWS - 1) / WIDE_ROWS;
    const int pair_step = 2 * WIDE_THREADS;
    for (int group = blockIdx.x; group < groups; group += gridDim.x) {
        const int row0 = group * WIDE_ROWS, n = min(WIDE_ROWS, rows - row0);
        const float* xg = x + (long)row0 * in;
        float v[WIDE_ROWS * WIDE_OUT];
#pragma unroll
        for (int i = 0; i < WIDE_ROWS * WIDE_OUT; i++) v[i] = 0.f;
        for (int k0 = 2 * t; k0 < in; k0 += pair_step * WIDE_BATCH) {
            float2 xv[WIDE_BATCH][WIDE_ROWS];
            load_pair_rows(xv, xg, k0, in, n);
#pragma unroll
            for (int u = 0; u < WIDE_BATCH; u++) {
                int k = k0 + pair_step * u;
                if (k < in) {
                    float wk[2 * WIDE_OUT];   // inputs k and k + 1's weights: five 16-byte loads, 80 bytes apart thread to thread
                    load_pair_weights(wk, wt_s + k * WIDE_OUT);
                    float2 wv[WIDE_OUT];
#pragma unroll
                    for (int c = 0; c < WIDE_OUT; c++) wv[c] = make_float2(wk[c], wk[WIDE_OUT + c]);
#pragma unroll
                    for (int r = 0; r < WIDE_ROWS; r++) {
#pragma unroll
                        for (int c = 0; c < WIDE_OUT; c++) {
                            v[r * WIDE_OUT + c] = fmaf(xv[u][r].y, wv[c].y, fmaf(xv[u][r].x, wv[c].x, v[r * WIDE_OUT + c]));
                        }
                    }
                }
            }
        }
        // Across the warp: 80 -> 40 -> 20 -> 10 -> 5 sums a lane, then lanes l and l ^ 1 add theirs.
        wide_halve<40, 16>(v, lane);
        wide_halve<20, 8>(v, lane);
        wide_halve<10, 4>(v, lane);
        wide_halve<5, 2>(v, lane);
#pragma unroll
        for (int i = 0; i < 5; i++) v[i] += __shfl_xor_sync(0xffffffffu, v[i], 1);
        if ((lane & 1) == 0) {
            int base = wide_sums_base(lane);
#pragma unroll
            for (int i = 0; i < 5; i++) warp_sums[warp][base + i] = v[i];
        }
        __syncthreads();
        if (t < WIDE_ROWS * WIDE_OUT) {
            float s = 0.f;
#pragma unroll
            for (int k = 0; k < WIDE_THREADS / 32; k++) s += warp_sums[k][t];
            z_s[t] = s + bias_v;
        }
        __syncthreads();
        if (t < WIDE_ROWS) {
            float z[OUT_MAX], g[OUT_MAX];
#pragma unroll
            for (int c = 0; c < OUT_MAX; c++) { z[c] = c < WIDE_OUT ? z_s[t * WIDE_OUT + c] : 0.f; g[c] = 0.f; }
            float row_loss = 0.f, correct = 0.f;
            if (t < n) {
                const int r = row0 + t, label = labels[r];
                int best;
                row_loss = output_row_loss(z, WIDE_OUT, label, loss, scale, g, &best);
                correct = best == label ? 1.f : 0.f;
#pragma unroll
                for (int c = 0; c < WIDE_OUT; c++) {
                    outputs[(long)r * WIDE_OUT + c] = z[c];
                    if (gradient) gradient[(long)r * WIDE_OUT + c] = g[c];
                }
                if (predictions) predictions[r] = best;
            }
#pragma unroll
            for (int c = 0; c < WIDE_OUT; c++) g_s[t * WIDE_OUT + c] = g[c];
            row_loss_s[t] = row_loss;
            correct_s[t] = correct;
        }
        __syncthreads();
        if (t < OUT_MAX + 2) {
#pragma unroll
            for (int r = 0; r < WIDE_ROWS; r++) {
                block_sum += t < WIDE_OUT ? g_s[r * WIDE_OUT + t] : t == OUT_MAX ? row_loss_s[r] : t == OUT_MAX + 1 ? correct_s[r] : 0.f;
            }
        }
        if (in_gradient) {
            float* igg = in_gradient + (long)row0 * in;
            unsigned short* iggm = in_mirror ? in_mirror + (long)row0 * in : 0;
            if (in_activation == 0) wide_input_gradients<true>(igg, iggm, xg, g_s, wt_s, in, n, in_activation);
            else wide_input_gradients<false>(igg, iggm, xg, g_s, wt_s, in, n, in_activation);
        }
    }
    if (t < OUT_MAX + 2) partials[(long)blockIdx.x * (OUT_MAX + 2) + t] = block_sum;
    if (!defer_sums) add_blocks_sums(partials, counter, WIDE_OUT, gradient != 0 ? bias_gradient : 0, metrics);
}
"""#
}
