// bf16 products on AVX-512 BF16: see CBF16GEMM.h. Written in C because Swift has no access to vdpbf16ps; the
// functions that use it carry the instruction sets as target attributes, so the file builds for any x86-64 and the
// caller checks the CPU first (mlp_cpu_has_avx512_bf16).
#include "CBF16GEMM.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define MR MLP_BF16_MR
#define NR MLP_BF16_NR
#define TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

int mlp_cpu_has_avx512_bf16(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
}

// fp32 → bf16 as vcvtne2ps2bf16 rounds: to nearest even, subnormals to signed zero, NaN kept quiet. The packing's
// vector and scalar paths then give the same bits, whatever a matrix's sizes and alignment.
static inline uint16_t to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

size_t mlp_bf16_packed_b_bytes(int k, int n) {
    return (size_t)((n + NR - 1) / NR) * (size_t)((k + 1) / 2) * NR * 2 * sizeof(uint16_t);
}

size_t mlp_bf16_packed_a_bytes(int k) { return (size_t)((k + 1) / 2) * MR * sizeof(uint32_t); }

// Two rows of 16 values as 16 bf16 pairs (x0[j], x1[j]): the layout vdpbf16ps reads, a pair per 32-bit lane.
TARGET static inline __m512i interleave_pairs(__m512 x0, __m512 x1) {
    __m512 lo = _mm512_permutex2var_ps(x0, _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0), x1);
    __m512 hi = _mm512_permutex2var_ps(x0, _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8), x1);
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

// A row of k values whose neighbours pair up (depth steps 2p and 2p + 1) as k2 bf16 pairs, pair p written to
// out[p * stride]: 32 values a conversion, the rest one by one.
TARGET static void row_pairs(const float *row, int k, uint32_t *out, size_t stride) {
    int k2 = (k + 1) / 2, p = 0;
    for (; 2 * p + 32 <= k; p += 16) {
        uint32_t pairs[16];
        _mm512_storeu_si512(pairs, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(row + 2 * p + 16), _mm512_loadu_ps(row + 2 * p)));
        for (int q = 0; q < 16; q++) out[(size_t)(p + q) * stride] = pairs[q];
    }
    for (; p < k2; p++) {
        uint16_t lo = to_bf16(row[2 * p]), hi = 2 * p + 1 < k ? to_bf16(row[2 * p + 1]) : 0;
        out[(size_t)p * stride] = (uint32_t)lo | (uint32_t)hi << 16;
    }
}

// `valid` rows of k values (row stride `stride` from `first`) as the first `valid` of `lanes` interleaved lanes of
// pairs: row r's pair p at out[p * lanes + r]; the lanes past `valid` are zeros.
TARGET static void lanes_of_rows(const float *first, int stride, int valid, int lanes, int k, uint32_t *out) {
    int k2 = (k + 1) / 2;
    for (int r = 0; r < lanes; r++) {
        if (r < valid) {
            row_pairs(first + (size_t)r * stride, k, out + r, (size_t)lanes);
        } else {
            for (int p = 0; p < k2; p++) out[(size_t)p * lanes + r] = 0;
        }
    }
}

// Panel `panel` as [k2][NR][2]: for each pair of depth steps, the NR columns' two values side by side, as vdpbf16ps
// reads them; columns past n are zeros.
TARGET void mlp_bf16_pack_b(int trans_b, int k, int n, const float *b, int ldb, uint16_t *packed, int panel_begin, int panel_end) {
    int k2 = (k + 1) / 2;
    for (int panel = panel_begin; panel < panel_end; panel++) {
        int j0 = panel * NR, columns = n - j0 < NR ? n - j0 : NR;
        uint16_t *out = packed + (size_t)panel * k2 * NR * 2;
        uint32_t *pairs_out = (uint32_t *)out;
        if (trans_b) {
            // op(B) = Bᵀ: each column's pairs of depth steps are side by side in B's row.
            lanes_of_rows(b + (size_t)j0 * ldb, ldb, columns, NR, k, pairs_out);
            continue;
        }
        // op(B) = B: a pair of depth steps is two rows of B, interleaved column by column.
        for (int p = 0; p < k2; p++) {
            int k0 = 2 * p;
            if (columns == NR && k0 + 1 < k) {
                const float *r0 = b + (size_t)k0 * ldb + j0, *r1 = r0 + ldb;
                for (int h = 0; h < NR; h += 16)
                    _mm512_storeu_si512(out + ((size_t)p * NR + h) * 2, interleave_pairs(_mm512_loadu_ps(r0 + h), _mm512_loadu_ps(r1 + h)));
                continue;
            }
            for (int j = 0; j < NR; j++) {
                float v0 = j < columns ? b[(size_t)k0 * ldb + j0 + j] : 0;
                float v1 = j < columns && k0 + 1 < k ? b[(size_t)(k0 + 1) * ldb + j0 + j] : 0;
                out[((size_t)p * NR + j) * 2] = to_bf16(v0);
                out[((size_t)p * NR + j) * 2 + 1] = to_bf16(v1);
            }
        }
    }
}

