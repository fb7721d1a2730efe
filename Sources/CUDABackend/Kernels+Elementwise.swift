extension Kernels {
    /// The transposed copy of a weight gradient's input, the bias and activation and their backward, and the loss.
    static let elementwise = #"""
// out[c, r] = in[r, c] for the rows x columns matrix `in` (row stride ld), into the columns x rows matrix `out`:
// 32 x 32 tiles through shared memory, so that both the reads and the writes are coalesced. Block (32, 8).
__global__ void transpose(float* out, const float* in, int rows, int columns, int ld) {
    __shared__ float tile[32][33];
    int c0 = blockIdx.x * 32, r0 = blockIdx.y * 32;
    for (int j = threadIdx.y; j < 32; j += blockDim.y) {
        int r = r0 + j, c = c0 + threadIdx.x;
        if (r < rows && c < columns) tile[j][threadIdx.x] = in[(long)r * ld + c];
    }
    __syncthreads();
    for (int j = threadIdx.y; j < 32; j += blockDim.y) {
        int c = c0 + j, r = r0 + threadIdx.x;
        if (c < columns && r < rows) out[(long)c * rows + r] = tile[threadIdx.x][j];
    }
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
// them in chunk order. No float atomics: the same result every run. With the identity (activation 3) the gradient
// is left as it is and only its column sums are written (the output layer's input gradient's, on the side stream).
// With `mirror` (not null, bf16 products), the new gradient is written rounded to bf16 there too, at the same index:
// the copy the products below read, without a conversion of their own.
__global__ void activation_backward(float* gradient, float* bias_gradient, const float* outputs, int rows, int columns,
                                    int activation, float* partials, unsigned int* counters, unsigned short* mirror) {
    __shared__ float partial[16][33];
    __shared__ bool last_chunk;
    wait_for_previous_kernel();   // the gradient is the product's before this
    int c = blockIdx.x * 32 + threadIdx.x;
    int chunk_rows = (rows + gridDim.y - 1) / gridDim.y;
    int r0 = blockIdx.y * chunk_rows, r1 = min(rows, r0 + chunk_rows);
    float sum = 0.f;
    if (c < columns) {
        // Eight rows' loads (a 128-row chunk's share of a thread) issued before any store: the stores might alias
        // the next loads as far as the compiler knows, and one row at a time waited out a memory latency per row.
        // The sum keeps its order (r, r + 16, ...).
        for (int r = r0 + threadIdx.y; r < r1; r += 128) {
            float g[8], o[8];
            #pragma unroll
            for (int u = 0; u < 8; u++) {
                long i = (long)(r + 16 * u) * columns + c;
                if (r + 16 * u < r1) { g[u] = gradient[i]; o[u] = outputs[i]; }
            }
            #pragma unroll
            for (int u = 0; u < 8; u++) {
                if (r + 16 * u >= r1) break;
                long i = (long)(r + 16 * u) * columns + c;
                float d = g[u] * derivative(o[u], activation);
                if (activation != 3) {   // identity: the gradient stays (column sums only)
                    gradient[i] = d;
                    if (mirror) mirror[i] = bf16_bits(d);
                }
                sum += d;
            }
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

// One thread per row of a regression: d = outputs[r, c] - table[rows[r], c]; the loss (2 squared error, 3 Huber with
// delta 1) averaged over the columns, the squared error, and the gradient times scale. As the host backends' loop.
__global__ void regression_loss(float* gradient, float* metrics, const float* outputs, const int* sample_rows,
                                const float* table, int rows, int columns, int loss, float scale) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const float* z = outputs + (long)r * columns;
    const float* t = table + (long)sample_rows[r] * columns;
    float per_output = 1.f / (float)columns, row_loss = 0.f, squares = 0.f;
    for (int c = 0; c < columns; c++) {
        float d = z[c] - t[c];
        float a = fabsf(d);
        row_loss += loss == 3 ? (a <= 1.f ? 0.5f * d * d : a - 0.5f) : d * d;
        squares += d * d;
        if (gradient) gradient[(long)r * columns + c] = scale * (loss == 3 ? fminf(fmaxf(d, -1.f), 1.f) : 2.f * d) * per_output;
    }
    atomicAdd(&metrics[0], row_loss * per_output);
    atomicAdd(&metrics[1], squares);
}
"""#
}
