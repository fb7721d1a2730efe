// Products whose A is mostly zeros: the first layer's forward (X · W) and weight gradient (Xᵀ · dZ), where X is a
// batch of images. 81% of MNIST's pixels are 0, and a dense product spends that share of its multiply-adds on
// zeros. Here C is computed in tiles of 6 rows of op(A): for each tile, the depth steps p at which any of its 6 rows
// is nonzero are listed first (about 44% of them for 6 MNIST images, 34% for 6 neighbouring pixels over a batch),
// then a register tile of 6 rows × 4 vectors (2 where the ISA has 16 registers) runs over that list only, reading
// op(A)'s values in place and B's rows through the list. A dense tile would spend the same instructions per step;
// there are half as many steps or fewer.
//
// Results: each element of C is its row's nonzero terms summed in increasing p in one chain of fused
// multiply-adds (a listed step where this row is 0 adds exactly 0), per depth block of the weight gradient
// (`sparseDepthBlock`) added in order, so it does not depend on the tiling, the split between threads or the other
// rows. It differs from the dense GEMM's rounding, whose depth blocks are other.

import CCPUFeatures

/// The most steps of the depth one pass of the weight gradient's tiles takes (see `sparseGEMM`).
public let sparseDepthBlock = 256

/// How many listed steps ahead the tile asks for B's rows and A's values: their order defeats the hardware's
/// prefetchers, and a step's twelve multiply-adds take about six cycles against L2's ~16 of latency.
public let sparsePrefetchDistance = 8

/// Rows of op(A) per tile of the sparse product: 6 × 4 vector accumulators fit AVX-512's 32 registers and 6 × 2
/// AVX2's 16, and a union over more rows would list more steps (12 MNIST images: 51% of the pixels, against 44%).
public let sparseTileRows = 6

/// `C = alpha · op(A) · B + beta · C` skipping the steps of the depth where a whole tile of op(A)'s rows is zero
/// (see the top of this file), on one thread. B must not be transposed.
///
/// With `lists`, the tiles' steps were listed beforehand (`listSparseTiles`, A not transposed): the threads that
/// split a product's columns share them instead of each listing every tile again.
@inlinable
public func sparseGEMM<ISA: KernelISA>(_ isa: ISA.Type, _ g: GEMMArguments, _ w: GEMMWorkspace, lists: SparseTileLists? = nil) {
    precondition(!g.transposeB, "the sparse product reads B's rows in place")
    precondition(lists == nil || !g.transposeA, "shared lists are the forward's")
    if g.m == 0 || g.n == 0 { return }
    if g.k == 0 || g.alpha == 0 {
        scaleC(g)
        return
    }
    // With A transposed (the weight gradient), B's rows are the batch's: in depth blocks of at most
    // `sparseDepthBlock` rows the block of B stays in L2 while every tile of C passes over it, where the whole of
    // B (2 MB at batch 1024) came from L3 for each tile. Later blocks add to what the first wrote.
    if g.transposeA && g.k > sparseDepthBlock {
        let blocks = (g.k + sparseDepthBlock - 1) / sparseDepthBlock
        let depth = (g.k + blocks - 1) / blocks
        var p0 = 0
        while p0 < g.k {
            var part = g
            part.k = min(depth, g.k - p0)
            part.a = g.a + p0 * g.lda
            part.b = g.b + p0 * g.ldb
            if p0 > 0 { part.beta = 1 }
            sparseGEMM(ISA.self, part, w)
            p0 += depth
        }
        return
    }
    let (steps, flags) = w.sparseSteps(capacity: g.k)
    var i0 = 0
    while i0 < g.m {
        let rows = min(sparseTileRows, g.m - i0)
        // Row r of the tile reads op(A)[i0 + r, p] at `row(r) + a[t]`, and B's row p at `b + b[t]`, for the t-th
        // listed step p. Past the last row, the rows repeat the first (valid memory; never stored).
        let rowStride = g.transposeA ? 1 : g.lda
        let first = g.transposeA ? g.a + i0 : g.a + i0 * g.lda
        func row(_ r: Int) -> UnsafePointer<Float> { first + (r < rows ? r : 0) * rowStride }
        let tile = lists?.steps(ofTile: i0 / sparseTileRows) ?? steps
        let count = lists?.counts[i0 / sparseTileRows] ?? listNonzeroSteps(g, firstRow: first, rows: rows, into: steps, flags: flags)
        var j0 = 0
        let nr = 2 * ISA.Vector.scalarCount
        // With 32 registers (AVX-512), tiles of 4 vectors first: half the listed offsets, broadcasts and loop
        // instructions per multiply-add.
        while ISA.Vector.scalarCount >= 16 && j0 + 2 * nr <= g.n {
            sparseTile6x4(ISA.self, count: count, aOffsets: tile.a, bOffsets: tile.b,
                          rows: (row(0), row(1), row(2), row(3), row(4), row(5)), b: g.b + j0,
                          alpha: g.alpha, beta: g.beta, c: g.c + i0 * g.ldc + j0, ldc: g.ldc, storedRows: rows)
            j0 += 2 * nr
        }
        while j0 + nr <= g.n {
            sparseTile6(ISA.self, count: count, aOffsets: tile.a, bOffsets: tile.b,
                        rows: (row(0), row(1), row(2), row(3), row(4), row(5)), b: g.b + j0,
                        alpha: g.alpha, beta: g.beta, c: g.c + i0 * g.ldc + j0, ldc: g.ldc, storedRows: rows)
            j0 += nr
        }
        // Columns past the last whole tile: one at a time, each element the same chain of the ISA's multiply-adds
        // as in the tiles.
        if j0 < g.n {
            for r in 0..<rows {
                let a = row(r)
                for j in j0..<g.n {
                    var sum = ISA.Vector()
                    for t in 0..<count {
                        sum = ISA.multiplyAdd(ISA.Vector(repeating: a[tile.a[t]]), ISA.Vector(repeating: g.b[tile.b[t] + j]), sum)
                    }
                    let dst = g.c + (i0 + r) * g.ldc + j
                    let value = g.alpha == 1 ? sum[0] : g.alpha * sum[0]
                    dst.pointee = g.beta == 0 ? value : value + g.beta * dst.pointee
                }
            }
        }
        i0 += rows
    }
}