// Rows [i0, i0 + rows) of op(A) as [k2][MR] pairs (the low half the even depth step), zero-padded past `rows`.
TARGET static void pack_a(int trans_a, int k, const float *a, int lda, int i0, int rows, uint32_t *out) {
    int k2 = (k + 1) / 2;
    if (!trans_a) {
        lanes_of_rows(a + (size_t)i0 * lda, lda, rows, MR, k, out);
        return;
    }
    // op(A) = Aᵀ: a tile's MR values of one depth step are contiguous in A's row; two rows of A (a pair of depth
    // steps) interleave into the tile's MR pairs.
    __mmask16 valid = (__mmask16)((1u << rows) - 1);
    for (int p = 0; p < k2; p++) {
        const float *r0 = a + (size_t)(2 * p) * lda + i0, *r1 = r0 + lda;
        __m512 x0 = _mm512_maskz_loadu_ps(valid, r0), x1 = 2 * p + 1 < k ? _mm512_maskz_loadu_ps(valid, r1) : _mm512_setzero_ps();
        _mm512_mask_storeu_epi32(out + (size_t)p * MR, (__mmask16)((1u << MR) - 1), interleave_pairs(x0, x1));
    }
}

// The first `left` of 16 lanes (none for left <= 0, all for left >= 16): the mask of a vector at a row's end.
static inline __mmask16 lanes(int left) { return left >= 16 ? (__mmask16)0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1); }

// One row of a tile of C from its accumulators, a pair of 16-column vectors per panel (v0 and v1: columns 0–31, v2 and
// v3: 32–63): c = alpha · acc + beta · c on `columns` columns. The vectors come by value: passed by address, the
// accumulators left the registers of the sparse tiles' loops (25% slower).
__attribute__((always_inline)) TARGET static inline void store_row(__m512 v0, __m512 v1, __m512 v2, __m512 v3, int panels, float alpha,
                                                                   float beta, float *c, int columns) {
    __m512 v[4] = {v0, v1, v2, v3};
    for (int h = 0; h < 2 * panels; h++) {
        int left = columns - 16 * h;
        if (left <= 0) break;
        __mmask16 mask = lanes(left);
        __m512 out = _mm512_mul_ps(_mm512_set1_ps(alpha), v[h]);
        if (beta != 0) out = _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(mask, c + 16 * h), out);
        _mm512_mask_storeu_ps(c + 16 * h, mask, out);
    }
}

// One MR × NR tile of C: 24 accumulators, each depth pair one vdpbf16ps per accumulator.
TARGET static void tile(const uint32_t *a, const uint16_t *b, int k2, float alpha, float beta, float *c, int ldc, int rows, int columns) {
    __m512 acc[MR][2];
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int p = 0; p < k2; p++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + (size_t)p * NR * 2), b1 = (__m512bh)_mm512_loadu_si512(b + (size_t)p * NR * 2 + 32);
        for (int r = 0; r < MR; r++) {
            __m512bh x = (__m512bh)_mm512_set1_epi32((int)a[(size_t)p * MR + r]);
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], x, b0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], x, b1);
        }
    }
    for (int r = 0; r < rows; r++) store_row(acc[r][0], acc[r][1], acc[r][0], acc[r][1], 1, alpha, beta, c + (size_t)r * ldc, columns);
}

