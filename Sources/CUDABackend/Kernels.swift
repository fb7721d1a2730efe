/// The cuda backend's kernels in CUDA C, one module compiled by NVRTC for the device when the backend starts; each
/// mirrors an operation of `Backend`. In parts by concept: the helpers every kernel uses (here), bf16 rounding, the gathers, the
/// elementwise passes and the loss, the output layer and the optimizer (`Kernels+<Part>.swift`).
enum Kernels {
    /// The whole module.
    static let source = ["extern \"C\" {", common, bf16, gather, elementwise, outputLayer, optimizer, "}"].joined(separator: "\n\n")

    /// Activation codes and functions, and the wait for the kernel before (programmatic launches).
    static let common = #"""
// Activation codes: 0 relu, 1 tanh, 2 sigmoid, 3 identity (the order of Activation.allCases).
__device__ __forceinline__ float activate(float z, int a) {
    switch (a) {
    case 0: return z > 0.f ? z : 0.f;
    case 1: return tanhf(z);
    case 2: return 1.f / (1.f + expf(-z));
    default: return z;
    }
}

// Selects rather than a switch: inside an unrolled loop a switch made the compiler copy the loop once per case.
__device__ __forceinline__ float derivative(float y, int a) {
    float relu = y > 0.f ? 1.f : 0.f, tanh_d = 1.f - y * y, sigmoid_d = y * (1.f - y);
    return a == 0 ? relu : a == 1 ? tanh_d : a == 2 ? sigmoid_d : 1.f;
}

// For a kernel launched with programmatic stream serialisation (sm_90 and later): waits until the kernel before it
// on its stream has finished and its writes are visible. Nothing that kernel writes may be read or written before
// this. Without that launch attribute (or before sm_90) it returns at once.
__device__ __forceinline__ void wait_for_previous_kernel() {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
"""#
}
