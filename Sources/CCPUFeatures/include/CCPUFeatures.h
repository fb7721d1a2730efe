#ifndef MLP_CPU_FEATURES_H
#define MLP_CPU_FEATURES_H
// What the running CPU (and the operating system, for the wider registers' state) supports, from the compiler's
// own CPU-detection runtime.
static inline int mlp_cpu_has_avx512(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

static inline int mlp_cpu_has_avx2_fma(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

// Subnormal floats: the control bits that make x86 flush results to zero (FTZ) and read subnormal inputs as
// zero (DAZ). Arithmetic on subnormals costs about a hundred times as much, and training reaches them: Adam's
// second moments of small gradients, late in a run.
static inline unsigned mlp_enter_flush_to_zero(void) {
#if defined(__x86_64__)
    unsigned old = __builtin_ia32_stmxcsr();
    __builtin_ia32_ldmxcsr(old | 0x8040);
    return old;
#else
    return 0;
#endif
}

static inline void mlp_restore_floating_point_mode(unsigned mode) {
#if defined(__x86_64__)
    __builtin_ia32_ldmxcsr(mode);
#else
    (void)mode;
#endif
}
// A hint to bring the cache line at `p` into L1 ahead of its use (the sparse product's rows of B come in an order
// the hardware prefetchers cannot guess).
static inline void mlp_prefetch(const void *p) {
    __builtin_prefetch(p, 0, 3);
}

#endif