TARGET void mlp_bf16_gemm_rows(int trans_a, int m, int n, int k, float alpha, const float *a, int lda, const uint16_t *packed_b,
                               float beta, float *c, int ldc, int row_begin, int row_end, uint32_t *packed_a) {
    int k2 = (k + 1) / 2, panels = (n + NR - 1) / NR;
    if (row_end > m) row_end = m;
    for (int i0 = row_begin; i0 < row_end; i0 += MR) {
        int rows = row_end - i0 < MR ? row_end - i0 : MR;
        pack_a(trans_a, k, a, lda, i0, rows, packed_a);
        for (int panel = 0; panel < panels; panel++) {
            int j0 = panel * NR;
            tile(packed_a, packed_b + (size_t)panel * k2 * NR * 2, k2, alpha, beta, c + (size_t)i0 * ldc + j0, ldc, rows,
                 n - j0 < NR ? n - j0 : NR);
        }
    }
}

// The sparse product (see CBF16GEMM.h). op(A) = A (the forward): a tile's rows as the listed pairs' bf16 words, row
// r's word of the t-th listed pair at words[r * capacity + t], the pairs' indices in `pairs`; both lists have 16
// entries of slack past the depth's pairs (the compressed stores write whole vectors). op(A) = Aᵀ (the weight
// gradient): the depth steps (images) where any of the tile's rows is nonzero, paired in the order they come, the
// t-th pair's steps at steps[2t] and steps[2t + 1] and its 8 words (6 used) at words[8t].
#define SR MLP_BF16_SPARSE_ROWS

size_t mlp_bf16_sparse_workspace_bytes(int k) {
    size_t k2 = (size_t)(k + 1) / 2, forward = 9 * (k2 + 16);
    size_t gradient = 8 * ((size_t)k + 16) + ((size_t)k + 16) + 8 * (k2 + 16);  // values, steps, words
    return (forward > gradient ? forward : gradient) * sizeof(uint32_t);
}

size_t mlp_bf16_rows_bytes(int k, int n) { return (size_t)k * ((n + NR - 1) / NR) * NR * sizeof(uint16_t); }

TARGET void mlp_bf16_pack_rows(int k, int n, const float *b, int ldb, uint16_t *out, int row_begin, int row_end) {
    int width = (n + NR - 1) / NR * NR;
    for (int p = row_begin; p < row_end && p < k; p++) {
        for (int j = 0; j < width; j += 32) {
            const float *row = b + (size_t)p * ldb + j;
            _mm512_storeu_si512(out + (size_t)p * width + j,
                                (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(lanes(n - j - 16), row + 16), _mm512_maskz_loadu_ps(lanes(n - j), row)));
        }
    }
}

// op(A) = A: row r's pairs are neighbours in its row. 16 pairs at a time, converted as the packing converts them; the
// pairs where any row's word is nonzero are compressed into the lists (in registers: a compressing store to memory is
// slow on some CPUs). Rows past `rows` list zeros.
TARGET static int list_pairs_of_rows(const float *a, int lda, int rows, int k, int32_t *pairs, uint32_t *words, size_t row_stride) {
    int k2 = (k + 1) / 2, count = 0;
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int p0 = 0; p0 < k2; p0 += 16) {
        __mmask16 low = lanes(k - 2 * p0), high = lanes(k - 2 * p0 - 16);
        __m512i w[SR];
        __mmask16 any = 0;
        for (int r = 0; r < SR; r++) {
            if (r < rows) {
                const float *row = a + (size_t)r * lda + 2 * p0;
                w[r] = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(high, row + 16), _mm512_maskz_loadu_ps(low, row));
                any |= _mm512_test_epi32_mask(w[r], w[r]);
            } else {
                w[r] = _mm512_setzero_si512();
            }
        }
        if (!any) continue;
        _mm512_storeu_si512(pairs + count, _mm512_maskz_compress_epi32(any, _mm512_add_epi32(iota, _mm512_set1_epi32(p0))));
        for (int r = 0; r < SR; r++) _mm512_storeu_si512(words + (size_t)r * row_stride + count, _mm512_maskz_compress_epi32(any, w[r]));
        count += __builtin_popcount(any);
    }
    return count;
}

