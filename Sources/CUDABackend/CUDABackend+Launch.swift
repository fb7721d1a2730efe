import Foundation
import MLPCore

/// Kernel modules (compiled by NVRTC, or loaded from the kernel cache) and the launches of their kernels.
extension CUDABackend {
    /// `source` compiled by NVRTC for `architecture` and loaded, its machine code taken from `cache` when an earlier
    /// process saved it there (and saved there when compiled now).
    static func loadModule(_ d: CUDADriver, nvrtc: NVRTC, source: String, program: String, architecture: String,
                                   cache: KernelCache, log: (String) -> Void, warn: (String) -> Void) throws -> OpaquePointer? {
        let inputs = [source, NVRTC.options(architecture: architecture).joined(separator: " "), "NVRTC \(nvrtc.versionString)"]
        var module: OpaquePointer?
        let started = Date()
        if let cached = cache.load(program: program, architecture: architecture, inputs: inputs) {
            let status = cached.withUnsafeBytes { d.cuModuleLoadData(&module, $0.baseAddress!) }
            if status == 0 {
                log("\(program) for \(architecture) loaded from \(cache.url(program: program, architecture: architecture, inputs: inputs)!.path) in \(String(format: "%.3f", Date().timeIntervalSince(started))) s")
                return module
            }
            module = nil
            log("the cached \(program) was refused (CUresult \(status)): compiling it again")
        }
        let compileStarted = Date()
        let cubin = try nvrtc.compileToCUBIN(source, name: "\(program).cu", architecture: architecture)
        log("\(program) compiled for \(architecture) in \(String(format: "%.2f", Date().timeIntervalSince(compileStarted))) s (\(cubin.count) bytes)")
        try cubin.withUnsafeBytes { try d.check(d.cuModuleLoadData(&module, $0.baseAddress!), "cuModuleLoadData(\(program))") }
        do {
            try cache.store(cubin, program: program, architecture: architecture, inputs: inputs)
        } catch {
            warn("the compiled kernels could not be saved for later runs in \(cache.directory?.path ?? "?") (\(error.localizedDescription)); set MLP_CUDA_KERNEL_CACHE to a writable directory, or to 0")
        }
        return module
    }

    /// Queues `kernel`, or does nothing while a recorded step is replayed. The arguments are an autoclosure so that a
    /// replayed step does not even build their array on the host.
    func launch(_ kernel: String, grid: (UInt32, UInt32), block: UInt32, blockY: UInt32 = 1, sharedBytes: UInt32 = 0, dependent: Bool = false, _ makeArguments: @autoclosure () -> [any KernelArgument]) {
        if case .replaying = mode { return }  // recorded in the graph
        record { try enqueueKernel(kernel, grid: grid, block: block, blockY: blockY, sharedBytes: sharedBytes, dependent: dependent, on: stream, makeArguments()) }
    }

    /// Queues `kernel` on `target` now (recording or not). `dependent`: the kernel follows another kernel on `target`
    /// and waits for it with `wait_for_previous_kernel()`, so it may be launched before that one ends (see
    /// `launchesDependents`).
    func enqueueKernel(_ kernel: String, grid: (UInt32, UInt32), block: UInt32, blockY: UInt32 = 1, sharedBytes: UInt32 = 0, dependent: Bool = false, on target: OpaquePointer?, _ arguments: [any KernelArgument]) throws {
        try withParameters(arguments) { p in
            guard dependent && launchesDependents, let launchEx = driver.cuLaunchKernelEx else {
                return try driver.check(driver.cuLaunchKernel(functions[kernel]!, grid.0, grid.1, 1, block, blockY, 1, sharedBytes, target, p, nil), "cuLaunchKernel(\(kernel))")
            }
            // A CUlaunchAttribute (a 4-byte id, 4 bytes of padding, a 64-byte value) asking for programmatic
            // stream serialisation (id 6, value 1), then the
            // CUlaunchConfig that points at it (7 UInt32s, the stream at byte 32, the attributes at 40, their
            // count at 48).
            try withUnsafeTemporaryAllocation(byteCount: 72 + 56, alignment: 8) { raw in
                raw.initializeMemory(as: UInt8.self, repeating: 0)
                let attribute = raw.baseAddress!, config = raw.baseAddress! + 72
                attribute.storeBytes(of: UInt32(6), as: UInt32.self)
                attribute.storeBytes(of: Int32(1), toByteOffset: 8, as: Int32.self)
                for (i, value) in [grid.0, grid.1, 1, block, blockY, 1, sharedBytes].enumerated() {
                    config.storeBytes(of: value, toByteOffset: 4 * i, as: UInt32.self)
                }
                config.storeBytes(of: target, toByteOffset: 32, as: OpaquePointer?.self)
                config.storeBytes(of: attribute, toByteOffset: 40, as: UnsafeMutableRawPointer.self)
                config.storeBytes(of: UInt32(1), toByteOffset: 48, as: UInt32.self)
                try driver.check(launchEx(UnsafeRawPointer(config), functions[kernel]!, p, nil), "cuLaunchKernelEx(\(kernel), programmatic stream serialisation)")
            }
        }
    }

    /// Runs `body` with the parameter array of a launch of `arguments`: each written into its own slot (8-byte
    /// aligned), the array holding the slots' addresses.
    func withParameters<T>(_ arguments: [any KernelArgument], _ body: (UnsafeMutablePointer<UnsafeMutableRawPointer?>) throws -> T) throws -> T {
        let block = ArgumentBlock(arguments)
        return try withExtendedLifetime(block) { try body(block.pointers) }
    }

    /// Blocks of `threads` for `count` elements: at least 1, at most a grid dimension's 65,535.
    func blocks(_ count: Int, _ threads: Int = 256) -> UInt32 { UInt32(max(1, min((count + threads - 1) / threads, 65_535))) }
}
