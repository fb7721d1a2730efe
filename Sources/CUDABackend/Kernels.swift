/// The cuda backend's kernels, in CUDA C, compiled by NVRTC for the device's compute capability when the backend
/// starts. Each mirrors an operation of `Backend` (see its documentation for the definitions).
enum Kernels {
    static let source = #"""
extern "C" {

// Activation codes: 0 relu, 1 tanh, 2 sigmoid, 3 identity (the order of Activation.allCases).
__device__ __forceinline__ float activate(float z, int a) {
    switch (a) {
    case 0: return z > 0.f ? z : 0.f;
    case 1: return tanhf(z);
    case 2: return 1.f / (1.f + expf(-z));
    default: return z;
    }
}

__device__ __forceinline__ float derivative(float y, int a) {
    switch (a) {
    case 0: return y > 0.f ? 1.f : 0.f;
    case 1: return 1.f - y * y;
    case 2: return y * (1.f - y);
    default: return 1.f;
    }
}

// inputs[r, f] = pixels[indices[r], f] * scale + shift (rounded twice, as on the host: no fused multiply-add).
__global__ void gather_batch(float* inputs, int* labels, const unsigned char* pixels, const unsigned char* source_labels,
                             const int* indices, int batch, int features, float scale, float shift) {
    int r = blockIdx.y;
    long sample = indices[r];
    for (int f = blockIdx.x * blockDim.x + threadIdx.x; f < features; f += gridDim.x * blockDim.x) {
        inputs[(long)r * features + f] = __fadd_rn(__fmul_rn((float)pixels[sample * features + f], scale), shift);
    }
    if (blockIdx.x == 0 && threadIdx.x == 0) labels[r] = source_labels[sample];
}

// values[r, c] = f(values[r, c] + bias[c])
__global__ void bias_activation(float* values, const float* bias, long count, int columns, int activation) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < count; i += (long)gridDim.x * blockDim.x) {
        values[i] = activate(values[i] + bias[i % columns], activation);
    }
}

// gradient[r, c] *= f'(outputs[r, c]); bias_gradient[c] = sum over rows. Block (32 columns, 16 row groups), grid
// (column groups, row chunks). A warp reads 32 consecutive columns of a row (coalesced); each row group sums its
// rows of the chunk, and one thread per column adds the 16 partial sums in a fixed order. With one chunk that is
// the bias gradient; with several (a tall batch: more blocks to spread over the SMs), each chunk's sums go to
// `partials` [chunks, columns] and the last chunk of a column group to finish (counted in counters[group]) adds
// them in chunk order. No float atomics: the same result every run.
__global__ void activation_backward(float* gradient, float* bias_gradient, const float* outputs, int rows, int columns,
                                    int activation, float* partials, unsigned int* counters) {
    __shared__ float partial[16][33];
    __shared__ bool last_chunk;
    int c = blockIdx.x * 32 + threadIdx.x;
    int chunk_rows = (rows + gridDim.y - 1) / gridDim.y;
    int r0 = blockIdx.y * chunk_rows, r1 = min(rows, r0 + chunk_rows);
    float sum = 0.f;
    if (c < columns) {
        for (int r = r0 + threadIdx.y; r < r1; r += 16) {
            long i = (long)r * columns + c;
            float d = gradient[i] * derivative(outputs[i], activation);
            gradient[i] = d;
            sum += d;
        }
    }
    partial[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    float total = 0.f;
    if (threadIdx.y == 0) for (int k = 0; k < 16; k++) total += partial[k][threadIdx.x];
    if (gridDim.y == 1) {
        if (threadIdx.y == 0 && c < columns) bias_gradient[c] = total;
        return;
    }
    if (threadIdx.y == 0 && c < columns) partials[(long)blockIdx.y * columns + c] = total;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0 && threadIdx.y == 0) last_chunk = atomicAdd(&counters[blockIdx.x], 1u) == gridDim.y - 1;
    __syncthreads();
    if (!last_chunk) return;
    __threadfence();
    if (threadIdx.y == 0 && c < columns) {
        float t = 0.f;
        for (int k = 0; k < (int)gridDim.y; k++) t += ((volatile float*)partials)[(long)k * columns + c];
        bias_gradient[c] = t;
    }
    if (threadIdx.x == 0 && threadIdx.y == 0) counters[blockIdx.x] = 0u;
}