/// Lists the nonzero steps of the forward's tiles `tiles` (of `sparseTileRows` rows of A each) into `lists`, for a
/// `sparseGEMM` that will share them (`lists` must have room: `SparseTileLists.reserve`).
@inlinable
public func listSparseTiles<ISA: KernelISA>(_ isa: ISA.Type, _ g: GEMMArguments, tiles: Range<Int>, into lists: SparseTileLists, _ w: GEMMWorkspace) {
    precondition(!g.transposeA, "shared lists are the forward's")
    let flags = w.sparseSteps(capacity: g.k).flags
    for t in tiles {
        let i0 = t * sparseTileRows
        lists.counts[t] = listNonzeroSteps(g, firstRow: g.a + i0 * g.lda, rows: min(sparseTileRows, g.m - i0),
                                           into: lists.steps(ofTile: t), flags: flags)
    }
}

/// The nonzero steps of every tile of one product (`listSparseTiles`), shared by the threads that split its columns.
/// Grown on the first product that needs more room (a warm-up step's), so that later products allocate nothing.
public final class SparseTileLists: @unchecked Sendable {
    @usableFromInline var storage = UnsafeMutablePointer<Int>.allocate(capacity: 0)
    @usableFromInline var stride = 0
    @usableFromInline var tileCapacity = 0
    /// Each tile's count of listed steps.
    public var counts: UnsafeMutablePointer<Int> { countStorage }
    @usableFromInline var countStorage = UnsafeMutablePointer<Int>.allocate(capacity: 0)

    public init() {}

    deinit {
        storage.deallocate()
        countStorage.deallocate()
    }

    /// Room for `tiles` tiles of up to `depth` steps.
    public func reserve(tiles: Int, depth: Int) {
        let needed = 2 * (depth + sparsePrefetchDistance)
        guard tiles > tileCapacity || needed > stride else { return }
        storage.deallocate()
        countStorage.deallocate()
        tileCapacity = max(tiles, tileCapacity)
        stride = max(needed, stride)
        // Zeros at first: a tile's look-ahead past its count reads them (see `sparseTile6`).
        storage = .allocate(capacity: tileCapacity * stride)
        storage.initialize(repeating: 0, count: tileCapacity * stride)
        countStorage = .allocate(capacity: tileCapacity)
        countStorage.initialize(repeating: 0, count: tileCapacity)
    }

