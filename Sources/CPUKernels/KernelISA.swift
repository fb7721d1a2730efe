/// An instruction set the CPU kernels are compiled for: its vector type and how it multiplies and adds.
///
/// Why this exists: Swift compiles for baseline x86-64 (SSE2) unless told otherwise, and has no per-function
/// target attributes. So the kernels are written once, `@inlinable` and generic over a `KernelISA`, and each
/// instruction set gets a small module compiled with its own `-target-cpu` (`CPUKernelsAVX512`,
/// `CPUKernelsAVX2`) that instantiates them; the backend picks one at run time from what the CPU supports.
/// The generic bodies are inlined and specialised inside those modules, so they are compiled with that
/// module's instruction set.
public protocol KernelISA: SendableMetatype {
    /// The register-width vector: `SIMD16<Float>` for AVX-512, `SIMD8<Float>` for AVX2, `SIMD4<Float>` baseline.
    associatedtype Vector: SIMD where Vector.Scalar == Float
    /// `a · b + c` per lane (one fused instruction where the ISA has FMA).
    static func multiplyAdd(_ a: Vector, _ b: Vector, _ c: Vector) -> Vector
}

/// Baseline x86-64 or arm64 without assumptions: separate multiply and add (a fused `addingProduct` would become a
/// library call per lane on a CPU without FMA).
public enum BaselineISA: KernelISA {
    public typealias Vector = SIMD4<Float>
    @inlinable @inline(__always)
    public static func multiplyAdd(_ a: Vector, _ b: Vector, _ c: Vector) -> Vector { a * b + c }
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
