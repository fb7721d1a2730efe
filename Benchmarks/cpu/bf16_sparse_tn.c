// The first layer's weight gradient (784×512×1024 TN, dW = Xᵀ·dZ on a batch of MNIST images) in bf16, one thread,
// two ways of listing each 6-pixel tile's nonzero images (pairs of them are the tile's depth steps):
// - "backend": `mlp_bf16_sparse_rows` as the cpu backend runs it, listing from X in place (6 floats of each of the
//   batch's 1,024 rows a tile), against dZ's rows rounded whole (`mlp_bf16_pack_rows`);
// - "transposed": X transposed first (16×16 blocks in registers, rows padded against 4 KB aliasing), where a tile's 6
//   pixels are 6 contiguous rows: 16 images at a time compressed (vpcompressd) and converted in pairs; the same tile.
// Prints each one's time and the largest difference between them. The transposed variant handles whole 64-column
// blocks with alpha 1 and beta 0 only: a measurement, not a product path.
//   clang -O2 -I Sources/CBF16GEMM/include Benchmarks/cpu/bf16_sparse_tn.c -lz -lm -o /tmp/bf16_sparse_tn && /tmp/bf16_sparse_tn
// (clang, as SwiftPM builds the product's C; GCC 12 -O2 ran the tiles about 2× slower here.)
// (from the repository root: it reads Data/mnist/train-images-idx3-ubyte.gz.) Finding: Benchmarks/RESULTS.md, 2026-12-08.
#include "../../Sources/CBF16GEMM/bf16_gemm.c"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <zlib.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

// X [k][m] transposed: XT [m][k], 16×16 blocks in registers (three rounds of shuffles), the edges one by one.
TARGET static void transpose(const float *x, int k, int m, int lda, float *xt, size_t ldt) {
    int k16 = k & ~15, m16 = m & ~15;
    for (int s0 = 0; s0 < k16; s0 += 16) {
        for (int f0 = 0; f0 < m16; f0 += 16) {
            __m512 r[16], t[16];
            for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(x + (size_t)(s0 + i) * lda + f0);
            for (int i = 0; i < 8; i++) {
                t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
            }
            for (int i = 0; i < 4; i++) {
                r[4 * i + 0] = (__m512)_mm512_unpacklo_pd((__m512d)t[4 * i + 0], (__m512d)t[4 * i + 2]);
                r[4 * i + 1] = (__m512)_mm512_unpackhi_pd((__m512d)t[4 * i + 0], (__m512d)t[4 * i + 2]);
                r[4 * i + 2] = (__m512)_mm512_unpacklo_pd((__m512d)t[4 * i + 1], (__m512d)t[4 * i + 3]);
                r[4 * i + 3] = (__m512)_mm512_unpackhi_pd((__m512d)t[4 * i + 1], (__m512d)t[4 * i + 3]);
            }
            for (int i = 0; i < 4; i++) {
                t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
                t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
                t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
                t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
            }
            for (int i = 0; i < 8; i++) {
                r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
                r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
            }
            for (int i = 0; i < 16; i++) _mm512_storeu_ps(xt + (size_t)(f0 + i) * ldt + s0, r[i]);
        }
    }
    for (int s = 0; s < k; s++)
        for (int f = (s < k16 ? m16 : 0); f < m; f++) xt[(size_t)f * ldt + s] = x[(size_t)s * lda + f];
}

