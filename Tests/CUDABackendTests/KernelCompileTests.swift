@testable import CUDABackend
import Foundation
import Testing

/// The CUDA C kept in the Swift sources compiles with NVRTC for the architectures the backend supports, where NVRTC
/// is found (no GPU or driver needed: CI installs NVRTC's pip wheel and points `CUDA_HOME` at it). A kernel that
/// does not compile is otherwise only found on a GPU machine, whose time is scarce.
@Suite struct KernelCompileTests {
    static let nvrtc: Result<NVRTC, Error> = Result { try NVRTC.load() }
    static var available: Bool { (try? nvrtc.get()) != nil }
    static var reason: String {
        if case .failure(let error) = nvrtc { return "NVRTC not found here (pip install nvidia-cuda-nvrtc-cu12 and set CUDA_HOME to its nvidia/cuda_nvrtc folder): \(error)" }
        return ""
    }

    @Test(.enabled(if: available, Comment(rawValue: reason)), arguments: ["sm_70", "sm_80", "sm_90"])
    func theBackendsKernelsCompile(architecture: String) throws {
        let cubin = try Self.nvrtc.get().compileToCUBIN(Kernels.source, name: "mlp_kernels.cu", architecture: architecture)
        #expect(cubin.count > 10_000)
    }
}
