// The register-tile kernels of the packed GEMM. Each keeps an mr × (2 vectors) tile of C in registers and walks
// the packed panels: per step of k, two vector loads of B, mr broadcasts of A, 2·mr fused multiply-adds.
// A's value (row r, step p) is read at `a[p * step + r * rowStride]`: a packed panel has `step` mr and `rowStride`
// 1; a row-major A read in place has `step` 1 and `rowStride` its row stride. (Callers pass literals for the packed
// case so that, inlined, it compiles to fixed offsets as before.)
// The accumulators are separate variables (not an array) so that they stay in registers.

/// 12 × 2 vectors (12 × 32 floats with AVX-512: 24 of the 32 zmm registers; per step of k, 2 loads and 12
/// broadcasts feed 24 fused multiply-adds).
/// `c = alpha · (A panel · B panel) + beta · c` (c not read when beta is 0).
@inlinable @inline(__always)
func microKernel12<ISA: KernelISA>(_ isa: ISA.Type, kc: Int, a: UnsafePointer<Float>, rowStride: Int, step: Int, b: UnsafePointer<Float>, alpha: Float, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    typealias V = ISA.Vector
    let w = V.scalarCount
    var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V(), c30 = V(), c31 = V()
    var c40 = V(), c41 = V(), c50 = V(), c51 = V(), c60 = V(), c61 = V(), c70 = V(), c71 = V()
    var c80 = V(), c81 = V(), c90 = V(), c91 = V(), cA0 = V(), cA1 = V(), cB0 = V(), cB1 = V()
    var pa = a, pb = b
    for _ in 0..<kc {
        let b0 = V.load(pb), b1 = V.load(pb + w)
        var x = V(repeating: pa[0]); c00 = ISA.multiplyAdd(x, b0, c00); c01 = ISA.multiplyAdd(x, b1, c01)
        x = V(repeating: pa[1 * rowStride]); c10 = ISA.multiplyAdd(x, b0, c10); c11 = ISA.multiplyAdd(x, b1, c11)
        x = V(repeating: pa[2 * rowStride]); c20 = ISA.multiplyAdd(x, b0, c20); c21 = ISA.multiplyAdd(x, b1, c21)
        x = V(repeating: pa[3 * rowStride]); c30 = ISA.multiplyAdd(x, b0, c30); c31 = ISA.multiplyAdd(x, b1, c31)
        x = V(repeating: pa[4 * rowStride]); c40 = ISA.multiplyAdd(x, b0, c40); c41 = ISA.multiplyAdd(x, b1, c41)
        x = V(repeating: pa[5 * rowStride]); c50 = ISA.multiplyAdd(x, b0, c50); c51 = ISA.multiplyAdd(x, b1, c51)
        x = V(repeating: pa[6 * rowStride]); c60 = ISA.multiplyAdd(x, b0, c60); c61 = ISA.multiplyAdd(x, b1, c61)
        x = V(repeating: pa[7 * rowStride]); c70 = ISA.multiplyAdd(x, b0, c70); c71 = ISA.multiplyAdd(x, b1, c71)
        x = V(repeating: pa[8 * rowStride]); c80 = ISA.multiplyAdd(x, b0, c80); c81 = ISA.multiplyAdd(x, b1, c81)
        x = V(repeating: pa[9 * rowStride]); c90 = ISA.multiplyAdd(x, b0, c90); c91 = ISA.multiplyAdd(x, b1, c91)
        x = V(repeating: pa[10 * rowStride]); cA0 = ISA.multiplyAdd(x, b0, cA0); cA1 = ISA.multiplyAdd(x, b1, cA1)
        x = V(repeating: pa[11 * rowStride]); cB0 = ISA.multiplyAdd(x, b0, cB0); cB1 = ISA.multiplyAdd(x, b1, cB1)
        pa += step
        pb += 2 * w
    }
    storeRow(ISA.self, c00, c01, alpha, beta, c)
    storeRow(ISA.self, c10, c11, alpha, beta, c + ldc)
    storeRow(ISA.self, c20, c21, alpha, beta, c + 2 * ldc)
    storeRow(ISA.self, c30, c31, alpha, beta, c + 3 * ldc)
    storeRow(ISA.self, c40, c41, alpha, beta, c + 4 * ldc)
    storeRow(ISA.self, c50, c51, alpha, beta, c + 5 * ldc)
    storeRow(ISA.self, c60, c61, alpha, beta, c + 6 * ldc)
    storeRow(ISA.self, c70, c71, alpha, beta, c + 7 * ldc)
    storeRow(ISA.self, c80, c81, alpha, beta, c + 8 * ldc)
    storeRow(ISA.self, c90, c91, alpha, beta, c + 9 * ldc)
    storeRow(ISA.self, cA0, cA1, alpha, beta, c + 10 * ldc)
    storeRow(ISA.self, cB0, cB1, alpha, beta, c + 11 * ldc)
}