// From XT: the tile's rows compacted to the images where any of them is nonzero (16 at a time, vpcompressd), then
// converted in pairs of consecutive compacted values. samples[] lists the images, in pairs.
TARGET static int list_transposed(const float *xt, size_t ldt, int k, int rows, float *compacted, int32_t *samples, uint32_t *words, size_t stride) {
    const __m512i iota = _mm512_setr_epi32(0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15);
    int n = 0;
    for (int s0 = 0; s0 < k; s0 += 16) {
        __mmask16 valid = k - s0 >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (k - s0)) - 1);
        __m512 v[6];
        __mmask16 any = 0;
        for (int r = 0; r < 6; r++) {
            v[r] = r < rows ? _mm512_maskz_loadu_ps(valid, xt + (size_t)r * ldt + s0) : _mm512_setzero_ps();
            any |= _mm512_test_epi32_mask((__m512i)v[r], (__m512i)v[r]);
        }
        if (!any) continue;
        for (int r = 0; r < 6; r++) _mm512_storeu_ps(compacted + (size_t)r * stride + n, _mm512_maskz_compress_ps(any, v[r]));
        _mm512_storeu_si512(samples + n, _mm512_maskz_compress_epi32(any, _mm512_add_epi32(iota, _mm512_set1_epi32(s0))));
        n += __builtin_popcount(any);
    }
    if (n & 1) {
        for (int r = 0; r < 6; r++) compacted[(size_t)r * stride + n] = 0;
        samples[n] = samples[n - 1];
        n++;
    }
    int pairs = n / 2;
    for (int q0 = 0; q0 < pairs; q0 += 16) {
        int left = n - 2 * q0;
        __mmask16 low = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        __mmask16 high = left >= 32 ? (__mmask16)0xffff : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
        for (int r = 0; r < 6; r++) {
            const float *row = compacted + (size_t)r * stride + 2 * q0;
            __m512i w = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(high, row + 16), _mm512_maskz_loadu_ps(low, row));
            _mm512_storeu_si512(words + (size_t)r * stride + q0, w);
        }
    }
    return pairs;
}

// compact_tile with the words by rows (words[r * stride + t]) and the images in pairs in samples[].
TARGET static void transposed_tile(int count, const int32_t *samples, const uint32_t *words, size_t stride, const uint16_t *bh, int npad,
                                   float *c, int ldc, int rows) {
    __m512 acc[6][4];
    for (int r = 0; r < 6; r++) acc[r][0] = acc[r][1] = acc[r][2] = acc[r][3] = _mm512_setzero_ps();
    for (int t = 0; t < count; t++) {
        const uint16_t *ra = bh + (size_t)samples[2 * t] * npad, *rb = bh + (size_t)samples[2 * t + 1] * npad;
        int ahead = t + 8 < count ? t + 8 : t;
        const uint16_t *pa = bh + (size_t)samples[2 * ahead] * npad, *pb = bh + (size_t)samples[2 * ahead + 1] * npad;
        _mm_prefetch((const char *)pa, _MM_HINT_T0);
        _mm_prefetch((const char *)(pa + 32), _MM_HINT_T0);
        _mm_prefetch((const char *)pb, _MM_HINT_T0);
        _mm_prefetch((const char *)(pb + 32), _MM_HINT_T0);
        __m512i a0 = _mm512_loadu_si512(ra), b0 = _mm512_loadu_si512(rb), a1 = _mm512_loadu_si512(ra + 32), b1 = _mm512_loadu_si512(rb + 32);
        __m512bh p0 = (__m512bh)_mm512_unpacklo_epi16(a0, b0), p1 = (__m512bh)_mm512_unpackhi_epi16(a0, b0);
        __m512bh p2 = (__m512bh)_mm512_unpacklo_epi16(a1, b1), p3 = (__m512bh)_mm512_unpackhi_epi16(a1, b1);
        for (int r = 0; r < 6; r++) {
            __m512bh x = (__m512bh)_mm512_set1_epi32((int)words[r * stride + t]);
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], x, p0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], x, p1);
            acc[r][2] = _mm512_dpbf16_ps(acc[r][2], x, p2);
            acc[r][3] = _mm512_dpbf16_ps(acc[r][3], x, p3);
        }
    }
    const __m512i i0 = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i i1 = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
    for (int r = 0; r < rows; r++) {
        for (int h = 0; h < 2; h++) {
            _mm512_storeu_ps(c + (size_t)r * ldc + 32 * h, _mm512_permutex2var_ps(acc[r][2 * h], i0, acc[r][2 * h + 1]));
            _mm512_storeu_ps(c + (size_t)r * ldc + 32 * h + 16, _mm512_permutex2var_ps(acc[r][2 * h], i1, acc[r][2 * h + 1]));
        }
    }
}

