import Foundation

/// An error from the CUDA driver, NVRTC or cuBLAS, or from finding them: what was called and what the library
/// said, or every path that was tried.
public struct CUDAError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Opens a shared library from a list of names and paths, remembering why each attempt failed.
struct LibraryLoader {
    /// Directories to try, in order, after the dynamic loader's own search: CUDA_HOME, CUDA_PATH, the usual install
    /// folders, and where the driver's container runtime mounts it.
    static func directories(environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        var dirs = [String]()
        for key in ["CUDA_HOME", "CUDA_PATH"] {
            if let root = environment[key], !root.isEmpty {
                dirs += ["\(root)/lib64", "\(root)/targets/x86_64-linux/lib", "\(root)/lib"]
            }
        }
        dirs += ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/local/nvidia/lib64",
                 "/usr/lib/x86_64-linux-gnu", "/usr/lib64"]
        dirs += pipWheelDirectories(environment: environment)
        return dirs
    }

    /// The `nvidia/<package>/lib` folders of pip wheels (nvidia-cublas-cu12, nvidia-cuda-nvrtc, …), in the active
    /// virtual environment and the system's and the user's Python site-packages.
    static func pipWheelDirectories(environment: [String: String]) -> [String] {
        let fm = FileManager.default
        var sitePackages = [String]()
        var roots = ["/usr/local/lib", "/usr/lib"]
        if let venv = environment["VIRTUAL_ENV"], !venv.isEmpty { roots.insert("\(venv)/lib", at: 0) }
        if let conda = environment["CONDA_PREFIX"], !conda.isEmpty { roots.insert("\(conda)/lib", at: 0) }
        if let home = environment["HOME"], !home.isEmpty { roots.append("\(home)/.local/lib") }
        for root in roots {
            for python in ((try? fm.contentsOfDirectory(atPath: root)) ?? []).sorted() where python.hasPrefix("python3") {
                for folder in ["site-packages", "dist-packages"] { sitePackages.append("\(root)/\(python)/\(folder)/nvidia") }
            }
        }
        var found = [String]()
        for nvidia in sitePackages {
            for package in ((try? fm.contentsOfDirectory(atPath: nvidia)) ?? []).sorted() {
                let lib = "\(nvidia)/\(package)/lib"
                if fm.fileExists(atPath: lib) { found.append(lib) }
            }
        }
        return found
    }

    /// Opens the first of `names` that loads: each bare name through the loader's search, then in `directories`.
    static func open(_ what: String, names: [String]) throws -> (handle: UnsafeMutableRawPointer, path: String) {
        var tried = [String]()
        for name in names {
            for candidate in [name] + directories().map({ "\($0)/\(name)" }) {
                if candidate.hasPrefix("/") && !FileManager.default.fileExists(atPath: candidate) { continue }
                if let handle = dlopen(candidate, RTLD_NOW | RTLD_GLOBAL) { return (handle, candidate) }
                tried.append("\(candidate): \(dlerror().map { String(cString: $0) } ?? "cannot be opened")")
            }
        }
        throw CUDAError("\(what) could not be loaded; tried:\n  " + tried.joined(separator: "\n  ")
            + "\n  and found none of them in: " + directories().joined(separator: ", ") + " (CUDA_HOME or CUDA_PATH add a folder)")
    }

    static func symbol<T>(_ handle: UnsafeMutableRawPointer, _ name: String, in library: String, as type: T.Type) throws -> T {
        guard let p = dlsym(handle, name) else { throw CUDAError("\(library) has no \(name) (too old a version?)") }
        return unsafeBitCast(p, to: type)
    }
}

typealias CUresult = Int32

