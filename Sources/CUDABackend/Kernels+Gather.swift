extension Kernels {
    /// A batch gathered from the resident dataset: the indices in device memory or in the kernel's parameters.
    static let gather = #"""
// inputs[r, f] = samples[sample, f] * scale + shift for row r (rounded twice, as on the host: no fused multiply-add),
// and the row's label: block `block` of the row's `blocks`. The values are bytes (pictures) or, with float_values,
// floats (tables, arrays): one branch for the whole launch.
__device__ __forceinline__ void gather_row(float* inputs, int* labels, const void* samples, int float_values, const int* source_labels,
                                           int r, long sample, int features, float scale, float shift, int block, int blocks) {
    const unsigned char* bytes = (const unsigned char*)samples + sample * features;
    const float* floats = (const float*)samples + sample * features;
    for (int f = block * blockDim.x + threadIdx.x; f < features; f += blocks * blockDim.x) {
        float v = float_values ? floats[f] : (float)bytes[f];
        inputs[(long)r * features + f] = __fadd_rn(__fmul_rn(v, scale), shift);
    }
    if (block == 0 && threadIdx.x == 0) labels[r] = source_labels[sample];
}

// inputs[r, f] = samples[indices[r], f] * scale + shift: a block row per batch row.
__global__ void gather_batch(float* inputs, int* labels, const void* samples, int float_values, const int* source_labels,
                             const int* indices, int batch, int features, float scale, float shift) {
    gather_row(inputs, labels, samples, float_values, source_labels, blockIdx.y, indices[blockIdx.y], features, scale, shift, blockIdx.x, gridDim.x);
}

// gather_batch with the indices in the kernel's own parameters (at most INLINE_INDICES of them, 4 KB of parameters
// in all): a recorded step changes them in the executable graph before each launch, so the graph needs no copy of
// the indices ahead of the gather.
#define INLINE_INDICES 960
struct InlineIndices { int v[INLINE_INDICES]; };
__global__ void gather_batch_inline(float* inputs, int* labels, const void* samples, int float_values, const int* source_labels,
                                    int batch, int features, float scale, float shift, InlineIndices indices) {
    gather_row(inputs, labels, samples, float_values, source_labels, blockIdx.y, indices.v[blockIdx.y], features, scale, shift, blockIdx.x, gridDim.x);
}

// The same for batches of up to INLINE_INDICES_LARGE rows: a 16 KB parameter, which a CUDA 12.1 driver or later
// takes (the limit was 4 KB before; now 32,764 bytes).
#define INLINE_INDICES_LARGE 4096
struct InlineIndicesLarge { int v[INLINE_INDICES_LARGE]; };
__global__ void gather_batch_inline_large(float* inputs, int* labels, const void* samples, int float_values, const int* source_labels,
                                          int batch, int features, float scale, float shift, InlineIndicesLarge indices) {
    gather_row(inputs, labels, samples, float_values, source_labels, blockIdx.y, indices.v[blockIdx.y], features, scale, shift, blockIdx.x, gridDim.x);
}
"""#
}
