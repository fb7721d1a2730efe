import Foundation

/// A BLAS found at run time with `dlopen`: only `cblas_sgemm` is used, plus the library's thread-count setter
/// where it has one.
///
/// The package builds and runs with no BLAS installed (the cpu backend then uses its own GEMM); where one is
/// installed, `mlp` can use it (`--gemm blas`) and `mlp bench` compares the two.
public struct BLASLibrary: @unchecked Sendable {
    /// `cblas_sgemm(layout, transA, transB, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)`.
    public typealias SGEMM = @convention(c) (
        Int32, Int32, Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>?, Int32, UnsafePointer<Float>?, Int32,
        Float, UnsafeMutablePointer<Float>?, Int32) -> Void
    typealias SetThreads = @convention(c) (Int32) -> Void
    typealias GetConfig = @convention(c) () -> UnsafePointer<CChar>?

    /// What was opened (the name or path given to `dlopen`).
    public let name: String
    /// The library's own description where it gives one (OpenBLAS's `openblas_get_config`).
    public let configuration: String?
    public let sgemm: SGEMM
    let setThreads: SetThreads?

    static let rowMajor: Int32 = 101, noTranspose: Int32 = 111, transpose: Int32 = 112

    /// The libraries tried, in order, when `CPUOptions.blasLibrary` (`MLP_BLAS`) does not name one.
    public static let candidates: [String] = {
        #if os(macOS)
        return ["/System/Library/Frameworks/Accelerate.framework/Accelerate"]
        #else
        return ["libopenblas.so.0", "libopenblas.so", "libblis.so.4", "libblis.so", "libmkl_rt.so.2", "libmkl_rt.so",
                "libblas.so.3", "libcblas.so.3"]
        #endif
    }()

    /// Opens the BLAS `name` (a path or a library name), or, without one, the first of `candidates` that loads and has
    /// `cblas_sgemm`.
    /// - Throws: `CPUBackendError.blasNotFound` listing every library tried and why each failed.
    public static func load(_ name: String? = CPUOptions().blasLibrary) throws -> BLASLibrary {
        let names = name.map { [$0] } ?? candidates
        var failures = [String]()
        for name in names {
            guard let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL) else {
                failures.append("\(name): \(dlerror().map { String(cString: $0) } ?? "not found")")
                continue
            }
            guard let symbol = dlsym(handle, "cblas_sgemm") else {
                failures.append("\(name): loaded, but has no cblas_sgemm")
                dlclose(handle)
                continue
            }
            let setterNames = ["openblas_set_num_threads", "bli_thread_set_num_threads", "MKL_Set_Num_Threads"]
            let setter = setterNames.lazy.compactMap { (symbolName: String) in dlsym(handle, symbolName) }.first
            let config = dlsym(handle, "openblas_get_config").flatMap { unsafeBitCast($0, to: GetConfig.self)() }
            return BLASLibrary(
                name: name, configuration: config.map { String(cString: $0) },
                sgemm: unsafeBitCast(symbol, to: SGEMM.self), setThreads: setter.map { unsafeBitCast($0, to: SetThreads.self) })
        }
        throw CPUBackendError.blasNotFound(tried: failures)
    }

    /// Sets the library's own thread count (no-op for a library without a setter).
    public func setThreadCount(_ n: Int) { setThreads?(Int32(n)) }

    /// Runs a product through `cblas_sgemm` (row-major).
    public func gemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        sgemm(Self.rowMajor, transposeA ? Self.transpose : Self.noTranspose, transposeB ? Self.transpose : Self.noTranspose,
              Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

/// Why the cpu backend could not do what was asked.
public enum CPUBackendError: Error, CustomStringConvertible, Equatable, Sendable {
    case blasNotFound(tried: [String])
    /// `--precision bf16` where it cannot run, and why.
    case bf16Unsupported(String)

    public var description: String {
        switch self {
        case let .blasNotFound(tried):
            return "no BLAS with cblas_sgemm could be loaded (set MLP_BLAS to a library path, or install libopenblas0); tried:\n  " + tried.joined(separator: "\n  ")
        case let .bf16Unsupported(reason):
            return "--precision bf16 on the cpu backend: \(reason); use --precision fp32"
        }
    }
}
