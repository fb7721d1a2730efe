extension Kernels {
    /// A batch gathered from the resident dataset: the indices in device memory or in the kernel's parameters.
    static let gather = #"""
// inputs[r, f] = samples[sample, f] * scale + shift for row r (rounded twice, as on the host: no fused multiply-add),
// and the row's label: block `block` of the row's `blocks`, each thread four features (`gatherBlocks` in Swift sizes
// the grid so). The values are bytes (pictures) or, with float_values, floats (tables, arrays): one branch for the
// whole launch. Where the row's features are a multiple of 4 and the buffers allow it, a thread loads its four
// values at once (4 bytes or 16) and stores one float4: a row of 784 pixels is then 196 loads of a word instead of
// 784 of a byte.
__device__ __forceinline__ float gathered(float v, float scale, float shift) { return __fadd_rn(__fmul_rn(v, scale), shift); }
__device__ __forceinline__ void gather_row(float* inputs, int* labels, const void* samples, int float_values, const int* source_labels,
                                           int r, long sample, int features, float scale, float shift, int block, int blocks) {
    const unsigned char* bytes = (const unsigned char*)samples + sample * features;
    const float* floats = (const float*)samples + sample * features;
    float* out = inputs + (long)r * features;
    bool vector = (features & 3) == 0 && ((unsigned long)inputs & 15) == 0
        && ((unsigned long)samples & (float_values ? 15 : 3)) == 0;
    int quads = (features + 3) >> 2;
    for (int q = block * blockDim.x + threadIdx.x; q < quads; q += blocks * blockDim.x) {
        if (vector) {
            float4 v;
            if (float_values) {
                v = ((const float4*)floats)[q];
            } else {
                uchar4 b = ((const uchar4*)bytes)[q];
                v = make_float4((float)b.x, (float)b.y, (float)b.z, (float)b.w);
            }
            ((float4*)out)[q] = make_float4(gathered(v.x, scale, shift), gathered(v.y, scale, shift),
                                            gathered(v.z, scale, shift), gathered(v.w, scale, shift));
        } else {
            for (int f = 4 * q; f < 4 * q + 4 && f < features; f++)
                out[f] = gathered(float_values ? floats[f] : (float)bytes[f], scale, shift);
        }
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