// One thread per row: loss (0 softmax cross-entropy, 1 squared error), its gradient times scale, the argmax.
__global__ void loss_rows(float* gradient, float* metrics, int* predictions, const float* outputs, const int* labels,
                          int rows, int columns, int loss, float scale) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const float* z = outputs + (long)r * columns;
    int label = labels[r];
    int best = 0;
    for (int c = 1; c < columns; c++) if (z[c] > z[best]) best = c;
    float row_loss = 0.f;
    if (loss == 0) {
        float m = z[best], sum = 0.f;
        for (int c = 0; c < columns; c++) sum += expf(z[c] - m);
        row_loss = m + logf(sum) - z[label];
        if (gradient) {
            for (int c = 0; c < columns; c++) gradient[(long)r * columns + c] = expf(z[c] - m) / sum * scale;
            gradient[(long)r * columns + label] -= scale;
        }
    } else {
        for (int c = 0; c < columns; c++) {
            float d = z[c] - (c == label ? 1.f : 0.f);
            row_loss += d * d;
            if (gradient) gradient[(long)r * columns + c] = scale * 2.f * d;
        }
    }
    if (predictions) predictions[r] = best;
    atomicAdd(&metrics[0], row_loss);
    if (best == label) atomicAdd(&metrics[1], 1.f);
}

// The output layer and the loss in one kernel, for narrow layers (out <= 16, in x out weights that fit in shared
// memory). A block copies the weights to shared memory and holds 16 rows of 16 lanes: lane c of a row computes
// logit c as a plain dot product (the row's inputs are read by its 16 lanes at once, a broadcast), then the row's softmax (or squared error), gradient and
// prediction go across its 16 lanes with shuffles. The bias gradient and the metrics are summed per block in
// shared memory, each block's sums go to `partials`, and the last block to finish (counted in `counter`) adds the
// blocks' sums in block order: no float atomics, so the results are the same on every run.
// With in_gradient (a training step's backward), the block also carries its rows' gradient back through the layer:
// in_gradient[r, i] = (sum over c of gradient[r, c] * w[i, c]) * f'(x[r, i]), f the previous layer's activation
// (in_activation), from the weights already in shared memory; its column sums go to in_partials [blocks, in] and
// the last block adds them in block order into in_bias_gradient. That is the input-gradient product and the
// activation backward of the layer below, without their two launches.
#define OUT_MAX 16
#define ROWS_PER_BLOCK 16
__global__ void output_layer_loss(float* outputs, float* gradient, float* bias_gradient, float* metrics, int* predictions,
                                  const float* x, const float* w, const float* b, const int* labels,
                                  int rows, int in, int out, int loss, float scale,
                                  float* partials, unsigned int* counter,
                                  float* in_gradient, float* in_bias_gradient, int in_activation, float* in_partials) {
    __shared__ float bias_part[ROWS_PER_BLOCK][OUT_MAX];
    __shared__ float loss_part[ROWS_PER_BLOCK], correct_part[ROWS_PER_BLOCK];
    __shared__ bool last_block;
    extern __shared__ float w_s[];   // the weights, [in, out], loaded once per block with every thread
    for (int i = threadIdx.x; i < in * out; i += blockDim.x) w_s[i] = w[i];
    __syncthreads();
    int c = threadIdx.x & 15, slot = threadIdx.x >> 4;
    int r = blockIdx.x * ROWS_PER_BLOCK + slot;
    const unsigned mask = 0xffffffffu;   // every lane runs every shuffle; width 16 keeps each row to its half-warp
    bool row_ok = r < rows, active = row_ok && c < out;
    float z = 0.f;
    if (active) {
        const float* xr = x + (long)r * in;
        float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
        int k = 0;
        for (; k + 3 < in; k += 4) {
            s0 = fmaf(xr[k], w_s[k * out + c], s0);
            s1 = fmaf(xr[k + 1], w_s[(k + 1) * out + c], s1);
            s2 = fmaf(xr[k + 2], w_s[(k + 2) * out + c], s2);
            s3 = fmaf(xr[k + 3], w_s[(k + 3) * out + c], s3);
        }
        for (; k < in; k++) s0 = fmaf(xr[k], w_s[k * out + c], s0);
        z = b[c] + ((s0 + s1) + (s2 + s3));
        outputs[(long)r * out + c] = z;
    }
    // The largest output, the first one on ties.
    float best_v = active ? z : __int_as_float(0xff800000);  // -infinity (NVRTC has no math.h)
    int best_i = active ? c : 0x7fffffff;
    for (int o = 8; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(mask, best_v, o, 16);
        int oi = __shfl_xor_sync(mask, best_i, o, 16);
        if (ov > best_v || (ov == best_v && oi < best_i)) { best_v = ov; best_i = oi; }
    }
    int label = row_ok ? labels[r] : 0;
    float row_loss, g = 0.f;
    if (loss == 0) {
        float e = active ? expf(z - best_v) : 0.f;
        float s = e;
        for (int o = 8; o > 0; o >>= 1) s += __shfl_xor_sync(mask, s, o, 16);
        float zl = __shfl_sync(mask, z, label, 16);
        row_loss = best_v + logf(s) - zl;
        g = e / s * scale;
        if (c == label) g -= scale;
    } else {
        float d = active ? z - (c == label ? 1.f : 0.f) : 0.f;
        float sq = d * d;
        for (int o = 8; o > 0; o >>= 1) sq += __shfl_xor_sync(mask, sq, o, 16);
        row_loss = sq;
        g = scale * 2.f * d;
    }
    if (active && gradient) gradient[(long)r * out + c] = g;
    bias_part[slot][c] = active ? g : 0.f;
    if (c == 0) {
        if (row_ok && predictions) predictions[r] = best_i;
        loss_part[slot] = row_ok ? row_loss : 0.f;
        correct_part[slot] = row_ok && best_i == label ? 1.f : 0.f;
    }
    __syncthreads();
    int t = threadIdx.x;
    if (in_gradient) {
        // bias_part holds this block's gradient rows (zero past `out` and past the batch's last row).
        int r0 = blockIdx.x * ROWS_PER_BLOCK, n_rows = min(ROWS_PER_BLOCK, rows - r0);
        for (int i = t; i < in; i += blockDim.x) {
            float wi[OUT_MAX];
#pragma unroll
            for (int o = 0; o < OUT_MAX; o++) wi[o] = o < out ? w_s[i * out + o] : 0.f;
            float column = 0.f;
            for (int s = 0; s < n_rows; s++) {
                float d = 0.f;
#pragma unroll
                for (int o = 0; o < OUT_MAX; o++) d = fmaf(bias_part[s][o], wi[o], d);
                long at = (long)(r0 + s) * in + i;
                d *= derivative(x[at], in_activation);
                in_gradient[at] = d;
                column += d;
            }
            in_partials[(long)blockIdx.x * in + i] = column;
        }
    }
    // This block's sums: thread c sums column c over the rows; thread 16 the losses, thread 17 the correct count.
    float* mine = partials + (long)blockIdx.x * (OUT_MAX + 2);
    if (t < OUT_MAX) {
        float s = 0.f;
        for (int i = 0; i < ROWS_PER_BLOCK; i++) s += bias_part[i][t];
        mine[t] = s;
    } else if (t == OUT_MAX || t == OUT_MAX + 1) {
        float s = 0.f;
        for (int i = 0; i < ROWS_PER_BLOCK; i++) s += t == OUT_MAX ? loss_part[i] : correct_part[i];
        mine[t] = s;
    }
    __threadfence();
    __syncthreads();
    if (t == 0) last_block = atomicAdd(counter, 1u) == gridDim.x - 1;
    __syncthreads();
    if (!last_block) return;
    // The last block: every block's sums, in block order.
    __threadfence();
    if (t < OUT_MAX + 2) {
        float s = 0.f;
        for (int i = 0; i < (int)gridDim.x; i++) s += ((volatile float*)partials)[(long)i * (OUT_MAX + 2) + t];
        if (t < out) { if (bias_gradient && gradient) bias_gradient[t] = s; }
        else if (t == OUT_MAX) metrics[0] += s;
        else if (t == OUT_MAX + 1) metrics[1] += s;
    }
    if (in_gradient) {
        for (int i = t; i < in; i += blockDim.x) {
            // Eight blocks' sums loaded at a time (from L2: other blocks wrote them), added in block order.
            float s = 0.f;
            int k = 0;
            for (; k + 8 <= (int)gridDim.x; k += 8) {
                float v[8];
#pragma unroll
                for (int j = 0; j < 8; j++) v[j] = __ldcg(in_partials + (long)(k + j) * in + i);
#pragma unroll
                for (int j = 0; j < 8; j++) s += v[j];
            }
            for (; k < (int)gridDim.x; k++) s += __ldcg(in_partials + (long)k * in + i);
            in_bias_gradient[i] = s;
        }
    }
    if (t == 0) *counter = 0u;
}

