#ifndef MLP_BF16_GEMM_H
#define MLP_BF16_GEMM_H
// Matrix products with bf16 operands and fp32 accumulation on AVX-512 BF16 (vdpbf16ps: two bf16 products per fp32
// lane), for the cpu backend's --precision bf16. Row-major fp32 matrices in and out: the operands are rounded to bf16
// (round to nearest even) as they are packed, the sums are fp32.
//
//   C[m, n] = alpha · op(A)[m, k] · op(B)[k, n] + beta · C   (beta == 0: C is not read)
//
// B is packed once (mlp_bf16_pack_b, by panels of MLP_BF16_NR columns, which threads may share), then each thread
// runs its rows of C (mlp_bf16_gemm_rows, in tiles of MLP_BF16_MR rows, packing its A tile into its own buffer).
// Only call these where mlp_cpu_has_avx512_bf16() says the CPU has the instructions.
#include <stddef.h>
#include <stdint.h>

#define MLP_BF16_MR 12
#define MLP_BF16_NR 32

// Whether the CPU (and the operating system) supports AVX-512 F and BF16.
int mlp_cpu_has_avx512_bf16(void);

// Bytes of B packed: op(B) [k, n] as ceil(n / NR) panels of ceil(k / 2) pairs of rows, zero-padded.
size_t mlp_bf16_packed_b_bytes(int k, int n);

// Bytes of one thread's A tile buffer for depth k.
size_t mlp_bf16_packed_a_bytes(int k);

// Packs panels [panel_begin, panel_end) of op(B) (B[k, n] with row stride ldb, or B[n, k] when trans_b).
void mlp_bf16_pack_b(int trans_b, int k, int n, const float *b, int ldb, uint16_t *packed, int panel_begin, int panel_end);

// Rows [row_begin, row_end) of C from op(A) (A[m, k] with row stride lda, or A[k, m] when trans_a) and packed B.
void mlp_bf16_gemm_rows(int trans_a, int m, int n, int k, float alpha, const float *a, int lda, const uint16_t *packed_b,
                        float beta, float *c, int ldc, int row_begin, int row_end, uint32_t *packed_a);

// The sparse product, for an op(A) that is mostly zeros (the first layer's batch of images, or its transpose): C's
// rows in tiles of MLP_BF16_SPARSE_ROWS, each listing the pairs of depth steps where any of its rows of op(A) is
// nonzero (reading A in place, converting only its rows) and running over those pairs only.
// - op(A) = A (the forward): pairs of neighbouring steps, against B packed as for mlp_bf16_gemm_rows. Each sum is the
//   dense product's chain without its terms of zero pairs, in the same order: equal to mlp_bf16_gemm_rows's result
//   for finite B.
// - op(A) = Aᵀ (the weight gradient, whose depth is the batch): the tile's nonzero steps paired in the order they come
//   (fewer pairs than neighbours), against B as whole bf16 rows (mlp_bf16_pack_rows). The sums are the bf16 terms
//   added in fp32 in another order than the dense product's.
#define MLP_BF16_SPARSE_ROWS 6

// Bytes of B [k, n] as bf16 rows padded to whole panels (mlp_bf16_pack_rows); at most mlp_bf16_packed_b_bytes.
size_t mlp_bf16_rows_bytes(int k, int n);

// Rows [row_begin, row_end) of B [k, n] (row stride ldb) rounded to bf16, each padded with zeros to whole panels of
// MLP_BF16_NR columns: the B of a sparse product with trans_a.
void mlp_bf16_pack_rows(int k, int n, const float *b, int ldb, uint16_t *out, int row_begin, int row_end);

// Bytes of one thread's workspace for mlp_bf16_sparse_rows at depth k.
size_t mlp_bf16_sparse_workspace_bytes(int k);

void mlp_bf16_sparse_rows(int trans_a, int m, int n, int k, float alpha, const float *a, int lda, const uint16_t *packed_b,
                          float beta, float *c, int ldc, int row_begin, int row_end, uint32_t *workspace);

#endif