    /// Tile `t`'s lists.
    @inlinable
    public func steps(ofTile t: Int) -> SparseSteps {
        let a = storage + t * stride
        return SparseSteps(a: a, b: a + stride / 2)
    }
}

/// Lists the steps p of the depth at which any of the tile's `rows` rows of op(A) is nonzero, in increasing order:
/// for each, the offset of op(A)[row, p] from the row's start and the offset of B's row p. Returns their count.
@inlinable @inline(__always)
/// `flags` is scratch for the depth's or-ed bits (A not transposed).
func listNonzeroSteps(_ g: GEMMArguments, firstRow: UnsafePointer<Float>, rows: Int, into steps: SparseSteps, flags: UnsafeMutablePointer<UInt32>) -> Int {
    // A value is nonzero when its bits other than the sign are (±0 are the only zeros; NaN counts as nonzero).
    let magnitude: UInt32 = 0x7FFF_FFFF
    var count = 0
    if g.transposeA {
        // op(A)[i, p] = A[p, i]: the tile's values at step p are `rows` consecutive floats of A's row p. Every
        // step is written and the count moves past the nonzero ones only: no branch to mispredict.
        if rows == sparseTileRows {
            for p in 0..<g.k {
                let v = UnsafeRawPointer(firstRow + p &* g.lda).assumingMemoryBound(to: UInt32.self)
                let any = v[0] | v[1] | v[2] | v[3] | v[4] | v[5]
                steps.a[count] = p &* g.lda
                steps.b[count] = p &* g.ldb
                count &+= any & magnitude != 0 ? 1 : 0
            }
        } else {
            for p in 0..<g.k {
                let v = UnsafeRawPointer(firstRow + p &* g.lda).assumingMemoryBound(to: UInt32.self)
                var any: UInt32 = 0
                for r in 0..<rows { any |= v[r] }
                steps.a[count] = p &* g.lda
                steps.b[count] = p &* g.ldb
                count &+= any & magnitude != 0 ? 1 : 0
            }
        }
    } else {
        // The tile's rows are rows of A: their bits are or-ed along the depth first (loops the compiler
        // vectorises), then the steps are listed from that.
        let row0 = UnsafeRawPointer(firstRow).assumingMemoryBound(to: UInt32.self)
        for p in 0..<g.k { flags[p] = row0[p] }
        for r in 1..<max(rows, 1) {
            let values = UnsafeRawPointer(firstRow + r &* g.lda).assumingMemoryBound(to: UInt32.self)
            for p in 0..<g.k { flags[p] |= values[p] }
        }
        for p in 0..<g.k {
            steps.a[count] = p
            steps.b[count] = p &* g.ldb
            count &+= flags[p] & magnitude != 0 ? 1 : 0
        }
    }
    return count
}

/// 6 rows × 2 vectors of C over the listed steps: per step, two loads of B's row and six broadcasts of op(A)'s
/// values feed twelve fused multiply-adds. Stores the first `storedRows` rows: `c = alpha · acc + beta · c`.
@inlinable @inline(__always)
func sparseTile6<ISA: KernelISA>(
    _ isa: ISA.Type, count: Int, aOffsets: UnsafePointer<Int>, bOffsets: UnsafePointer<Int>,
    rows a: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>),
    b: UnsafePointer<Float>, alpha: Float, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, storedRows: Int
) {
    typealias V = ISA.Vector
    let w = V.scalarCount
    var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V()
    var c30 = V(), c31 = V(), c40 = V(), c41 = V(), c50 = V(), c51 = V()
    for t in 0..<count {
        // The lists are followed by room for the look-ahead (`GEMMWorkspace.sparseSteps`), so it needs no bound;
        // past `count` it asks for stale or zero offsets, which is harmless (prefetches never fault). Looking ahead
        // into the next tile of columns instead measured slower (the select costs more than the misses it saves).
        let ahead = b + bOffsets[t &+ sparsePrefetchDistance]
        mlp_prefetch(ahead)
        mlp_prefetch(ahead + w)
        mlp_prefetch(a.0 + aOffsets[t &+ sparsePrefetchDistance])
        let pb = b + bOffsets[t], pa = aOffsets[t]
        let b0 = V.load(pb), b1 = V.load(pb + w)
        var x = V(repeating: a.0[pa]); c00 = ISA.multiplyAdd(x, b0, c00); c01 = ISA.multiplyAdd(x, b1, c01)
        x = V(repeating: a.1[pa]); c10 = ISA.multiplyAdd(x, b0, c10); c11 = ISA.multiplyAdd(x, b1, c11)
        x = V(repeating: a.2[pa]); c20 = ISA.multiplyAdd(x, b0, c20); c21 = ISA.multiplyAdd(x, b1, c21)
        x = V(repeating: a.3[pa]); c30 = ISA.multiplyAdd(x, b0, c30); c31 = ISA.multiplyAdd(x, b1, c31)
        x = V(repeating: a.4[pa]); c40 = ISA.multiplyAdd(x, b0, c40); c41 = ISA.multiplyAdd(x, b1, c41)
        x = V(repeating: a.5[pa]); c50 = ISA.multiplyAdd(x, b0, c50); c51 = ISA.multiplyAdd(x, b1, c51)
    }
    storeRow(ISA.self, c00, c01, alpha, beta, c)
    if storedRows > 1 { storeRow(ISA.self, c10, c11, alpha, beta, c + ldc) }
    if storedRows > 2 { storeRow(ISA.self, c20, c21, alpha, beta, c + 2 * ldc) }
    if storedRows > 3 { storeRow(ISA.self, c30, c31, alpha, beta, c + 3 * ldc) }
    if storedRows > 4 { storeRow(ISA.self, c40, c41, alpha, beta, c + 4 * ldc) }
    if storedRows > 5 { storeRow(ISA.self, c50, c51, alpha, beta, c + 5 * ldc) }
}