// op(A) = Aᵀ: a tile's values at one depth step are neighbours in A's row. 16 steps at a time: each one's values loaded
// into a local array, then the nonzero ones copied to `values` in order; then consecutive
// nonzero steps are paired, their values interleaved into the tile's words (the last one, if alone, with zeros).
// Pairing only nonzero steps lists fewer pairs than pairing neighbours: 34% of the depth against 45% for a 6-pixel
// tile over MNIST images (Benchmarks/RESULTS.md, 2026-12-08). Returns the pairs' count.
TARGET static int list_nonzero_steps(const float *a, int lda, int rows, int k, float *values, int32_t *steps, uint32_t *words) {
    __mmask8 valid = (__mmask8)((1u << rows) - 1);
    int n = 0;
    __m256 group[16];
    for (int p0 = 0; p0 < k; p0 += 16) {
        int size = k - p0 < 16 ? k - p0 : 16;
        uint32_t nonzero = 0;
        for (int j = 0; j < size; j++) {
            group[j] = _mm256_maskz_loadu_ps(valid, a + (size_t)(p0 + j) * lda);
            nonzero |= (uint32_t)(_mm256_test_epi32_mask((__m256i)group[j], (__m256i)group[j]) != 0) << j;
        }
        while (nonzero) {
            int j = __builtin_ctz(nonzero);
            nonzero &= nonzero - 1;
            _mm256_storeu_ps(values + (size_t)n * 8, group[j]);
            steps[n++] = p0 + j;
        }
    }
    if (n & 1) {
        _mm256_storeu_ps(values + (size_t)n * 8, _mm256_setzero_ps());
        steps[n] = steps[n - 1];  // a zero value times a real row of B: exactly zero
        n++;
    }
    for (int t = 0; t < n / 2; t++) {
        __m512 x0 = _mm512_zextps256_ps512(_mm256_loadu_ps(values + (size_t)(2 * t) * 8));
        __m512 x1 = _mm512_zextps256_ps512(_mm256_loadu_ps(values + (size_t)(2 * t + 1) * 8));
        _mm256_storeu_si256((__m256i *)(words + (size_t)t * 8), _mm512_castsi512_si256(interleave_pairs(x0, x1)));
    }
    return n / 2;
}

// The weight gradient's tile over `count` pairs of nonzero steps: B's rows whole in bf16 (`width` values apart, from
// the tile's first column), the two rows of a pair interleaved into vdpbf16ps's pairs by vpunpck{l,h}wd, which
// takes columns 8L..8L+3 (low) and 8L+4..8L+7 (high) of each 128-bit lane L: the accumulators hold the columns in
// that order, put back at the end. B's rows are fetched 8 pairs ahead.
TARGET static void nonzero_steps_tile(int count, const int32_t *steps, const uint32_t *words, const uint16_t *b, size_t width,
                                      int panels, float alpha, float beta, float *c, int ldc, int rows, int columns) {
    __m512 acc[SR][4];
    for (int r = 0; r < SR; r++) acc[r][0] = acc[r][1] = acc[r][2] = acc[r][3] = _mm512_setzero_ps();
    for (int t = 0; t < count; t++) {
        const uint16_t *r0 = b + (size_t)steps[2 * t] * width, *r1 = b + (size_t)steps[2 * t + 1] * width;
        int ahead = t + 8 < count ? t + 8 : t;
        const uint16_t *f0 = b + (size_t)steps[2 * ahead] * width, *f1 = b + (size_t)steps[2 * ahead + 1] * width;
        _mm_prefetch((const char *)f0, _MM_HINT_T0);
        _mm_prefetch((const char *)f1, _MM_HINT_T0);
        __m512i a0 = _mm512_loadu_si512(r0), a1 = _mm512_loadu_si512(r1);
        __m512bh p0 = (__m512bh)_mm512_unpacklo_epi16(a0, a1), p1 = (__m512bh)_mm512_unpackhi_epi16(a0, a1);
        if (panels == 2) {
            _mm_prefetch((const char *)(f0 + 32), _MM_HINT_T0);
            _mm_prefetch((const char *)(f1 + 32), _MM_HINT_T0);
            __m512i a2 = _mm512_loadu_si512(r0 + 32), a3 = _mm512_loadu_si512(r1 + 32);
            __m512bh p2 = (__m512bh)_mm512_unpacklo_epi16(a2, a3), p3 = (__m512bh)_mm512_unpackhi_epi16(a2, a3);
            for (int r = 0; r < SR; r++) {
                __m512bh x = (__m512bh)_mm512_set1_epi32((int)words[(size_t)t * 8 + r]);
                acc[r][0] = _mm512_dpbf16_ps(acc[r][0], x, p0);
                acc[r][1] = _mm512_dpbf16_ps(acc[r][1], x, p1);
                acc[r][2] = _mm512_dpbf16_ps(acc[r][2], x, p2);
                acc[r][3] = _mm512_dpbf16_ps(acc[r][3], x, p3);
            }
        } else {
            for (int r = 0; r < SR; r++) {
                __m512bh x = (__m512bh)_mm512_set1_epi32((int)words[(size_t)t * 8 + r]);
                acc[r][0] = _mm512_dpbf16_ps(acc[r][0], x, p0);
                acc[r][1] = _mm512_dpbf16_ps(acc[r][1], x, p1);
            }
        }
    }
    const __m512i first = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i second = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
    for (int r = 0; r < rows; r++) {
        store_row(_mm512_permutex2var_ps(acc[r][0], first, acc[r][1]), _mm512_permutex2var_ps(acc[r][0], second, acc[r][1]),
                  _mm512_permutex2var_ps(acc[r][2], first, acc[r][3]), _mm512_permutex2var_ps(acc[r][2], second, acc[r][3]),
                  panels, alpha, beta, c + (size_t)r * ldc, columns);
    }
}

