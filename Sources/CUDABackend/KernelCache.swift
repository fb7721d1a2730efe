import Crypto
import Foundation

/// NVRTC's machine code for the backend's kernels, kept on disk between runs: a later process on a device of the same
/// compute capability, with the same NVRTC and the same kernel source, loads the file instead of compiling (NVRTC takes
/// seconds; loading, milliseconds), as JAX's and PyTorch's compilation caches do.
///
/// One file per compiled program, `<program>-<architecture>-<fingerprint>.cubin`, the fingerprint (the first 16 hex
/// digits of a SHA-256) taken over the source, the architecture, the compile options and NVRTC's version, so that any
/// change to them names another file. The caller loads a file into the driver and compiles again when the driver
/// refuses it (a damaged file); a save that fails is reported, never fatal. Saves are atomic (a temporary file renamed
/// over the old one).
struct KernelCache {
    /// The directory of the files (`CUDAOptions.kernelCache`); nil: compile in every process.
    let directory: URL?

    /// The file of `program` compiled for `architecture` from `inputs` (the source, the options, the compiler's
    /// version: everything the machine code depends on).
    func url(program: String, architecture: String, inputs: [String]) -> URL? {
        guard let directory else { return nil }
        return directory.appendingPathComponent("\(program)-\(architecture)-\(Self.fingerprint(inputs + [architecture])).cubin")
    }

    /// The first 16 hex digits of the SHA-256 of `parts`' UTF-8 bytes, each part followed by a zero byte (so that
    /// moving text from one part to the next changes the result).
    static func fingerprint(_ parts: [String]) -> String {
        var hasher = SHA256()
        for part in parts { hasher.update(data: Array(part.utf8) + [0]) }
        return hasher.finalize().prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    /// The cached machine code, or nil when there is no file (or no cache, or the file cannot be read).
    func load(program: String, architecture: String, inputs: [String]) -> [CChar]? {
        guard let url = url(program: program, architecture: architecture, inputs: inputs),
              let data = try? Data(contentsOf: url), !data.isEmpty
        else { return nil }
        return data.map { CChar(bitPattern: $0) }
    }

    /// Saves `binary` as the machine code of `program` (nothing without a cache directory).
    /// - Throws: the file system's error when the directory or the file cannot be written.
    func store(_ binary: [CChar], program: String, architecture: String, inputs: [String]) throws {
        guard let url = url(program: program, architecture: architecture, inputs: inputs) else { return }
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(binary.map { UInt8(bitPattern: $0) }).write(to: url, options: .atomic)
    }
}
