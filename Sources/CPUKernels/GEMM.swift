/// The arguments of one single-precision matrix product, row-major:
/// `C = alpha · op(A) · op(B) + beta · C`, `op(A)` `[m, k]`, `op(B)` `[k, n]`, `C` `[m, n]`, with row strides
/// `lda`, `ldb`, `ldc` of the matrices as stored. With `beta == 0`, C is not read.
public struct GEMMArguments {
    public var transposeA: Bool
    public var transposeB: Bool
    public var m: Int
    public var n: Int
    public var k: Int
    public var alpha: Float
    public var a: UnsafePointer<Float>
    public var lda: Int
    public var b: UnsafePointer<Float>
    public var ldb: Int
    public var beta: Float
    public var c: UnsafeMutablePointer<Float>
    public var ldc: Int
    /// Whether the narrow path (`n` within one vector) may be taken. Parts of a product split by columns must not
    /// take it, or a column remainder would be summed in another order than the whole product is.
    public var allowNarrow = true

    @inlinable
    public init(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        self.transposeA = transposeA
        self.transposeB = transposeB
        self.m = m
        self.n = n
        self.k = k
        self.alpha = alpha
        self.a = a
        self.lda = lda
        self.b = b
        self.ldb = ldb
        self.beta = beta
        self.c = c
        self.ldc = ldc
    }

    /// The part of the product that writes rows `rows` of C (A's rows move, B stays).
    @inlinable
    public func rows(_ rows: Range<Int>) -> GEMMArguments {
        var s = self
        s.m = rows.count
        s.a = transposeA ? a + rows.lowerBound : a + rows.lowerBound * lda
        s.c = c + rows.lowerBound * ldc
        return s
    }

    /// The part of the product that writes columns `columns` of C (B's columns move, A stays).
    @inlinable
    public func columns(_ columns: Range<Int>) -> GEMMArguments {
        var s = self
        s.n = columns.count
        s.b = transposeB ? b + columns.lowerBound * ldb : b + columns.lowerBound
        s.c = c + columns.lowerBound
        s.allowNarrow = false
        return s
    }
}

/// Blocking of the packed GEMM (Goto's algorithm as BLIS lays it out): C is computed in `mr × nr` tiles by a
/// register-resident micro-kernel, over packed panels of A (`mc × kc`, kept in L2) and B (`kc × nc`).

public enum GEMMBlocking {
    /// Depth of one packed panel: a `kc × nr` B micro-panel (32 KiB at nr = 32) stays in the 48 KiB L1.
    public static let kc = 256
    /// Rows of A packed at once (a multiple of every mr): 96 × 256 floats = 96 KiB, in L2.
    public static let mc = 96
    /// Rows of the register tile with 32 vector registers (AVX-512): 12 × 2 vectors take 24 of them.
    public static let wideRows = 12
    /// Columns of B packed at once: 256 × 1024 floats = 1 MiB, half of a 2 MiB L2.
    public static let nc = 1024
}

/// Scratch memory for the packed panels of one thread's GEMM, allocated once (64-byte aligned).
public final class GEMMWorkspace: @unchecked Sendable {
    public let packedA: UnsafeMutablePointer<Float>
    public let packedB: UnsafeMutablePointer<Float>
    /// An `mr × nr` tile for the edges of C.
    public let tile: UnsafeMutablePointer<Float>

    public init() {
        // Room for the widest register tile of any ISA: mr ≤ 12, nr ≤ 32 (plus padding to whole tiles).
        // 16 floats of slack: `transposeBlock` may write that far past a panel.
        packedA = Self.allocate((GEMMBlocking.mc + 12) * GEMMBlocking.kc + 16)
        packedB = Self.allocate((GEMMBlocking.nc + 32) * GEMMBlocking.kc + 16)
        tile = Self.allocate(12 * 32)
    }