// The forward's tile over `panels` (1 or 2) panels of B (panel_stride apart) and the `count` listed pairs: one
// vdpbf16ps per accumulator per listed pair, in the pairs' order. B's pairs (two cache lines a panel) are fetched 8
// listed pairs ahead: their order defeats the hardware's prefetchers.
TARGET static void sparse_tile(int count, const int32_t *pairs, const uint32_t *words, size_t row_stride,
                               const uint16_t *b, size_t panel_stride, int panels, float alpha, float beta, float *c, int ldc,
                               int rows, int columns) {
    __m512 acc[SR][4];
    for (int r = 0; r < SR; r++) acc[r][0] = acc[r][1] = acc[r][2] = acc[r][3] = _mm512_setzero_ps();
    if (panels == 2) {
        for (int t = 0; t < count; t++) {
            const uint16_t *bp = b + (size_t)pairs[t] * NR * 2, *ahead = b + (size_t)pairs[t + 8 < count ? t + 8 : t] * NR * 2;
            _mm_prefetch((const char *)ahead, _MM_HINT_T0);
            _mm_prefetch((const char *)(ahead + 32), _MM_HINT_T0);
            _mm_prefetch((const char *)(ahead + panel_stride), _MM_HINT_T0);
            _mm_prefetch((const char *)(ahead + panel_stride + 32), _MM_HINT_T0);
            __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp), b1 = (__m512bh)_mm512_loadu_si512(bp + 32);
            __m512bh b2 = (__m512bh)_mm512_loadu_si512(bp + panel_stride), b3 = (__m512bh)_mm512_loadu_si512(bp + panel_stride + 32);
            for (int r = 0; r < SR; r++) {
                __m512bh x = (__m512bh)_mm512_set1_epi32((int)words[r * row_stride + t]);
                acc[r][0] = _mm512_dpbf16_ps(acc[r][0], x, b0);
                acc[r][1] = _mm512_dpbf16_ps(acc[r][1], x, b1);
                acc[r][2] = _mm512_dpbf16_ps(acc[r][2], x, b2);
                acc[r][3] = _mm512_dpbf16_ps(acc[r][3], x, b3);
            }
        }
    } else {
        for (int t = 0; t < count; t++) {
            const uint16_t *bp = b + (size_t)pairs[t] * NR * 2;
            const uint16_t *ahead = b + (size_t)pairs[t + 8 < count ? t + 8 : t] * NR * 2;
            _mm_prefetch((const char *)ahead, _MM_HINT_T0);
            _mm_prefetch((const char *)(ahead + 32), _MM_HINT_T0);
            __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp), b1 = (__m512bh)_mm512_loadu_si512(bp + 32);
            for (int r = 0; r < SR; r++) {
                __m512bh x = (__m512bh)_mm512_set1_epi32((int)words[r * row_stride + t]);
                acc[r][0] = _mm512_dpbf16_ps(acc[r][0], x, b0);
                acc[r][1] = _mm512_dpbf16_ps(acc[r][1], x, b1);
            }
        }
    }
    for (int r = 0; r < rows; r++) store_row(acc[r][0], acc[r][1], acc[r][2], acc[r][3], panels, alpha, beta, c + (size_t)r * ldc, columns);
}

