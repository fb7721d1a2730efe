/// An instruction set the CPU kernels are compiled for: its vector type and how it multiplies and adds.
///
/// Why this exists: Swift compiles for baseline x86-64 (SSE2) unless told otherwise, and has no per-function
/// target attributes. So the kernels are written once, `@inlinable` and generic over a `KernelISA`, and each
/// instruction set gets a small module compiled with its own `-target-cpu` (`CPUKernelsAVX512`,
/// `CPUKernelsAVX2`) that instantiates them; the backend picks one at run time from what the CPU supports.
/// The generic bodies are inlined and specialised inside those modules, so they are compiled with that
/// module's instruction set.
///
/// Every arithmetic operation on vectors goes through the ISA's static functions rather than the `SIMD` operators:
/// inside generic code the operators resolve to the protocol's lane-by-lane implementations, which stay scalar
/// loops (9× slower, measured, for bias+ReLU) even after specialisation; written in the ISA's module, where the
/// vector type is concrete, they resolve to the standard library's vector instructions.
#if arch(x86_64)
import _Builtin_intrinsics.intel
#endif

public protocol KernelISA: SendableMetatype {
    /// The register-width vector: `SIMD16<Float>` for AVX-512, `SIMD8<Float>` for AVX2, `SIMD4<Float>` baseline.
    associatedtype Vector: SIMD where Vector.Scalar == Float
    /// `a · b + c` per lane (one fused instruction where the ISA has FMA).
    static func multiplyAdd(_ a: Vector, _ b: Vector, _ c: Vector) -> Vector
    static func add(_ a: Vector, _ b: Vector) -> Vector
    static func subtract(_ a: Vector, _ b: Vector) -> Vector
    static func multiply(_ a: Vector, _ b: Vector) -> Vector
    static func divide(_ a: Vector, _ b: Vector) -> Vector
    static func squareRoot(_ a: Vector) -> Vector
    /// `max(a, 0)` per lane.
    static func relu(_ a: Vector) -> Vector
    /// `a > 0 ? g : 0` per lane (ReLU's backward from its output `a`).
    static func reluGradient(_ g: Vector, output a: Vector) -> Vector
    /// `Vector.scalarCount` bytes from `p`, as floats.
    static func floats(fromBytes p: UnsafePointer<UInt8>) -> Vector
    /// Packing for the GEMM: `dst[p · width + r] = src[r · ld + p]` for `r < rows`, 0 for `rows ≤ r < width`, over
    /// `p < count` (a block of `rows` rows of length `count`, transposed into `count` groups of `width`).
    /// May write up to 16 floats past `dst + count · width` (the packing buffers leave room).
    static func transposeBlock(_ src: UnsafePointer<Float>, ld: Int, rows: Int, count: Int, into dst: UnsafeMutablePointer<Float>, width: Int)
}

extension KernelISA {
    /// The plain loop: one element at a time.
    @inlinable @inline(__always)
    public static func transposeBlock(_ src: UnsafePointer<Float>, ld: Int, rows: Int, count: Int, into dst: UnsafeMutablePointer<Float>, width: Int) {
        for r in 0..<rows {
            let s = src + r * ld
            for p in 0..<count { dst[p * width + r] = s[p] }
        }
        if rows < width { for p in 0..<count { for r in rows..<width { dst[p * width + r] = 0 } } }
    }
}

/// Baseline x86-64 or arm64 without assumptions: separate multiply and add (a fused `addingProduct` would become a
/// library call per lane on a CPU without FMA).
public enum BaselineISA: KernelISA {
    public typealias Vector = SIMD4<Float>
    @inlinable @inline(__always) public static func multiplyAdd(_ a: Vector, _ b: Vector, _ c: Vector) -> Vector { a * b + c }
    @inlinable @inline(__always) public static func add(_ a: Vector, _ b: Vector) -> Vector { a + b }
    @inlinable @inline(__always) public static func subtract(_ a: Vector, _ b: Vector) -> Vector { a - b }
    @inlinable @inline(__always) public static func multiply(_ a: Vector, _ b: Vector) -> Vector { a * b }
    @inlinable @inline(__always) public static func divide(_ a: Vector, _ b: Vector) -> Vector { a / b }
    @inlinable @inline(__always) public static func squareRoot(_ a: Vector) -> Vector {
        #if arch(x86_64)
        _mm_sqrt_ps(a)  // SIMD's squareRoot() is a sqrtf call per lane
        #else
        a.squareRoot()
        #endif
    }
    @inlinable @inline(__always) public static func relu(_ a: Vector) -> Vector { pointwiseMax(a, Vector()) }
    @inlinable @inline(__always) public static func reluGradient(_ g: Vector, output a: Vector) -> Vector {
        g.replacing(with: Vector(), where: a .<= Vector())
    }
    @inlinable @inline(__always) public static func floats(fromBytes p: UnsafePointer<UInt8>) -> Vector {
        Vector(Float(p[0]), Float(p[1]), Float(p[2]), Float(p[3]))
    }
}

extension SIMD where Scalar == Float {
    @inlinable @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> Self {
        UnsafeRawPointer(p).loadUnaligned(as: Self.self)
    }

    @inlinable @inline(__always)
    func store(_ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: self, as: Self.self)
    }
}
