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
    /// 16 × 16 blocks transposed in registers (four rounds of two-source permutes, Eklundh's exchange), 16 floats
    /// stored per output group; the plain loop for the last `count % 16` columns.
    @inline(__always)
    public static func transposeBlock(_ src: UnsafePointer<Float>, ld: Int, rows: Int, count: Int, into dst: UnsafeMutablePointer<Float>, width: Int) {
        var p0 = 0
        while p0 + 16 <= count {
            var r0 = 0
            while r0 < width {
                let n = min(16, rows - r0)
                var m = (Vector(), Vector(), Vector(), Vector(), Vector(), Vector(), Vector(), Vector(),
                         Vector(), Vector(), Vector(), Vector(), Vector(), Vector(), Vector(), Vector())
                withUnsafeMutableBytes(of: &m) { raw in
                    let v = raw.baseAddress!.assumingMemoryBound(to: Vector.self)
                    for r in 0..<max(n, 0) { v[r] = UnsafeRawPointer(src + (r0 + r) * ld + p0).loadUnaligned(as: Vector.self) }
                    exchange(v, distance: 8, low: indicesLow8, high: indicesHigh8)
                    exchange(v, distance: 4, low: indicesLow4, high: indicesHigh4)
                    exchange(v, distance: 2, low: indicesLow2, high: indicesHigh2)
                    exchange(v, distance: 1, low: indicesLow1, high: indicesHigh1)
                    // Group p0 + q gets lanes r0 ..< r0 + 16 (the lanes past `width` are overwritten by the next
                    // group's store, or land in the buffer's slack).
                    for q in 0..<16 { UnsafeMutableRawPointer(dst + (p0 + q) * width + r0).storeBytes(of: v[q], as: Vector.self) }
                }
                r0 += 16
            }
            p0 += 16
        }
        if p0 < count {
            for r in 0..<rows {
                let s = src + r * ld
                for p in p0..<count { dst[p * width + r] = s[p] }
            }
            if rows < width { for p in p0..<count { for r in rows..<width { dst[p * width + r] = 0 } } }
        }
    }

    /// One round of the exchange: rows i and i + d swap their off-diagonal d × d blocks.
    @inline(__always)
    static func exchange(_ v: UnsafeMutablePointer<Vector>, distance d: Int, low: SIMD8<Int64>, high: SIMD8<Int64>) {
        var i = 0
        while i < 16 {
            if i & d == 0 {
                let a = v[i], b = v[i + d]
                v[i] = _mm512_permutex2var_ps(a, low, b)
                v[i + d] = _mm512_permutex2var_ps(a, high, b)
            }
            i += 1
        }
    }

    static func indices(_ f: (Int32) -> Int32) -> SIMD8<Int64> {
        var x = SIMD16<Int32>()
        for l in 0..<16 { x[l] = f(Int32(l)) }
        return unsafeBitCast(x, to: SIMD8<Int64>.self)
    }
    // Lane l of the new row i: its own lane l where bit d of l is clear, else lane l − d of row i + d (index 16+).
    // Of the new row i + d: lane l + d of row i where bit d is clear, else its own lane l.
    static let indicesLow8 = indices { $0 & 8 == 0 ? $0 : 16 + $0 - 8 }
    static let indicesHigh8 = indices { $0 & 8 == 0 ? $0 + 8 : 16 + $0 }
    static let indicesLow4 = indices { $0 & 4 == 0 ? $0 : 16 + $0 - 4 }
    static let indicesHigh4 = indices { $0 & 4 == 0 ? $0 + 4 : 16 + $0 }
    static let indicesLow2 = indices { $0 & 2 == 0 ? $0 : 16 + $0 - 2 }
    static let indicesHigh2 = indices { $0 & 2 == 0 ? $0 + 2 : 16 + $0 }
    static let indicesLow1 = indices { $0 & 1 == 0 ? $0 : 16 + $0 - 1 }
    static let indicesHigh1 = indices { $0 & 1 == 0 ? $0 + 1 : 16 + $0 }

    @inline(__always) public static func floats(fromBytes p: UnsafePointer<UInt8>) -> Vector {
        _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(UnsafeRawPointer(p).loadUnaligned(as: SIMD2<Int64>.self)))
    }
}

/// The kernels for AVX-512 CPUs.
public let avx512Kernels = KernelSet.make(AVX512ISA.self, name: "avx512")