/// The CUDA driver API (libcuda.so.1), the functions this backend uses, as typed function pointers.
struct CUDADriver {
    let path: String
    let cuInit: @convention(c) (UInt32) -> CUresult
    let cuDriverGetVersion: @convention(c) (UnsafeMutablePointer<Int32>) -> CUresult
    let cuDeviceGet: @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> CUresult
    let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>) -> CUresult
    let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> CUresult
    let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, Int32) -> CUresult
    let cuDevicePrimaryCtxRetain: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32) -> CUresult
    let cuCtxSetCurrent: @convention(c) (OpaquePointer?) -> CUresult
    let cuStreamCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UInt32) -> CUresult
    let cuStreamSynchronize: @convention(c) (OpaquePointer?) -> CUresult
    let cuMemAlloc: @convention(c) (UnsafeMutablePointer<UInt64>, Int) -> CUresult
    let cuMemFree: @convention(c) (UInt64) -> CUresult
    let cuMemcpyHtoD: @convention(c) (UInt64, UnsafeRawPointer, Int) -> CUresult
    let cuMemcpyDtoH: @convention(c) (UnsafeMutableRawPointer, UInt64, Int) -> CUresult
    let cuMemsetD8: @convention(c) (UInt64, UInt8, Int) -> CUresult
    let cuMemAllocHost: @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>, Int) -> CUresult
    let cuMemFreeHost: @convention(c) (UnsafeMutableRawPointer?) -> CUresult
    let cuMemcpyHtoDAsync: @convention(c) (UInt64, UnsafeRawPointer, Int, OpaquePointer?) -> CUresult
    let cuEventCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UInt32) -> CUresult
    let cuEventRecord: @convention(c) (OpaquePointer?, OpaquePointer?) -> CUresult
    /// event, stream, flags: with `CU_EVENT_RECORD_EXTERNAL` (1) a capture records an event node that timing can
    /// read, where a plain record inside a capture only orders the streams.
    let cuEventRecordWithFlags: @convention(c) (OpaquePointer?, OpaquePointer?, UInt32) -> CUresult
    let cuEventSynchronize: @convention(c) (OpaquePointer?) -> CUresult
    let cuStreamBeginCapture: @convention(c) (OpaquePointer?, Int32) -> CUresult
    let cuStreamEndCapture: @convention(c) (OpaquePointer?, UnsafeMutablePointer<OpaquePointer?>) -> CUresult
    let cuGraphInstantiate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, OpaquePointer?, UInt64) -> CUresult
    let cuGraphLaunch: @convention(c) (OpaquePointer?, OpaquePointer?) -> CUresult
    let cuGraphDestroy: @convention(c) (OpaquePointer?) -> CUresult
    let cuModuleLoadData: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UnsafeRawPointer) -> CUresult
    let cuModuleGetFunction: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, OpaquePointer?, UnsafePointer<CChar>) -> CUresult
    /// function, attribute, value: here `CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES` (8), the opt-in to more than
    /// 48 KB of dynamic shared memory a block.
    let cuFuncSetAttribute: @convention(c) (OpaquePointer?, Int32, Int32) -> CUresult
    let cuLaunchKernel: @convention(c) (OpaquePointer?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, OpaquePointer?,
                                         UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> CUresult
    /// `cuLaunchKernelEx` (driver 11.8 and later; nil before): a launch with attributes, here programmatic stream
    /// serialisation (see `CUDABackend.launchesDependents`). Its first argument is a `CUlaunchConfig`.
    let cuLaunchKernelEx: (@convention(c) (UnsafeRawPointer, OpaquePointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                                            UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> CUresult)?
    let cuStreamWaitEvent: @convention(c) (OpaquePointer?, OpaquePointer?, UInt32) -> CUresult
    let cuEventElapsedTime: @convention(c) (UnsafeMutablePointer<Float>, OpaquePointer?, OpaquePointer?) -> CUresult
    let cuEventDestroy: @convention(c) (OpaquePointer?) -> CUresult
    let cuGraphExecDestroy: @convention(c) (OpaquePointer?) -> CUresult
    /// A recorded graph's kernel nodes, to change one's arguments in the executable graph between launches (see
    /// `CUDABackend.inlineIndexLimit`); nil where the driver lacks one of them. `cuGraphGetNodes` (graph, nodes or
    /// nil, count in/out), `cuGraphNodeGetType` (node, type: 0 is a kernel), and the `_v2` parameter calls, whose
    /// `CUDA_KERNEL_NODE_PARAMS_v2` is 72 bytes (see `RecordedKernelNode`).
    let graphNodes: GraphNodeCalls?
    struct GraphNodeCalls {
        let cuGraphGetNodes: @convention(c) (OpaquePointer?, UnsafeMutablePointer<OpaquePointer?>?, UnsafeMutablePointer<Int>) -> CUresult
        let cuGraphNodeGetType: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>) -> CUresult
        let cuGraphKernelNodeGetParams: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer) -> CUresult
        let cuGraphExecKernelNodeSetParams: @convention(c) (OpaquePointer?, OpaquePointer?, UnsafeRawPointer) -> CUresult
    }
    let cuGetErrorName: @convention(c) (CUresult, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> CUresult
    let cuGetErrorString: @convention(c) (CUresult, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> CUresult

    static func load() throws -> CUDADriver {
        let (h, path) = try LibraryLoader.open("the CUDA driver (libcuda.so.1; is the NVIDIA driver installed?)", names: ["libcuda.so.1", "libcuda.so"])
        func f<T>(_ name: String, _ t: T.Type) throws -> T { try LibraryLoader.symbol(h, name, in: path, as: t) }
        return try CUDADriver(
            path: path, cuInit: f("cuInit", (@convention(c) (UInt32) -> CUresult).self),
            cuDriverGetVersion: f("cuDriverGetVersion", (@convention(c) (UnsafeMutablePointer<Int32>) -> CUresult).self),
            cuDeviceGet: f("cuDeviceGet", (@convention(c) (UnsafeMutablePointer<Int32>, Int32) -> CUresult).self),
            cuDeviceGetCount: f("cuDeviceGetCount", (@convention(c) (UnsafeMutablePointer<Int32>) -> CUresult).self),
            cuDeviceGetName: f("cuDeviceGetName", (@convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> CUresult).self),
            cuDeviceGetAttribute: f("cuDeviceGetAttribute", (@convention(c) (UnsafeMutablePointer<Int32>, Int32, Int32) -> CUresult).self),
            cuDevicePrimaryCtxRetain: f("cuDevicePrimaryCtxRetain", (@convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32) -> CUresult).self),
            cuCtxSetCurrent: f("cuCtxSetCurrent", (@convention(c) (OpaquePointer?) -> CUresult).self),
            cuStreamCreate: f("cuStreamCreate", (@convention(c) (UnsafeMutablePointer<OpaquePointer?>, UInt32) -> CUresult).self),
            cuStreamSynchronize: f("cuStreamSynchronize", (@convention(c) (OpaquePointer?) -> CUresult).self),
            cuMemAlloc: f("cuMemAlloc_v2", (@convention(c) (UnsafeMutablePointer<UInt64>, Int) -> CUresult).self),
            cuMemFree: f("cuMemFree_v2", (@convention(c) (UInt64) -> CUresult).self),
            cuMemcpyHtoD: f("cuMemcpyHtoD_v2", (@convention(c) (UInt64, UnsafeRawPointer, Int) -> CUresult).self),
            cuMemcpyDtoH: f("cuMemcpyDtoH_v2", (@convention(c) (UnsafeMutableRawPointer, UInt64, Int) -> CUresult).self),
            cuMemsetD8: f("cuMemsetD8_v2", (@convention(c) (UInt64, UInt8, Int) -> CUresult).self),
            cuMemAllocHost: f("cuMemAllocHost_v2", (@convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>, Int) -> CUresult).self),
            cuMemFreeHost: f("cuMemFreeHost", (@convention(c) (UnsafeMutableRawPointer?) -> CUresult).self),
            cuMemcpyHtoDAsync: f("cuMemcpyHtoDAsync_v2", (@convention(c) (UInt64, UnsafeRawPointer, Int, OpaquePointer?) -> CUresult).self),
            cuEventCreate: f("cuEventCreate", (@convention(c) (UnsafeMutablePointer<OpaquePointer?>, UInt32) -> CUresult).self),
            cuEventRecord: f("cuEventRecord", (@convention(c) (OpaquePointer?, OpaquePointer?) -> CUresult).self),
            cuEventRecordWithFlags: f("cuEventRecordWithFlags", (@convention(c) (OpaquePointer?, OpaquePointer?, UInt32) -> CUresult).self),
            cuEventSynchronize: f("cuEventSynchronize", (@convention(c) (OpaquePointer?) -> CUresult).self),
            cuStreamBeginCapture: f("cuStreamBeginCapture_v2", (@convention(c) (OpaquePointer?, Int32) -> CUresult).self),
            cuStreamEndCapture: f("cuStreamEndCapture", (@convention(c) (OpaquePointer?, UnsafeMutablePointer<OpaquePointer?>) -> CUresult).self),
            cuGraphInstantiate: f("cuGraphInstantiateWithFlags", (@convention(c) (UnsafeMutablePointer<OpaquePointer?>, OpaquePointer?, UInt64) -> CUresult).self),
            cuGraphLaunch: f("cuGraphLaunch", (@convention(c) (OpaquePointer?, OpaquePointer?) -> CUresult).self),
            cuGraphDestroy: f("cuGraphDestroy", (@convention(c) (OpaquePointer?) -> CUresult).self),
            cuModuleLoadData: f("cuModuleLoadData", (@convention(c) (UnsafeMutablePointer<OpaquePointer?>, UnsafeRawPointer) -> CUresult).self),
            cuModuleGetFunction: f("cuModuleGetFunction", (@convention(c) (UnsafeMutablePointer<OpaquePointer?>, OpaquePointer?, UnsafePointer<CChar>) -> CUresult).self),
            cuFuncSetAttribute: f("cuFuncSetAttribute", (@convention(c) (OpaquePointer?, Int32, Int32) -> CUresult).self),
            cuLaunchKernel: f("cuLaunchKernel", (@convention(c) (OpaquePointer?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, OpaquePointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> CUresult).self),
            cuLaunchKernelEx: dlsym(h, "cuLaunchKernelEx").map { unsafeBitCast($0, to: (@convention(c) (UnsafeRawPointer, OpaquePointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> CUresult).self) },
            cuStreamWaitEvent: f("cuStreamWaitEvent", (@convention(c) (OpaquePointer?, OpaquePointer?, UInt32) -> CUresult).self),
            cuEventElapsedTime: f("cuEventElapsedTime", (@convention(c) (UnsafeMutablePointer<Float>, OpaquePointer?, OpaquePointer?) -> CUresult).self),
            cuEventDestroy: f("cuEventDestroy_v2", (@convention(c) (OpaquePointer?) -> CUresult).self),
            cuGraphExecDestroy: f("cuGraphExecDestroy", (@convention(c) (OpaquePointer?) -> CUresult).self),
            graphNodes: {
                guard let getNodes = dlsym(h, "cuGraphGetNodes"), let getType = dlsym(h, "cuGraphNodeGetType"),
                      let getParams = dlsym(h, "cuGraphKernelNodeGetParams_v2"),
                      let setParams = dlsym(h, "cuGraphExecKernelNodeSetParams_v2") else { return nil }
                return GraphNodeCalls(
                    cuGraphGetNodes: unsafeBitCast(getNodes, to: (@convention(c) (OpaquePointer?, UnsafeMutablePointer<OpaquePointer?>?, UnsafeMutablePointer<Int>) -> CUresult).self),
                    cuGraphNodeGetType: unsafeBitCast(getType, to: (@convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>) -> CUresult).self),
                    cuGraphKernelNodeGetParams: unsafeBitCast(getParams, to: (@convention(c) (OpaquePointer?, UnsafeMutableRawPointer) -> CUresult).self),
                    cuGraphExecKernelNodeSetParams: unsafeBitCast(setParams, to: (@convention(c) (OpaquePointer?, OpaquePointer?, UnsafeRawPointer) -> CUresult).self))
            }(),
            cuGetErrorName: f("cuGetErrorName", (@convention(c) (CUresult, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> CUresult).self),
            cuGetErrorString: f("cuGetErrorString", (@convention(c) (CUresult, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> CUresult).self))
    }

    /// Turns a status into an error naming the call and what the driver says of the status.
    func check(_ status: CUresult, _ call: @autoclosure () -> String) throws {
        guard status != 0 else { return }
        var name: UnsafePointer<CChar>?, text: UnsafePointer<CChar>?
        _ = cuGetErrorName(status, &name)
        _ = cuGetErrorString(status, &text)
        var message = "\(call()) failed: \(name.map { String(cString: $0) } ?? "CUresult \(status)"): \(text.map { String(cString: $0) } ?? "unknown error")"
        if status == 34 {  // CUDA_ERROR_STUB_LIBRARY
            message += " (\(path) is the CUDA toolkit's stub, not the driver: install the NVIDIA driver or put its libcuda.so.1 first on the library path)"
        }
        throw CUDAError(message)
    }
}

/// NVRTC (libnvrtc.so.13 or .12): compiles the CUDA C kernels to machine code for this device at start-up.
struct NVRTC {
    let path: String
    let create: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UnsafePointer<CChar>, UnsafePointer<CChar>?, Int32, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32
    let compile: @convention(c) (OpaquePointer?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32
    let logSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> Int32
    let log: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> Int32
    let cubinSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> Int32
    let cubin: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> Int32
    let destroy: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Int32
    let errorString: @convention(c) (Int32) -> UnsafePointer<CChar>?
    let version: @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Int32

    static func load() throws -> NVRTC {
        let (h, path) = try LibraryLoader.open("NVRTC (the CUDA run-time compiler)", names: ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"])
        func f<T>(_ name: String, _ t: T.Type) throws -> T { try LibraryLoader.symbol(h, name, in: path, as: t) }
        return try NVRTC(
            path: path,
            create: f("nvrtcCreateProgram", (@convention(c) (UnsafeMutablePointer<OpaquePointer?>, UnsafePointer<CChar>, UnsafePointer<CChar>?, Int32, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32).self),
            compile: f("nvrtcCompileProgram", (@convention(c) (OpaquePointer?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32).self),
            logSize: f("nvrtcGetProgramLogSize", (@convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> Int32).self),
            log: f("nvrtcGetProgramLog", (@convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> Int32).self),
            cubinSize: f("nvrtcGetCUBINSize", (@convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> Int32).self),
            cubin: f("nvrtcGetCUBIN", (@convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> Int32).self),
            destroy: f("nvrtcDestroyProgram", (@convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Int32).self),
            errorString: f("nvrtcGetErrorString", (@convention(c) (Int32) -> UnsafePointer<CChar>?).self),
            version: f("nvrtcVersion", (@convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Int32).self))
    }

    /// The options `compileToCUBIN` passes to NVRTC.
    static func options(architecture: String) -> [String] { ["--gpu-architecture=\(architecture)", "--std=c++17"] }

    /// NVRTC's version, as "major.minor".
    var versionString: String {
        var major: Int32 = 0, minor: Int32 = 0
        _ = version(&major, &minor)
        return "\(major).\(minor)"
    }

    /// Compiles `source` for `sm_XY` and returns the CUBIN; a failure carries NVRTC's log.
    func compileToCUBIN(_ source: String, name: String, architecture: String) throws -> [CChar] {
        var program: OpaquePointer?
        var status = create(&program, source, name, 0, nil, nil)
        guard status == 0 else { throw CUDAError("nvrtcCreateProgram failed: \(errorString(status).map { String(cString: $0) } ?? "\(status)")") }
        defer { _ = destroy(&program) }
        let options = Self.options(architecture: architecture)
        let cOptions = options.map { strdup($0) }
        defer { cOptions.forEach { free($0) } }
        status = cOptions.map { UnsafePointer<CChar>($0) }.withUnsafeBufferPointer { compile(program, Int32(options.count), $0.baseAddress) }
        var size = 0
        _ = logSize(program, &size)
        var logText = [CChar](repeating: 0, count: max(size, 1))
        _ = log(program, &logText)
        guard status == 0 else {
            throw CUDAError("NVRTC could not compile \(name) for \(architecture): \(errorString(status).map { String(cString: $0) } ?? "\(status)")\n\(String(decoding: logText.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
        }
        var binarySize = 0
        _ = cubinSize(program, &binarySize)
        var binary = [CChar](repeating: 0, count: binarySize)
        _ = cubin(program, &binary)
        return binary
    }
}

/// cuBLAS (libcublas.so.13 or .12): the matrix products.
struct CUBLAS {
    let path: String
    let create: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Int32
    let setStream: @convention(c) (OpaquePointer?, OpaquePointer?) -> Int32
    let setMathMode: @convention(c) (OpaquePointer?, Int32) -> Int32
    let sgemm: @convention(c) (OpaquePointer?, Int32, Int32, Int32, Int32, Int32, UnsafePointer<Float>, UnsafePointer<Float>?, Int32,
                                UnsafePointer<Float>?, Int32, UnsafePointer<Float>, UnsafeMutablePointer<Float>?, Int32) -> Int32
    let version: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>) -> Int32
    let setWorkspace: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, Int) -> Int32

    static func load() throws -> CUBLAS {
        let (h, path) = try LibraryLoader.open("cuBLAS", names: ["libcublas.so.13", "libcublas.so.12", "libcublas.so"])
        func f<T>(_ name: String, _ t: T.Type) throws -> T { try LibraryLoader.symbol(h, name, in: path, as: t) }
        return try CUBLAS(
            path: path,
            create: f("cublasCreate_v2", (@convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Int32).self),
            setStream: f("cublasSetStream_v2", (@convention(c) (OpaquePointer?, OpaquePointer?) -> Int32).self),
            setMathMode: f("cublasSetMathMode", (@convention(c) (OpaquePointer?, Int32) -> Int32).self),
            sgemm: f("cublasSgemm_v2", (@convention(c) (OpaquePointer?, Int32, Int32, Int32, Int32, Int32, UnsafePointer<Float>, UnsafePointer<Float>?, Int32, UnsafePointer<Float>?, Int32, UnsafePointer<Float>, UnsafeMutablePointer<Float>?, Int32) -> Int32).self),
            version: f("cublasGetVersion_v2", (@convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>) -> Int32).self),
            setWorkspace: f("cublasSetWorkspace_v2", (@convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, Int) -> Int32).self))
    }
}

/// cuBLASLt (libcublasLt.so.13 or .12): the products with epilogues (bias, ReLU) and a choice among the library's
/// candidate algorithms for each shape.
struct CUBLASLt {
    typealias Status = Int32
    let path: String
    let create: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Status
    let getVersion: @convention(c) () -> Int
    let statusString: @convention(c) (Status) -> UnsafePointer<CChar>?
    let descCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32, Int32) -> Status
    let descDestroy: @convention(c) (OpaquePointer?) -> Status
    let descSetAttribute: @convention(c) (OpaquePointer?, Int32, UnsafeRawPointer, Int) -> Status
    let layoutCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32, UInt64, UInt64, Int64) -> Status
    let layoutDestroy: @convention(c) (OpaquePointer?) -> Status
    let preferenceCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Status
    let preferenceDestroy: @convention(c) (OpaquePointer?) -> Status
    let preferenceSetAttribute: @convention(c) (OpaquePointer?, Int32, UnsafeRawPointer, Int) -> Status
    /// handle, operation, A, B, C, D layouts, preference, requested count, results (`HeuristicResult` array), count.
    let heuristic: @convention(c) (OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?,
                                   OpaquePointer?, Int32, UnsafeMutableRawPointer, UnsafeMutablePointer<Int32>) -> Status
    /// handle, operation, alpha, A, Adesc, B, Bdesc, beta, C, Cdesc, D, Ddesc, algorithm, workspace, bytes, stream.
    let matmul: @convention(c) (OpaquePointer?, OpaquePointer?, UnsafeRawPointer, UnsafeRawPointer?, OpaquePointer?,
                                UnsafeRawPointer?, OpaquePointer?, UnsafeRawPointer, UnsafeRawPointer?, OpaquePointer?,
                                UnsafeMutableRawPointer?, OpaquePointer?, UnsafeRawPointer?, UnsafeMutableRawPointer?, Int,
                                OpaquePointer?) -> Status
    /// algorithm (64 bytes), attribute, value, size (`cublasLtMatmulAlgoConfigSetAttribute`).
    let algoConfigSet: @convention(c) (UnsafeMutableRawPointer, Int32, UnsafeRawPointer, Int) -> Status
    /// algorithm, attribute, value, size, size written (`cublasLtMatmulAlgoConfigGetAttribute`).
    let algoConfigGet: @convention(c) (UnsafeRawPointer, Int32, UnsafeMutableRawPointer, Int, UnsafeMutablePointer<Int>?) -> Status
    /// handle, operation, A, B, C, D layouts, algorithm, result (`HeuristicResult`: its workspace size)
    /// (`cublasLtMatmulAlgoCheck`): whether a configured algorithm can run this product.
    let algoCheck: @convention(c) (OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?,
                                   UnsafeRawPointer, UnsafeMutableRawPointer) -> Status

    // Values from cublasLt.h and library_types.h.
    static let computeFP32: Int32 = 68          // CUBLAS_COMPUTE_32F
    static let computeFastTF32: Int32 = 77      // CUBLAS_COMPUTE_32F_FAST_TF32
    static let realFloat: Int32 = 0             // CUDA_R_32F
    enum DescAttribute: Int32 {
        case transA = 3, transB = 4, epilogue = 7, biasPointer = 8
    }
    /// `cublasLtMatmulAlgoConfigAttributes_t`: the number of parts `k` is split into, and how they are added
    /// (`cublasLtReductionScheme_t`: 1 in place in the output, 2 in the workspace in the compute type).
    enum AlgoConfigAttribute: Int32 {
        case splitK = 2, reductionScheme = 3
    }
    enum PreferenceAttribute: Int32 {
        case maxWorkspaceBytes = 1, minAlignmentA = 5, minAlignmentB = 6, minAlignmentC = 7, minAlignmentD = 8
    }
    /// `cublasLtEpilogue_t`. (The backward epilogues, `DRELU_BGRAD` with the forward's ReLU bit mask, were measured
    /// on an H100 with cuBLASLt 13.1: slower than the plain product followed by this backend's activation-backward
    /// kernel at every shape of the workloads, 7.6 µs against 2.7 + ~2.5 µs at 128×256×10, so they are not used.)
    enum Epilogue: UInt32 {
        case none = 1, bias = 4, reluBias = 6
    }
    /// `cublasLtMatmulHeuristicResult_t`: the algorithm (64 bytes), workspace size, state, waves, 4 reserved ints.
    static let heuristicResultBytes = 96
    static let algorithmBytes = 64

    static func load() throws -> CUBLASLt {
        let (h, path) = try LibraryLoader.open("cuBLASLt", names: ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"])
        func f<T>(_ name: String, _ t: T.Type) throws -> T { try LibraryLoader.symbol(h, name, in: path, as: t) }
        return try CUBLASLt(
            path: path,
            create: f("cublasLtCreate", (@convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Status).self),
            getVersion: f("cublasLtGetVersion", (@convention(c) () -> Int).self),
            statusString: f("cublasLtGetStatusString", (@convention(c) (Status) -> UnsafePointer<CChar>?).self),
            descCreate: f("cublasLtMatmulDescCreate", (@convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32, Int32) -> Status).self),
            descDestroy: f("cublasLtMatmulDescDestroy", (@convention(c) (OpaquePointer?) -> Status).self),
            descSetAttribute: f("cublasLtMatmulDescSetAttribute", (@convention(c) (OpaquePointer?, Int32, UnsafeRawPointer, Int) -> Status).self),
            layoutCreate: f("cublasLtMatrixLayoutCreate", (@convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32, UInt64, UInt64, Int64) -> Status).self),
            layoutDestroy: f("cublasLtMatrixLayoutDestroy", (@convention(c) (OpaquePointer?) -> Status).self),
            preferenceCreate: f("cublasLtMatmulPreferenceCreate", (@convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Status).self),
            preferenceDestroy: f("cublasLtMatmulPreferenceDestroy", (@convention(c) (OpaquePointer?) -> Status).self),
            preferenceSetAttribute: f("cublasLtMatmulPreferenceSetAttribute", (@convention(c) (OpaquePointer?, Int32, UnsafeRawPointer, Int) -> Status).self),
            heuristic: f("cublasLtMatmulAlgoGetHeuristic", (@convention(c) (OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, Int32, UnsafeMutableRawPointer, UnsafeMutablePointer<Int32>) -> Status).self),
            matmul: f("cublasLtMatmul", (@convention(c) (OpaquePointer?, OpaquePointer?, UnsafeRawPointer, UnsafeRawPointer?, OpaquePointer?, UnsafeRawPointer?, OpaquePointer?, UnsafeRawPointer, UnsafeRawPointer?, OpaquePointer?, UnsafeMutableRawPointer?, OpaquePointer?, UnsafeRawPointer?, UnsafeMutableRawPointer?, Int, OpaquePointer?) -> Status).self),
            algoConfigSet: f("cublasLtMatmulAlgoConfigSetAttribute", (@convention(c) (UnsafeMutableRawPointer, Int32, UnsafeRawPointer, Int) -> Status).self),
            algoConfigGet: f("cublasLtMatmulAlgoConfigGetAttribute", (@convention(c) (UnsafeRawPointer, Int32, UnsafeMutableRawPointer, Int, UnsafeMutablePointer<Int>?) -> Status).self),
            algoCheck: f("cublasLtMatmulAlgoCheck", (@convention(c) (OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, UnsafeRawPointer, UnsafeMutableRawPointer) -> Status).self))
    }

    /// Turns a status into an error naming the call and cuBLASLt's own description of the status.
    func check(_ status: Status, _ call: @autoclosure () -> String) throws {
        guard status != 0 else { return }
        throw CUDAError("\(call()) failed: \(statusString(status).map { String(cString: $0) } ?? "cublasStatus_t \(status)")")
    }

    func setAttribute<T>(_ desc: OpaquePointer?, _ attribute: DescAttribute, _ value: T) throws {
        var v = value
        try check(withUnsafeBytes(of: &v) { descSetAttribute(desc, attribute.rawValue, $0.baseAddress!, $0.count) },
                  "cublasLtMatmulDescSetAttribute(\(attribute))")
    }

    /// An algorithm's split of `k` (1: none; -1: not a setting of this algorithm; 0 when it cannot be read).
    func splits(of algorithm: [UInt8]) -> Int {
        var value: UInt32 = 0
        let status = algorithm.withUnsafeBytes { a in
            withUnsafeMutableBytes(of: &value) { algoConfigGet(a.baseAddress!, AlgoConfigAttribute.splitK.rawValue, $0.baseAddress!, $0.count, nil) }
        }
        // cuBLASLt reports -1 for some algorithms (a split that is not one of its settings): kept as -1, which the
        // reports show as no split and which gets no split variants (`MatmulPlanner.splitVariants`).
        return status == 0 ? Int(Int32(bitPattern: value)) : 0
    }

    /// A copy of `algorithm` with `attribute` set to `value`, or nil when cuBLASLt refuses it.
    func configured(_ algorithm: [UInt8], _ attribute: AlgoConfigAttribute, _ value: UInt32) -> [UInt8]? {
        var copy = algorithm, v = value
        let status = copy.withUnsafeMutableBytes { a in
            withUnsafeBytes(of: &v) { algoConfigSet(a.baseAddress!, attribute.rawValue, $0.baseAddress!, $0.count) }
        }
        return status == 0 ? copy : nil
    }

    func setPreference<T>(_ preference: OpaquePointer?, _ attribute: PreferenceAttribute, _ value: T) throws {
        var v = value
        try check(withUnsafeBytes(of: &v) { preferenceSetAttribute(preference, attribute.rawValue, $0.baseAddress!, $0.count) },
                  "cublasLtMatmulPreferenceSetAttribute(\(attribute))")
    }
}