TARGET void mlp_bf16_sparse_rows(int trans_a, int m, int n, int k, float alpha, const float *a, int lda, const uint16_t *packed_b,
                                 float beta, float *c, int ldc, int row_begin, int row_end, uint32_t *workspace) {
    int k2 = (k + 1) / 2, panels = (n + NR - 1) / NR;
    if (row_end > m) row_end = m;
    if (trans_a) {
        // B as whole bf16 rows (mlp_bf16_pack_rows), `width` values apart.
        size_t width = (size_t)panels * NR;
        float *values = (float *)workspace;
        int32_t *steps = (int32_t *)(workspace + 8 * ((size_t)k + 16));
        uint32_t *words = workspace + 9 * ((size_t)k + 16);
        for (int i0 = row_begin; i0 < row_end; i0 += SR) {
            int rows = row_end - i0 < SR ? row_end - i0 : SR;
            int count = list_nonzero_steps(a + i0, lda, rows, k, values, steps, words);
            for (int panel = 0; panel < panels; panel += 2) {
                int both = panels - panel >= 2 ? 2 : 1;
                nonzero_steps_tile(count, steps, words, packed_b + (size_t)panel * NR, width, both, alpha, beta,
                                   c + (size_t)i0 * ldc + panel * NR, ldc, rows, n - panel * NR < both * NR ? n - panel * NR : both * NR);
            }
        }
        return;
    }
    size_t capacity = (size_t)k2 + 16, panel_stride = (size_t)k2 * NR * 2;
    int32_t *pairs = (int32_t *)workspace;
    uint32_t *words = workspace + capacity;
    for (int i0 = row_begin; i0 < row_end; i0 += SR) {
        int rows = row_end - i0 < SR ? row_end - i0 : SR;
        int count = list_pairs_of_rows(a + (size_t)i0 * lda, lda, rows, k, pairs, words, capacity);
        for (int panel = 0; panel < panels; panel += 2) {
            int both = panels - panel >= 2 ? 2 : 1;
            sparse_tile(count, pairs, words, capacity, packed_b + (size_t)panel * panel_stride, panel_stride, both,
                        alpha, beta, c + (size_t)i0 * ldc + panel * NR, ldc, rows, n - panel * NR < both * NR ? n - panel * NR : both * NR);
        }
    }
}

#else
int mlp_cpu_has_avx512_bf16(void) { return 0; }
size_t mlp_bf16_sparse_workspace_bytes(int k) { (void)k; return 0; }
size_t mlp_bf16_rows_bytes(int k, int n) { (void)k; (void)n; return 0; }
void mlp_bf16_pack_rows(int k, int n, const float *b, int ldb, uint16_t *out, int row_begin, int row_end) {}
void mlp_bf16_sparse_rows(int trans_a, int m, int n, int k, float alpha, const float *a, int lda, const uint16_t *packed_b,
                          float beta, float *c, int ldc, int row_begin, int row_end, uint32_t *workspace) {}
size_t mlp_bf16_packed_b_bytes(int k, int n) { (void)k; (void)n; return 0; }
size_t mlp_bf16_packed_a_bytes(int k) { (void)k; return 0; }
void mlp_bf16_pack_b(int trans_b, int k, int n, const float *b, int ldb, uint16_t *packed, int panel_begin, int panel_end) {}
void mlp_bf16_gemm_rows(int trans_a, int m, int n, int k, float alpha, const float *a, int lda, const uint16_t *packed_b,
                        float beta, float *c, int ldc, int row_begin, int row_end, uint32_t *packed_a) {}
#endif