/// 6 rows × 4 vectors of C over the listed steps (24 accumulators: for ISAs with 32 registers), as `sparseTile6`.
@inlinable @inline(__always)
func sparseTile6x4<ISA: KernelISA>(
    _ isa: ISA.Type, count: Int, aOffsets: UnsafePointer<Int>, bOffsets: UnsafePointer<Int>,
    rows a: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>),
    b: UnsafePointer<Float>, alpha: Float, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, storedRows: Int
) {
    typealias V = ISA.Vector
    let w = V.scalarCount
    var c00 = V(), c01 = V(), c02 = V(), c03 = V(), c10 = V(), c11 = V(), c12 = V(), c13 = V()
    var c20 = V(), c21 = V(), c22 = V(), c23 = V(), c30 = V(), c31 = V(), c32 = V(), c33 = V()
    var c40 = V(), c41 = V(), c42 = V(), c43 = V(), c50 = V(), c51 = V(), c52 = V(), c53 = V()
    for t in 0..<count {
        let u = t &+ sparsePrefetchDistance
        let ahead = b + bOffsets[u]
        mlp_prefetch(ahead)
        mlp_prefetch(ahead + w)
        mlp_prefetch(ahead + 2 * w)
        mlp_prefetch(ahead + 3 * w)
        mlp_prefetch(a.0 + aOffsets[u])
        let pb = b + bOffsets[t], pa = aOffsets[t]
        let b0 = V.load(pb), b1 = V.load(pb + w), b2 = V.load(pb + 2 * w), b3 = V.load(pb + 3 * w)
        var x = V(repeating: a.0[pa])
        c00 = ISA.multiplyAdd(x, b0, c00); c01 = ISA.multiplyAdd(x, b1, c01); c02 = ISA.multiplyAdd(x, b2, c02); c03 = ISA.multiplyAdd(x, b3, c03)
        x = V(repeating: a.1[pa])
        c10 = ISA.multiplyAdd(x, b0, c10); c11 = ISA.multiplyAdd(x, b1, c11); c12 = ISA.multiplyAdd(x, b2, c12); c13 = ISA.multiplyAdd(x, b3, c13)
        x = V(repeating: a.2[pa])
        c20 = ISA.multiplyAdd(x, b0, c20); c21 = ISA.multiplyAdd(x, b1, c21); c22 = ISA.multiplyAdd(x, b2, c22); c23 = ISA.multiplyAdd(x, b3, c23)
        x = V(repeating: a.3[pa])
        c30 = ISA.multiplyAdd(x, b0, c30); c31 = ISA.multiplyAdd(x, b1, c31); c32 = ISA.multiplyAdd(x, b2, c32); c33 = ISA.multiplyAdd(x, b3, c33)
        x = V(repeating: a.4[pa])
        c40 = ISA.multiplyAdd(x, b0, c40); c41 = ISA.multiplyAdd(x, b1, c41); c42 = ISA.multiplyAdd(x, b2, c42); c43 = ISA.multiplyAdd(x, b3, c43)
        x = V(repeating: a.5[pa])
        c50 = ISA.multiplyAdd(x, b0, c50); c51 = ISA.multiplyAdd(x, b1, c51); c52 = ISA.multiplyAdd(x, b2, c52); c53 = ISA.multiplyAdd(x, b3, c53)
    }
    storeRow(ISA.self, c00, c01, alpha, beta, c); storeRow(ISA.self, c02, c03, alpha, beta, c + 2 * w)
    if storedRows > 1 { storeRow(ISA.self, c10, c11, alpha, beta, c + ldc); storeRow(ISA.self, c12, c13, alpha, beta, c + ldc + 2 * w) }
    if storedRows > 2 { storeRow(ISA.self, c20, c21, alpha, beta, c + 2 * ldc); storeRow(ISA.self, c22, c23, alpha, beta, c + 2 * ldc + 2 * w) }
    if storedRows > 3 { storeRow(ISA.self, c30, c31, alpha, beta, c + 3 * ldc); storeRow(ISA.self, c32, c33, alpha, beta, c + 3 * ldc + 2 * w) }
    if storedRows > 4 { storeRow(ISA.self, c40, c41, alpha, beta, c + 4 * ldc); storeRow(ISA.self, c42, c43, alpha, beta, c + 4 * ldc + 2 * w) }
    if storedRows > 5 { storeRow(ISA.self, c50, c51, alpha, beta, c + 5 * ldc); storeRow(ISA.self, c52, c53, alpha, beta, c + 5 * ldc + 2 * w) }
}