    static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64)
        return raw.bindMemory(to: Float.self, capacity: count)
    }

    deinit {
        packedA.deallocate()
        packedB.deallocate()
        tile.deallocate()
        stepOffsets.deallocate()
        stepFlags.deallocate()
    }

    /// The sparse product's lists of one tile (`sparseGEMM`) and the scratch that lists them: room for `capacity`
    /// steps, grown on the first product that needs more (a warm-up step's), so that later products allocate nothing.
    @inlinable
    public func sparseSteps(capacity: Int) -> (steps: SparseSteps, flags: UnsafeMutablePointer<UInt32>) {
        if stepCapacity < capacity { growSteps(capacity) }
        return (SparseSteps(a: stepOffsets, b: stepOffsets + stepCapacity + sparsePrefetchDistance), stepFlags)
    }

    @usableFromInline var stepCapacity = 0
    @usableFromInline var stepOffsets = UnsafeMutablePointer<Int>.allocate(capacity: 0)
    @usableFromInline var stepFlags = UnsafeMutablePointer<UInt32>.allocate(capacity: 0)

    @usableFromInline func growSteps(_ capacity: Int) {
        stepOffsets.deallocate()
        stepFlags.deallocate()
        stepCapacity = capacity
        // Each list is followed by room for the tile's look-ahead (`sparsePrefetchDistance`), zeros at first.
        let offsets = 2 * (capacity + sparsePrefetchDistance)
        stepOffsets = .allocate(capacity: offsets)
        stepOffsets.initialize(repeating: 0, count: offsets)
        stepFlags = .allocate(capacity: capacity)
    }
}

/// The register tile of `mr` rows (12 or 6) over a packed A panel, or (`lda` given) over mr rows of a row-major
/// A read in place. The packed case passes literal strides so that, inlined, its loads have fixed offsets.
@inlinable @inline(__always)
func registerTile<ISA: KernelISA>(_ isa: ISA.Type, mr: Int, kc: Int, a: UnsafePointer<Float>, lda: Int?, b: UnsafePointer<Float>, alpha: Float, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    if mr == 12 {
        if let lda {
            microKernel12(ISA.self, kc: kc, a: a, rowStride: lda, step: 1, b: b, alpha: alpha, beta: beta, c: c, ldc: ldc)
        } else {
            microKernel12(ISA.self, kc: kc, a: a, rowStride: 1, step: 12, b: b, alpha: alpha, beta: beta, c: c, ldc: ldc)
        }
    } else {
        if let lda {
            microKernel6(ISA.self, kc: kc, a: a, rowStride: lda, step: 1, b: b, alpha: alpha, beta: beta, c: c, ldc: ldc)
        } else {
            microKernel6(ISA.self, kc: kc, a: a, rowStride: 1, step: 6, b: b, alpha: alpha, beta: beta, c: c, ldc: ldc)
        }
    }
}

