extension Kernels {
    /// `--precision bf16`: fp32 values rounded to bf16 for the products' operands (`CUDABackend+BF16.swift`).
    static let bf16 = #"""
// x rounded to the nearest bf16 (ties to even), as its 16 bits: fp32's upper half, rounded. A NaN stays a NaN (its
// quiet bit set, so that rounding cannot carry it into an infinity); infinities and values that round past bf16's
// largest become infinities, as a cast would.
__device__ __forceinline__ unsigned short bf16_bits(float x) {
    unsigned int u = __float_as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
    return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// out[i] = bf16(in[i]) for i < count: four a thread, loaded as one float4 and stored as two words where both
// addresses allow it (the mirror of an fp32 buffer sits at half its offset, so a 16-byte aligned float4 maps to an
// 8-byte aligned bf16 quad).
__global__ void to_bf16(unsigned short* out, const float* in, long count) {
    bool vector = (((unsigned long)in & 15) == 0) && (((unsigned long)out & 7) == 0);
    for (long i = (blockIdx.x * (long)blockDim.x + threadIdx.x) * 4; i < count; i += (long)gridDim.x * blockDim.x * 4) {
        if (vector && i + 3 < count) {
            float4 v = *(const float4*)(in + i);
            uint2 packed;
            packed.x = (unsigned int)bf16_bits(v.x) | ((unsigned int)bf16_bits(v.y) << 16);
            packed.y = (unsigned int)bf16_bits(v.z) | ((unsigned int)bf16_bits(v.w) << 16);
            *(uint2*)(out + i) = packed;
        } else {
            for (long j = i; j < i + 4 && j < count; j++) out[j] = bf16_bits(in[j]);
        }
    }
}
"""#
}