// kind: 0 sgd, 1 adam, 2 adamw. State: momentum, or the two moments at state and state + count.
// h: learning rate, momentum, weight decay, beta1, beta2, epsilon, 1 - beta1^t, 1 - beta2^t (in device memory, so
// that a recorded step reads each step's values).
__global__ void optimizer_update(float* p, const float* g, float* state, long count, int kind, int nesterov, const float* h) {
    float lr = h[0], momentum = h[1], weight_decay = h[2], beta1 = h[3], beta2 = h[4], epsilon = h[5], c1 = h[6], c2 = h[7];
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < count; i += (long)gridDim.x * blockDim.x) {
        float param = p[i];
        float d = g[i];
        if (kind == 0) {
            d = weight_decay * param + d;
            if (momentum > 0.f) {
                float b = momentum * state[i] + d;
                state[i] = b;
                d = nesterov ? momentum * b + d : b;
            }
            p[i] = -lr * d + param;
        } else {
            if (kind == 2) param *= 1.f - lr * weight_decay; else d = weight_decay * param + d;
            float m = beta1 * state[i] + (1.f - beta1) * d;
            float v = beta2 * state[count + i] + (1.f - beta2) * d * d;
            state[i] = m;
            state[count + i] = v;
            p[i] = param - lr * (m / c1) / (sqrtf(v / c2) + epsilon);
        }
    }
}

}
"""#
}