/// The packed GEMM for instruction set `ISA`, on one thread. The micro-tile is 12 × 2 vectors (24 of the 32
/// accumulator registers: 12 × 32 floats with AVX-512), or 6 × 2 vectors where the ISA has only 16 registers.
///
/// The summation order of every element of C depends only on `k` and `GEMMBlocking.kc`, never on how C is split
/// between threads, so results are the same bit for bit whatever the thread count.
@inlinable
public func packedGEMM<ISA: KernelISA>(_ isa: ISA.Type, _ g: GEMMArguments, _ w: GEMMWorkspace) {
    if g.m == 0 || g.n == 0 { return }
    if g.k == 0 || g.alpha == 0 {
        scaleC(g)
        return
    }
    if g.allowNarrow && g.transposeA && !g.transposeB && g.n <= narrowTransposedColumns
        && g.k * narrowTransposedColumns <= (GEMMBlocking.nc + 32) * GEMMBlocking.kc {
        narrowTransposedGEMM(ISA.self, g, w)
        return
    }
    if g.allowNarrow && !g.transposeA && g.n <= ISA.Vector.scalarCount && g.k * ISA.Vector.scalarCount <= (GEMMBlocking.nc + 32) * GEMMBlocking.kc {
        narrowGEMM(ISA.self, g, w)
        return
    }
    let vectorWidth = ISA.Vector.scalarCount
    let nr = 2 * vectorWidth
    let mr = vectorWidth >= 16 ? GEMMBlocking.wideRows : 6
    // Depth blocks of equal size (784 = 4 × 196, not 3 × 256 + 16): a thin last block would cost a whole pass
    // over C for little work.
    let depthBlocks = (g.k + GEMMBlocking.kc - 1) / GEMMBlocking.kc
    let kcMax = (g.k + depthBlocks - 1) / depthBlocks
    let mcMax = GEMMBlocking.mc / mr * mr
    // A row-major (not transposed) A is read in place by the register tile, mr rows at a time, instead of being
    // packed: its packing is a transpose (rows into interleaved columns) that cost as much as a third of a small
    // batch's forward product (128×512×784: 161 GFLOP/s packed against 219 for the same product with A transposed,
    // whose packing is a copy). Its rows then stay in L1/L2 across the column panels as a packed panel would.
    let readsAInPlace = !g.transposeA
    let ncMax = GEMMBlocking.nc
    var jc = 0
    while jc < g.n {
        let nc = min(ncMax, g.n - jc)
        var pc = 0
        while pc < g.k {
            let kc = min(kcMax, g.k - pc)
            packB(ISA.self, g, rows: pc, count: kc, columns: jc, width: nc, nr: nr, into: w.packedB)
            // The first depth block applies beta; later ones add to what is there.
            let beta: Float = pc == 0 ? g.beta : 1
            var ic = 0
            while ic < g.m {
                let mc = min(mcMax, g.m - ic)
                if readsAInPlace {
                    // Full panels are read where they are; only a last partial one is packed (zero rows added).
                    let full = mc / mr * mr
                    if full < mc { packA(ISA.self, g, rows: ic + full, count: mc - full, depth: pc, kc: kc, mr: mr, into: w.packedA) }
                } else {
                    packA(ISA.self, g, rows: ic, count: mc, depth: pc, kc: kc, mr: mr, into: w.packedA)
                }
                var jr = 0
                while jr < nc {
                    let bPanel = w.packedB + (jr / nr) * nr * kc
                    var ir = 0
                    while ir < mc {
                        let rows = min(mr, mc - ir), columns = min(nr, nc - jr)
                        let inPlace = readsAInPlace && rows == mr
                        let aPanel = inPlace ? g.a + (ic + ir) * g.lda + pc
                            : readsAInPlace ? UnsafePointer(w.packedA) : UnsafePointer(w.packedA + (ir / mr) * mr * kc)
                        let c = g.c + (ic + ir) * g.ldc + jc + jr
                        // A whole tile goes straight to C; at an edge of C the whole tile goes to scratch, and the
                        // part that exists is merged.
                        let whole = rows == mr && columns == nr
                        let target = whole ? c : w.tile, ldt = whole ? g.ldc : nr, betaT = whole ? beta : 0
                        registerTile(ISA.self, mr: mr, kc: kc, a: aPanel, lda: inPlace ? g.lda : nil, b: bPanel, alpha: g.alpha, beta: betaT, c: target, ldc: ldt)
                        if !whole {
                            for r in 0..<rows {
                                for j in 0..<columns {
                                    let dst = c + r * g.ldc + j
                                    dst.pointee = beta == 0 ? w.tile[r * nr + j] : w.tile[r * nr + j] + beta * dst.pointee
                                }
                            }
                        }
                        ir += mr
                    }
                    jr += nr
                }
                ic += mc
            }
            pc += kc
        }
        jc += nc
    }
}