int main(void) {
    enum { B = 1024, F = 784, N = 512, IMAGES = 60000 };
    gzFile file = gzopen("Data/mnist/train-images-idx3-ubyte.gz", "rb");
    unsigned char header[16], *pixels = malloc((size_t)IMAGES * F);
    if (!file || gzread(file, header, 16) != 16 || gzread(file, pixels, IMAGES * F) != IMAGES * F) {
        fprintf(stderr, "cannot read Data/mnist/train-images-idx3-ubyte.gz (run from the repository root)\n");
        return 1;
    }
    gzclose(file);
    // A batch of 1,024 images drawn with a fixed generator, scaled to [0, 1] as the backend's gather does.
    float *x = malloc(sizeof(float) * B * F), *dz = malloc(sizeof(float) * B * N);
    unsigned long state = 12345;
    for (int r = 0; r < B; r++) {
        state = state * 6364136223846793005UL + 1442695040888963407UL;
        const unsigned char *image = pixels + (size_t)((state >> 33) % IMAGES) * F;
        for (int f = 0; f < F; f++) x[(size_t)r * F + f] = image[f] / 255.f;
    }
    for (int i = 0; i < B * N; i++) dz[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    float *c = malloc(sizeof(float) * F * N), *c2 = malloc(sizeof(float) * F * N);
    uint16_t *rows_bf16 = aligned_alloc(64, mlp_bf16_rows_bytes(B, N) + 64);
    uint32_t *workspace = aligned_alloc(64, mlp_bf16_sparse_workspace_bytes(B) + 64);
    float *xt = malloc(sizeof(float) * (B + 16) * F), *compacted = malloc(sizeof(float) * 6 * (B + 32));
    int32_t *samples = malloc(4 * (B + 32));
    uint32_t *words = malloc(4 * 6 * (B + 32));
    for (int run = 0; run < 5; run++) {
        double t0 = now();
        mlp_bf16_pack_rows(B, N, dz, N, rows_bf16, 0, B);
        double t1 = now();
        mlp_bf16_sparse_rows(1, F, N, B, 1.f, x, F, rows_bf16, 0.f, c, N, 0, F, workspace);
        double t2 = now();
        transpose(x, B, F, F, xt, B + 16);
        if (run == 0) {
            long wrong = 0;
            for (int s = 0; s < B; s++)
                for (int f = 0; f < F; f++) wrong += xt[(size_t)f * (B + 16) + s] != x[(size_t)s * F + f];
            printf("transpose: %ld values wrong\n", wrong);
        }
        double t3 = now(), listing = 0;
        for (int i0 = 0; i0 < F; i0 += 6) {
            int rows = F - i0 < 6 ? F - i0 : 6;
            double l0 = now();
            int count = list_transposed(xt + (size_t)i0 * (B + 16), B + 16, B, rows, compacted, samples, words, B + 32);
            listing += now() - l0;
            for (int j = 0; j < N; j += 64) transposed_tile(count, samples, words, B + 32, rows_bf16 + j, N, c2 + (size_t)i0 * N + j, N, rows);
        }
        double t4 = now(), difference = 0, largest = 0;
        for (int i = 0; i < F * N; i++) {
            difference = fmax(difference, fabs(c[i] - c2[i]));
            largest = fmax(largest, fabs(c[i]));
        }
        printf("backend: rounding dZ's rows %.0f + product %.0f µs | transposed: transposing X %.0f + product %.0f µs (listing %.0f) | "
               "largest difference %.1e of %.1e\n", (t1 - t0) * 1e6, (t2 - t1) * 1e6, (t3 - t2) * 1e6, (t4 - t3) * 1e6, listing * 1e6,
               difference, largest);
    }
    return 0;
}
