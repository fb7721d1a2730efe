import Foundation

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
        func f<T>(_ name: String) throws -> T { try LibraryLoader.symbol(h, name, in: path, as: T.self) }
        return try NVRTC(
            path: path,
            create: f("nvrtcCreateProgram"),
            compile: f("nvrtcCompileProgram"),
            logSize: f("nvrtcGetProgramLogSize"),
            log: f("nvrtcGetProgramLog"),
            cubinSize: f("nvrtcGetCUBINSize"),
            cubin: f("nvrtcGetCUBIN"),
            destroy: f("nvrtcDestroyProgram"),
            errorString: f("nvrtcGetErrorString"),
            version: f("nvrtcVersion"))
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