/// A product with at most one vector of columns (the output layer's 10 classes) and A not transposed: op(B) is
/// copied once into rows
/// padded to a whole vector, then each row of C is one vector accumulated over k. The register tile of the
/// general path would waste two thirds of its columns here.
@inlinable
func narrowGEMM<ISA: KernelISA>(_ isa: ISA.Type, _ g: GEMMArguments, _ w: GEMMWorkspace) {
    typealias V = ISA.Vector
    let width = V.scalarCount
    let bp = w.packedB
    for p in 0..<g.k {
        for j in 0..<width {
            bp[p * width + j] = j < g.n ? (g.transposeB ? g.b[j * g.ldb + p] : g.b[p * g.ldb + j]) : 0
        }
    }
    let tile = w.tile
    for i in 0..<g.m {
        var acc0 = V(), acc1 = V()
        var p = 0
        // Two accumulators: consecutive fused multiply-adds into one register would wait on each other.
        let row = g.a + i * g.lda
        while p + 1 < g.k {
            acc0 = ISA.multiplyAdd(V(repeating: row[p]), V.load(bp + p * width), acc0)
            acc1 = ISA.multiplyAdd(V(repeating: row[p + 1]), V.load(bp + (p + 1) * width), acc1)
            p += 2
        }
        if p < g.k { acc0 = ISA.multiplyAdd(V(repeating: row[p]), V.load(bp + p * width), acc0) }
        ISA.multiply(ISA.add(acc0, acc1), V(repeating: g.alpha)).store(tile)
        let c = g.c + i * g.ldc
        for j in 0..<g.n { c[j] = g.beta == 0 ? tile[j] : tile[j] + g.beta * c[j] }
    }
}

/// The widest C that `narrowTransposedGEMM` takes: two groups of six accumulator registers.
public let narrowTransposedColumns = 12

/// A product with at most `narrowTransposedColumns` columns, A transposed and B not: the output layer's weight
/// gradient, dW [in, 10] = Xᵀ [in, B] · dZ [B, 10]. Vectors run along C's rows, which are contiguous in each row of
/// the stored A: op(B) is first copied into rows of 12 (zeros past `n`), then for each vector of C's rows and each
/// group of six columns, every step p of k loads A's row p once and feeds six fused multiply-adds with B's values
/// broadcast, the accumulators in registers. (The general path padded the 10 columns to its 32-wide tile and packed
/// A with strided reads.) Each element is summed over k in order.
@inlinable
func narrowTransposedGEMM<ISA: KernelISA>(_ isa: ISA.Type, _ g: GEMMArguments, _ w: GEMMWorkspace) {
    typealias V = ISA.Vector
    let width = V.scalarCount, n = g.n, padded = narrowTransposedColumns
    let bp = w.packedB
    for p in 0..<g.k {
        for j in 0..<padded { bp[p * padded + j] = j < n ? g.b[p * g.ldb + j] : 0 }
    }
    let tile = w.tile
    var i0 = 0
    while i0 + width <= g.m {
        var group = 0
        while group * 6 < n {
            var c0 = V(), c1 = V(), c2 = V(), c3 = V(), c4 = V(), c5 = V()
            var pb = UnsafePointer(bp + group * 6), pa = g.a + i0
            for _ in 0..<g.k {
                let x = V.load(pa)
                c0 = ISA.multiplyAdd(x, V(repeating: pb[0]), c0)
                c1 = ISA.multiplyAdd(x, V(repeating: pb[1]), c1)
                c2 = ISA.multiplyAdd(x, V(repeating: pb[2]), c2)
                c3 = ISA.multiplyAdd(x, V(repeating: pb[3]), c3)
                c4 = ISA.multiplyAdd(x, V(repeating: pb[4]), c4)
                c5 = ISA.multiplyAdd(x, V(repeating: pb[5]), c5)
                pa += g.lda
                pb += padded
            }
            // Column j of this group is lane l of c_j: through a scratch tile, into C's rows.
            c0.store(tile); c1.store(tile + width); c2.store(tile + 2 * width)
            c3.store(tile + 3 * width); c4.store(tile + 4 * width); c5.store(tile + 5 * width)
            for j in 0..<min(6, n - group * 6) {
                for l in 0..<width {
                    let dst = g.c + (i0 + l) * g.ldc + group * 6 + j
                    let value = g.alpha * tile[j * width + l]
                    dst.pointee = g.beta == 0 ? value : value + g.beta * dst.pointee
                }
            }
            group += 1
        }
        i0 += width
    }
    // The last rows, fewer than a vector: scalar fused multiply-adds in the same order over k, so that a row gives
    // the same bits whichever path computes it (a split between threads can move rows between the two).
    for i in i0..<g.m {
        for j in 0..<n {
            var sum: Float = 0
            for p in 0..<g.k { sum.addProduct(g.a[p * g.lda + i], bp[p * padded + j]) }
            let dst = g.c + i * g.ldc + j
            dst.pointee = g.beta == 0 ? g.alpha * sum : g.alpha * sum + g.beta * dst.pointee
        }
    }
}

