import CPUKernels
import _Builtin_intrinsics.intel

// Compiled with -target-cpu skylake-avx512 (AVX-512 F/CD/BW/DQ/VL): the generic kernels are specialised here for 16-wide
// vectors. Only call into this module on a CPU that has AVX-512 (`CPUFeatures`).

/// AVX-512: 16 floats per register, fused multiply-add.
public enum AVX512ISA: KernelISA {
    public typealias Vector = SIMD16<Float>
    @inline(__always)
    public static func multiplyAdd(_ a: Vector, _ b: Vector, _ c: Vector) -> Vector { c.addingProduct(a, b) }
    @inline(__always) public static func add(_ a: Vector, _ b: Vector) -> Vector { a + b }
    @inline(__always) public static func subtract(_ a: Vector, _ b: Vector) -> Vector { a - b }
    @inline(__always) public static func multiply(_ a: Vector, _ b: Vector) -> Vector { a * b }
    @inline(__always) public static func divide(_ a: Vector, _ b: Vector) -> Vector { a / b }
    @inline(__always) public static func squareRoot(_ a: Vector) -> Vector { _mm512_sqrt_ps(a) }  // SIMD's squareRoot() is 16 sqrtf calls
    @inline(__always) public static func relu(_ a: Vector) -> Vector { pointwiseMax(a, Vector()) }
    @inline(__always) public static func reluGradient(_ g: Vector, output a: Vector) -> Vector {
        g.replacing(with: Vector(), where: a .<= Vector())
    }
    @inline(__always) public static func floats(fromBytes p: UnsafePointer<UInt8>) -> Vector {
        _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(UnsafeRawPointer(p).loadUnaligned(as: SIMD2<Int64>.self)))
    }
}

/// The kernels for AVX-512 CPUs.
public let avx512Kernels = KernelSet.make(AVX512ISA.self, name: "avx512")
