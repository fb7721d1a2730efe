import CPUKernels

// Compiled with -target-cpu haswell (AVX2 and FMA): the generic kernels are specialised here for 8-wide
// vectors. Only call into this module on a CPU that has AVX2 and FMA (`CPUFeatures`).

/// AVX2 with FMA: 8 floats per register.
public enum AVX2ISA: KernelISA {
    public typealias Vector = SIMD8<Float>
    @inline(__always)
    public static func multiplyAdd(_ a: Vector, _ b: Vector, _ c: Vector) -> Vector { c.addingProduct(a, b) }
}

/// The kernels for AVX2 CPUs.
public let avx2Kernels = KernelSet.make(AVX2ISA.self, name: "avx2")
