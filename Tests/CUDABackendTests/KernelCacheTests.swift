@testable import CUDABackend
import Foundation
import Testing

/// The file of compiled kernels: what one process saves, the next with the same inputs finds; any change to the
/// source, the options, the compiler or the architecture names another file. (No GPU needed: the machine code is
/// opaque bytes here.)
@Suite struct KernelCacheTests {
    static func temporaryDirectory() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("mlp-kernels-\(UUID().uuidString)").appendingPathComponent("sub")
    }

    @Test func savedMachineCodeIsFoundAgainForTheSameInputsOnly() throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory.deletingLastPathComponent()) }
        let inputs = ["__global__ void k() {}", "--gpu-architecture=sm_90 --std=c++17", "NVRTC 13.0"]
        let binary: [CChar] = (0..<1037).map { CChar(bitPattern: UInt8(($0 * 131 + 7) % 256)) }
        let writer = KernelCache(directory: directory)
        #expect(writer.load(program: "mlp_kernels", architecture: "sm_90", inputs: inputs) == nil)
        try writer.store(binary, program: "mlp_kernels", architecture: "sm_90", inputs: inputs)  // creates the directory

        let reader = KernelCache(directory: directory)
        #expect(reader.load(program: "mlp_kernels", architecture: "sm_90", inputs: inputs) == binary)
        #expect(reader.load(program: "mlp_kernels", architecture: "sm_80", inputs: inputs) == nil)
        #expect(reader.load(program: "other", architecture: "sm_90", inputs: inputs) == nil)
        for changed in [["__global__ void k() { }", inputs[1], inputs[2]], [inputs[0], "--gpu-architecture=sm_90", inputs[2]],
                        [inputs[0], inputs[1], "NVRTC 12.8"]] {
            #expect(reader.load(program: "mlp_kernels", architecture: "sm_90", inputs: changed) == nil)
        }
        // No directory: nothing is saved or found, and saving is not an error.
        let none = KernelCache(directory: nil)
        try none.store(binary, program: "mlp_kernels", architecture: "sm_90", inputs: inputs)
        #expect(none.load(program: "mlp_kernels", architecture: "sm_90", inputs: inputs) == nil)
    }

    @Test func theFingerprintIsStableAndSeparatesItsParts() {
        // The SHA-256 of no bytes, e3b0c442…, and of one zero byte (a part of no text), 6e340b9c….
        #expect(KernelCache.fingerprint([]) == "e3b0c44298fc1c14")
        #expect(KernelCache.fingerprint([""]) == "6e340b9cffb37a98")
        #expect(KernelCache.fingerprint(["a"]) == KernelCache.fingerprint(["a"]))
        #expect(KernelCache.fingerprint(["ab", "c"]) != KernelCache.fingerprint(["a", "bc"]))
        #expect(KernelCache.fingerprint(["ab"]) != KernelCache.fingerprint(["ba"]))
    }

    @Test func aFileThatCannotBeWrittenIsAnError() throws {
        // A file where the directory should be.
        let blocker = FileManager.default.temporaryDirectory.appendingPathComponent("mlp-kernels-blocker-\(UUID().uuidString)")
        try Data("x".utf8).write(to: blocker)
        defer { try? FileManager.default.removeItem(at: blocker) }
        let cache = KernelCache(directory: blocker.appendingPathComponent("kernels"))
        #expect(throws: (any Error).self) { try cache.store([1, 2, 3], program: "mlp_kernels", architecture: "sm_90", inputs: ["s"]) }
    }

    @Test func theDirectoryComesFromTheEnvironment() {
        #expect(CUDAOptions(environment: ["MLP_CUDA_KERNEL_CACHE": "/tmp/k", "HOME": "/home/u"]).kernelCache?.path == "/tmp/k")
        #expect(CUDAOptions(environment: ["MLP_CUDA_KERNEL_CACHE": "0", "HOME": "/home/u"]).kernelCache == nil)
        #expect(CUDAOptions(environment: ["XDG_CACHE_HOME": "/x", "HOME": "/home/u"]).kernelCache?.path == "/x/mlp/kernels")
        #expect(CUDAOptions(environment: ["HOME": "/home/u"]).kernelCache?.path == "/home/u/.cache/mlp/kernels")
        #expect(CUDAOptions(environment: [:]).kernelCache == nil)
    }
}