/// `C = beta · C` (what remains of the product when `k` or `alpha` is 0).
@inlinable
func scaleC(_ g: GEMMArguments) {
    for i in 0..<g.m {
        for j in 0..<g.n {
            let p = g.c + i * g.ldc + j
            p.pointee = g.beta == 0 ? 0 : g.beta * p.pointee
        }
    }
}

/// Packs `op(A)[rows ..< rows+count, depth ..< depth+kc]` into micro-panels of `mr` rows: for each micro-panel,
/// `kc` groups of `mr` consecutive values (column `p` of the panel), rows past `m` zero.
@inlinable @inline(__always)
func packA<ISA: KernelISA>(_ isa: ISA.Type, _ g: GEMMArguments, rows: Int, count: Int, depth: Int, kc: Int, mr: Int, into out: UnsafeMutablePointer<Float>) {
    var panel = 0
    while panel < count {
        let dst = out + (panel / mr) * mr * kc
        let valid = min(mr, count - panel)
        let i0 = rows + panel
        if g.transposeA {
            // op(A)[i, p] = A[p, i]: the mr values of a column are contiguous in A.
            for p in 0..<kc {
                let src = g.a + (depth + p) * g.lda + i0
                let d = dst + p * mr
                for r in 0..<valid { d[r] = src[r] }
                for r in valid..<mr { d[r] = 0 }
            }
        } else {
            ISA.transposeBlock(g.a + i0 * g.lda + depth, ld: g.lda, rows: valid, count: kc, into: dst, width: mr)
        }
        panel += mr
    }
}

/// Packs `op(B)[rows ..< rows+count, columns ..< columns+width]` into micro-panels of `nr` columns: for each,
/// `count` rows of `nr` consecutive values, columns past `n` zero.
@inlinable @inline(__always)
func packB<ISA: KernelISA>(_ isa: ISA.Type, _ g: GEMMArguments, rows: Int, count: Int, columns: Int, width: Int, nr: Int, into out: UnsafeMutablePointer<Float>) {
    var panel = 0
    while panel < width {
        let dst = out + (panel / nr) * nr * count
        let valid = min(nr, width - panel)
        let j0 = columns + panel
        if g.transposeB {
            // op(B)[p, j] = B[j, p]: a block of B's rows, transposed.
            ISA.transposeBlock(g.b + j0 * g.ldb + rows, ld: g.ldb, rows: valid, count: count, into: dst, width: nr)
        } else {
            for p in 0..<count {
                let src = g.b + (rows + p) * g.ldb + j0
                let d = dst + p * nr
                if valid == nr {
                    d.update(from: src, count: nr)
                } else {
                    for j in 0..<valid { d[j] = src[j] }
                    for j in valid..<nr { d[j] = 0 }
                }
            }
        }
        panel += nr
    }
}
