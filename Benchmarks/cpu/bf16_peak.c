// The CPU's arithmetic peaks that issue 27's bf16 path would run at, one core, register-resident (no memory):
// vfmadd231ps (16 fp32 multiply-adds per zmm: 32 FLOP) against vdpbf16ps (32 bf16 products summed in pairs into 16
// fp32 lanes: 64 FLOP), 24 independent accumulators each (as a 12 × 2-vector GEMM tile has), best of 5 runs.
//   cc -O2 -mavx512f -mavx512bf16 Benchmarks/cpu/bf16_peak.c -o /tmp/bf16_peak && /tmp/bf16_peak
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define ACC 24
#define ITERATIONS 20000000L
// The 24 accumulators written out, so that each stays in a register (a loop over an array of them may not).
#define EACH(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23)
#define DECLARE(i) __m512 acc##i = _mm512_set1_ps((float)i);
#define FMA(i) acc##i = _mm512_fmadd_ps(a, b, acc##i);
#define DOT(i) acc##i = _mm512_dpbf16_ps(acc##i, a, b);
#define SUM(i) sum = _mm512_add_ps(sum, acc##i);

static double fp32_peak(void) {
    __m512 a = _mm512_set1_ps(1.0000001f), b = _mm512_set1_ps(0.9999999f);
    EACH(DECLARE)
    double start = now();
    for (long n = 0; n < ITERATIONS; n++) {
        EACH(FMA)
        __asm__ volatile("" : "+v"(a), "+v"(b));
    }
    double seconds = now() - start;
    __m512 sum = _mm512_setzero_ps();
    EACH(SUM)
    volatile float sink = _mm512_reduce_add_ps(sum);
    (void)sink;
    return (double)ITERATIONS * ACC * 32 / seconds / 1e9;
}

static double bf16_peak(void) {
    __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1.0f), _mm512_set1_ps(0.5f));
    __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.25f), _mm512_set1_ps(2.0f));
    EACH(DECLARE)
    double start = now();
    for (long n = 0; n < ITERATIONS; n++) {
        EACH(DOT)
        __asm__ volatile("" : "+v"(a), "+v"(b));
    }
    double seconds = now() - start;
    __m512 sum = _mm512_setzero_ps();
    EACH(SUM)
    volatile float sink = _mm512_reduce_add_ps(sum);
    (void)sink;
    return (double)ITERATIONS * ACC * 64 / seconds / 1e9;
}

int main(void) {
    double best32 = 0, best16 = 0;
    for (int r = 0; r < 5; r++) {
        double f = fp32_peak(), h = bf16_peak();
        if (f > best32) best32 = f;
        if (h > best16) best16 = h;
    }
    printf("one core: fp32 FMA %.1f GFLOP/s, bf16 dot-product %.1f GFLOP/s (%.2fx)\n", best32, best16, best16 / best32);
    return 0;
}
