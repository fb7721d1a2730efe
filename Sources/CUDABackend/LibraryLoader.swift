import Foundation

/// An error from the CUDA driver, NVRTC or cuBLAS, or from finding them: what was called and what the library said, or
/// every path that was tried.
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
