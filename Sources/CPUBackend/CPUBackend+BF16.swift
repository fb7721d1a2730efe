import CBF16GEMM
import CPUKernels
import MLPCore

/// `--precision bf16` on the cpu backend: matrix products with bf16 operands and fp32 sums on AVX-512 BF16
/// (`Sources/CBF16GEMM`); the parameters, gradients, optimizer state, activations and loss stay fp32. B is packed to bf16
/// once per product by panels, split between the threads; then the threads take C's rows in tiles of 12, each packing
/// its own rows of A; or, for the first layer's products on a sparse batch, in tiles of 6 that list the pairs of depth
/// steps where their rows of op(A) are nonzero and run over those only (`mlp_bf16_sparse_rows`: the forward pairs
/// neighbouring pixels, the weight gradient the tile's nonzero images in order, against B's rows rounded whole).
extension CPUBackend {
    /// The fewest rows of C at which a product runs in bf16: packing B to bf16 is paid once per product, and over
    /// few rows it costs more than the faster tiles save; those products stay fp32. At 128 rows bf16 wins, since B is
    /// packed with vector conversions and the first layer's tiles run only their nonzero pairs: small-128's three
    /// forward-and-backward products of 128 rows took 130–187 µs each in bf16 against 188–265 in fp32, in the
    /// machine's usual phase (Benchmarks/RESULTS.md, 2026-12-08; with scalar packing they had lost, at 256).
    static let bf16MinimumRows = 128

    /// Whether this CPU can run bf16 products.
    public static var supportsBF16: Bool { mlp_cpu_has_avx512_bf16() != 0 }

    /// `g` with bf16 operands; `sparse`: skipping the depth steps where a whole tile of op(A)'s rows is zero
    /// (`mlp_bf16_sparse_rows`).
    func bf16GEMM(_ g: GEMMArguments, sparse: Bool = false) {
        let panels = (g.n + Int(MLP_BF16_NR) - 1) / Int(MLP_BF16_NR)
        let tileBytes = sparse ? mlp_bf16_sparse_workspace_bytes(Int32(g.k)) : mlp_bf16_packed_a_bytes(Int32(g.k))
        bf16Buffers.reserve(packedB: mlp_bf16_packed_b_bytes(Int32(g.k), Int32(g.n)), packedA: tileBytes, threads: pool.threadCount)
        bf16Product = g
        bf16Sparse = sparse
        bf16Parts = min(parts(g.k * g.n, grain: 65_536), sparse && g.transposeA ? g.k : panels)
        flushingSubnormals { pool.run(tasks: bf16Parts, bf16PackJob) }
        let tiles = (g.m + bf16TileRows - 1) / bf16TileRows
        bf16Parts = min(parts(2 * g.m * g.n * g.k, grain: 2_000_000), tiles)
        flushingSubnormals { pool.run(tasks: bf16Parts, bf16RowsJob) }
    }

    /// Part `t` of `bf16Parts` of packing B's panels; for a sparse weight gradient, of rounding B's rows (its tiles
    /// pair B's rows as they find their nonzero steps).
    func bf16Pack(_ t: Int) {
        let g = bf16Product, panels = (g.n + Int(MLP_BF16_NR) - 1) / Int(MLP_BF16_NR)
        if bf16Sparse && g.transposeA {
            return mlp_bf16_pack_rows(Int32(g.k), Int32(g.n), g.b, Int32(g.ldb), bf16Buffers.packedB,
                                      Int32(g.k * t / bf16Parts), Int32(g.k * (t + 1) / bf16Parts))
        }
        mlp_bf16_pack_b(g.transposeB ? 1 : 0, Int32(g.k), Int32(g.n), g.b, Int32(g.ldb), bf16Buffers.packedB,
                        Int32(panels * t / bf16Parts), Int32(panels * (t + 1) / bf16Parts))
    }

    /// The rows of C in a tile of the product in progress.
    var bf16TileRows: Int { Int(bf16Sparse ? MLP_BF16_SPARSE_ROWS : MLP_BF16_MR) }

    /// Part `t` of `bf16Parts` of C's rows, whole tiles each.
    func bf16Rows(_ t: Int) {
        let g = bf16Product, mr = bf16TileRows, tiles = (g.m + mr - 1) / mr
        let lo = tiles * t / bf16Parts * mr, hi = min(g.m, tiles * (t + 1) / bf16Parts * mr)
        guard lo < hi else { return }
        if bf16Sparse {
            return mlp_bf16_sparse_rows(g.transposeA ? 1 : 0, Int32(g.m), Int32(g.n), Int32(g.k), g.alpha, g.a, Int32(g.lda), bf16Buffers.packedB,
                                        g.beta, g.c, Int32(g.ldc), Int32(lo), Int32(hi), bf16Buffers.packedA[t])
        }
        mlp_bf16_gemm_rows(g.transposeA ? 1 : 0, Int32(g.m), Int32(g.n), Int32(g.k), g.alpha, g.a, Int32(g.lda), bf16Buffers.packedB,
                           g.beta, g.c, Int32(g.ldc), Int32(lo), Int32(hi), bf16Buffers.packedA[t])
    }
}

/// The bf16 products' packed operands: B for the product in progress, and each thread's tile of A (or, for a sparse
/// product, its tile's lists). They grow to the largest product seen and are kept (no allocation in a step once the
/// first has run).
final class BF16Buffers {
    private(set) var packedB = UnsafeMutablePointer<UInt16>.allocate(capacity: 1)
    private(set) var packedA = [UnsafeMutablePointer<UInt32>]()
    private var bBytes = 0, aBytes = 0

    func reserve(packedB bytes: Int, packedA tileBytes: Int, threads: Int) {
        if bytes > bBytes {
            packedB.deallocate()
            packedB = UnsafeMutablePointer<UInt16>.allocate(capacity: bytes / 2)
            bBytes = bytes
        }
        if tileBytes > aBytes || packedA.count < threads {
            for buffer in packedA { buffer.deallocate() }
            packedA = (0..<threads).map { _ in UnsafeMutablePointer<UInt32>.allocate(capacity: max(tileBytes, aBytes) / 4) }
            aBytes = max(tileBytes, aBytes)
        }
    }

    deinit {
        packedB.deallocate()
        for buffer in packedA { buffer.deallocate() }
    }
}
