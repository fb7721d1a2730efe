import CPUKernels
import _Builtin_intrinsics.intel

// Compiled with -target-cpu haswell (AVX2 and FMA): the generic kernels are specialised here for 8-wide
// vectors. Only call into this module on a CPU that has AVX2 and FMA (`CPUFeatures`).

/// AVX2 with FMA: 8 floats per register.
public enum AVX2ISA: KernelISA {
    public typealias Vector = SIMD8<Float>
    @inline(__always)
    public static func multiplyAdd(_ a: Vector, _ b: Vector, _ c: Vector) -> Vector { c.addingProduct(a, b) }
    @inline(__always) public static func add(_ a: Vector, _ b: Vector) -> Vector { a + b }
    @inline(__always) public static func subtract(_ a: Vector, _ b: Vector) -> Vector { a - b }
    @inline(__always) public static func multiply(_ a: Vector, _ b: Vector) -> Vector { a * b }
    @inline(__always) public static func divide(_ a: Vector, _ b: Vector) -> Vector { a / b }
    @inline(__always) public static func squareRoot(_ a: Vector) -> Vector { _mm256_sqrt_ps(a) }  // SIMD's squareRoot() is 8 sqrtf calls
    @inline(__always) public static func relu(_ a: Vector) -> Vector { pointwiseMax(a, Vector()) }
    @inline(__always) public static func reluGradient(_ g: Vector, output a: Vector) -> Vector {
        g.replacing(with: Vector(), where: a .<= Vector())
    }
    @inline(__always) public static func floats(fromBytes p: UnsafePointer<UInt8>) -> Vector {
        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(SIMD2<Int64>(UnsafeRawPointer(p).loadUnaligned(as: Int64.self), 0)))
    }
}

/// The kernels for AVX2 CPUs.
public let avx2Kernels = KernelSet.make(AVX2ISA.self, name: "avx2")
