import CCPUFeatures
import CPUKernels
#if arch(x86_64) && os(Linux)
import CPUKernelsAVX2
import CPUKernelsAVX512
#endif

/// The kernel sets this build has, and which of them the running CPU can use.
public enum CPUFeatures {
    /// The widest kernel set the CPU supports: AVX-512, else AVX2+FMA, else the baseline.
    public static var bestKernels: KernelSet {
        #if arch(x86_64) && os(Linux)
        if mlp_cpu_has_avx512() != 0 { return avx512Kernels }
        if mlp_cpu_has_avx2_fma() != 0 { return avx2Kernels }
        #endif
        return KernelSet.baseline
    }

    /// Every kernel set the running CPU can execute (for tests and benchmarks), widest first.
    public static var supportedKernels: [KernelSet] {
        var sets = [KernelSet]()
        #if arch(x86_64) && os(Linux)
        if mlp_cpu_has_avx512() != 0 { sets.append(avx512Kernels) }
        if mlp_cpu_has_avx2_fma() != 0 { sets.append(avx2Kernels) }
        #endif
        sets.append(KernelSet.baseline)
        return sets
    }

    /// A kernel set by name ("avx512", "avx2", "baseline"), if the CPU supports it.
    public static func kernels(named name: String) -> KernelSet? {
        supportedKernels.first { $0.name == name }
    }
}