/// 6 × 2 vectors (12 accumulators: fits the 16 registers of AVX2 and SSE).
@inlinable @inline(__always)
func microKernel6<ISA: KernelISA>(_ isa: ISA.Type, kc: Int, a: UnsafePointer<Float>, rowStride: Int, step: Int, b: UnsafePointer<Float>, alpha: Float, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    typealias V = ISA.Vector
    let w = V.scalarCount
    var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V()
    var c30 = V(), c31 = V(), c40 = V(), c41 = V(), c50 = V(), c51 = V()
    var pa = a, pb = b
    for _ in 0..<kc {
        let b0 = V.load(pb), b1 = V.load(pb + w)
        var x = V(repeating: pa[0]); c00 = ISA.multiplyAdd(x, b0, c00); c01 = ISA.multiplyAdd(x, b1, c01)
        x = V(repeating: pa[1 * rowStride]); c10 = ISA.multiplyAdd(x, b0, c10); c11 = ISA.multiplyAdd(x, b1, c11)
        x = V(repeating: pa[2 * rowStride]); c20 = ISA.multiplyAdd(x, b0, c20); c21 = ISA.multiplyAdd(x, b1, c21)
        x = V(repeating: pa[3 * rowStride]); c30 = ISA.multiplyAdd(x, b0, c30); c31 = ISA.multiplyAdd(x, b1, c31)
        x = V(repeating: pa[4 * rowStride]); c40 = ISA.multiplyAdd(x, b0, c40); c41 = ISA.multiplyAdd(x, b1, c41)
        x = V(repeating: pa[5 * rowStride]); c50 = ISA.multiplyAdd(x, b0, c50); c51 = ISA.multiplyAdd(x, b1, c51)
        pa += step
        pb += 2 * w
    }
    storeRow(ISA.self, c00, c01, alpha, beta, c)
    storeRow(ISA.self, c10, c11, alpha, beta, c + ldc)
    storeRow(ISA.self, c20, c21, alpha, beta, c + 2 * ldc)
    storeRow(ISA.self, c30, c31, alpha, beta, c + 3 * ldc)
    storeRow(ISA.self, c40, c41, alpha, beta, c + 4 * ldc)
    storeRow(ISA.self, c50, c51, alpha, beta, c + 5 * ldc)
}

/// Writes one row of a tile: `c = alpha · acc + beta · c`, with the common cases (alpha 1; beta 0 or 1) exact
/// and without extra operations.
@inlinable @inline(__always)
func storeRow<ISA: KernelISA>(_ isa: ISA.Type, _ v0: ISA.Vector, _ v1: ISA.Vector, _ alpha: Float, _ beta: Float, _ c: UnsafeMutablePointer<Float>) {
    typealias V = ISA.Vector
    let w = V.scalarCount
    var r0 = v0, r1 = v1
    if alpha != 1 {
        r0 = ISA.multiply(r0, V(repeating: alpha))
        r1 = ISA.multiply(r1, V(repeating: alpha))
    }
    if beta == 1 {
        r0 = ISA.add(r0, V.load(c))
        r1 = ISA.add(r1, V.load(c + w))
    } else if beta != 0 {
        r0 = ISA.multiplyAdd(V(repeating: beta), V.load(c), r0)
        r1 = ISA.multiplyAdd(V(repeating: beta), V.load(c + w), r1)
    }
    r0.store(c)
    r1.store(c + w)
}