/// The listed steps of one tile (`sparseGEMM`), in a thread's workspace or in shared `SparseTileLists`; each list
/// is followed by room for the tiles' look-ahead.
public struct SparseSteps {
    /// Offsets of op(A)'s values from each row's start.
    public var a: UnsafeMutablePointer<Int>
    /// Offsets of B's rows.
    public var b: UnsafeMutablePointer<Int>

    @inlinable
    public init(a: UnsafeMutablePointer<Int>, b: UnsafeMutablePointer<Int>) {
        self.a = a
        self.b = b
    }
}

/// The share of the depth a forward tile of the sparse product would step through, estimated from a batch: the
/// fraction of columns at which any of `sparseTileRows` consecutive rows is nonzero, averaged over up to `samples`
/// tiles spread over the batch (all of it when smaller). How the cpu backend decides whether a gathered batch is
/// worth the sparse product: the share, not the density, is what it costs (MNIST's images are 19% nonzero and
/// their tiles step through 44% of the pixels, because digits share their centre; 19% scattered at random would
/// give 72%).
public func sparseTileShare(_ values: UnsafePointer<Float>, rows: Int, rowLength: Int, samples: Int) -> Double {
    guard rows > 0, rowLength > 0 else { return 1 }
    let magnitude: UInt32 = 0x7FFF_FFFF  // as in `listNonzeroSteps`: ±0 are the zeros
    let tiles = max(1, rows / sparseTileRows), taken = min(tiles, max(1, samples))
    var listed = 0
    for s in 0..<taken {
        let first = (s * tiles / taken) * sparseTileRows, count = min(sparseTileRows, rows - first)
        let r0 = UnsafeRawPointer(values + first * rowLength).assumingMemoryBound(to: UInt32.self)
        if count == sparseTileRows {
            // Six streams or-ed without branches: a loop the compiler vectorises (element by element with an early
            // exit, it was a visible part of a step).
            let r1 = r0 + rowLength, r2 = r1 + rowLength, r3 = r2 + rowLength, r4 = r3 + rowLength, r5 = r4 + rowLength
            for f in 0..<rowLength {
                listed &+= (r0[f] | r1[f] | r2[f] | r3[f] | r4[f] | r5[f]) & magnitude != 0 ? 1 : 0
            }
        } else {
            for f in 0..<rowLength {
                var any: UInt32 = 0
                for r in 0..<count { any |= r0[r &* rowLength &+ f] }
                listed &+= any & magnitude != 0 ? 1 : 0
            }
        }
    }
    return Double(listed) / Double(taken * rowLength)
}
