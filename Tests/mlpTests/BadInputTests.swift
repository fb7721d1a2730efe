import Foundation
import MLPCore
import Testing
import TestSupport

/// Bad files, as a user hands them to `mlp`: each must give a non-zero exit and one message that names the file and
/// says what was wrong, never a crash or a stack trace. The README's table of bad inputs lists these cases.
@Suite(.serialized) struct BadInputTests {
    let mlp: URL
    init() throws { mlp = try mlpExecutable() }

    /// The repository's bundled MNIST, found from this source file.
    static let bundled = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Data/mnist")
    static let files = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]

    func expectFailure(_ arguments: [String], _ message: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let r = try runProcess(mlp, arguments, currentDirectory: FileManager.default.temporaryDirectory)
        #expect(r.status != 0, "exit status 0 for \(arguments)", sourceLocation: sourceLocation)
        #expect(r.stderr.contains(message), "stderr: \(r.stderr)", sourceLocation: sourceLocation)
        #expect(!r.stderr.contains("Fatal error") && !r.stderr.contains("Stack dump"), sourceLocation: sourceLocation)
    }

    /// A copy of the bundled MNIST with `file` replaced by `contents` (or removed when nil).
    func dataDirectory(_ dir: URL, replacing file: String, with contents: Data?) throws -> URL {
        let data = dir.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        for name in Self.files where name != file {
            try FileManager.default.copyItem(at: Self.bundled.appendingPathComponent(name), to: data.appendingPathComponent(name))
        }
        if let contents { try contents.write(to: data.appendingPathComponent(file)) }
        return data
    }

    /// A precision the backend has no products for is refused by name, before any data is read.
    @Test func aPrecisionTheBackendLacksIsNamed() throws {
        try expectFailure(["train", "--backend", "naive", "--precision", "bf16"], "--precision bf16: runs on the cpu and cuda backends (the naive backend, the fp32 reference, has fp32 products)")
        try expectFailure(["bench", "--precision", "bf16,fp16"], "--precision bf16,fp16: \"fp16\" is not fp32, tf32 or bf16")
        try expectFailure(["train", "--backend", "cpu", "--precision", "tf32"], "--precision tf32: runs on the cuda backend (the cpu backend has fp32 and bf16 products)")
    }

    @Test func aMissingDataFileIsNamed() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = try dataDirectory(dir, replacing: "t10k-labels-idx1-ubyte.gz", with: nil)
        try expectFailure(["train", "--data-dir", data.path], "\(data.path): missing t10k-labels-idx1-ubyte")
    }

    @Test func aTruncatedIDXFileIsNamed() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // The header promises 10,000 labels; 100 follow.
        var bytes: [UInt8] = [0, 0, 8, 1, 0, 0, 0x27, 0x10]
        bytes += (0..<100).map { UInt8($0 % 10) }
        let data = try dataDirectory(dir, replacing: "t10k-labels-idx1-ubyte.gz", with: Data(bytes))
        try expectFailure(["train", "--data-dir", data.path], "t10k-labels-idx1-ubyte.gz: truncated (or its dimensions are wrong): a 10000 array needs more than the file's 108 bytes")
    }

    @Test func aWrongMagicNumberIsNamed() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = try dataDirectory(dir, replacing: "t10k-labels-idx1-ubyte.gz", with: Data("not an idx file".utf8))
        try expectFailure(["train", "--data-dir", data.path], "t10k-labels-idx1-ubyte.gz: wrong magic number 0x6e6f7420")
    }

    @Test func aCorruptGzipFileIsNamed() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // A gzip header followed by bytes that are not a deflate stream.
        let bytes: [UInt8] = [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3] + Array(repeating: 0xFF, count: 40)
        let data = try dataDirectory(dir, replacing: "t10k-labels-idx1-ubyte.gz", with: Data(bytes))
        try expectFailure(["train", "--data-dir", data.path], "t10k-labels-idx1-ubyte.gz: not valid gzip data: invalid block type")
    }

    @Test func aGzipFileCutShortIsNamed() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let whole = try Data(contentsOf: Self.bundled.appendingPathComponent("t10k-labels-idx1-ubyte.gz"))
        let data = try dataDirectory(dir, replacing: "t10k-labels-idx1-ubyte.gz", with: whole.prefix(whole.count / 2))
        try expectFailure(["train", "--data-dir", data.path], "t10k-labels-idx1-ubyte.gz: not valid gzip data: compressed data ends early (truncated file?)")
    }

    // MARK: Checkpoints

    /// A safetensors file from a header (JSON) and a data section.
    static func safetensors(header: String, data: [UInt8]) -> Data {
        let h = Array(header.utf8)
        var bytes = withUnsafeBytes(of: UInt64(h.count).littleEndian) { Array($0) }
        bytes += h + data
        return Data(bytes)
    }

    /// A real checkpoint of a 784-8-10 network, written by `mlp train`.
    func realCheckpoint(in dir: URL) throws -> URL {
        let r = try runProcess(mlp, ["train", "--backend", "naive", "--layers", "784,8,10", "--train-samples", "100", "--test-samples", "50",
                                     "--batch-size", "50", "--epochs", "1", "--quiet", "--output", dir.appendingPathComponent("run").path])
        #expect(r.status == 0, "\(r.stderr)")
        return dir.appendingPathComponent("run/last.safetensors")
    }

    @Test func badCheckpointsAreNamedWithWhatIsWrong() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let real = try realCheckpoint(in: dir)
        let bytes = try Data(contentsOf: real)
        func file(_ name: String, _ contents: Data) throws -> String {
            let url = dir.appendingPathComponent(name)
            try contents.write(to: url)
            return url.path
        }
        let floats8 = [UInt8](repeating: 0x3F, count: 8)
        let cases: [(String, Data, String)] = [
            ("truncated.safetensors", bytes.prefix(bytes.count * 3 / 5),
             "outside the"),
            ("header-past-end.safetensors", withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { Data($0) } + bytes.dropFirst(8),
             "header length \(bytes.count) runs past the end of the file (\(bytes.count) bytes)"),
            ("huge-header.safetensors", withUnsafeBytes(of: UInt64(200_000_000).littleEndian) { Data($0) } + Data([0x7B, 0x7D]),
             "header length 200000000 is over the limit of 100000000 bytes"),
            ("overlap.safetensors", Self.safetensors(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: floats8),
             "tensor 'b' overlaps the tensor before it (starts at 4, previous ends at 8)"),
            ("gap.safetensors", Self.safetensors(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#, data: floats8 + [0, 0, 0, 0]),
             "gap in the data before tensor 'b' (bytes 4..<8 belong to no tensor)"),
            ("dtype.safetensors", Self.safetensors(header: #"{"a":{"dtype":"F19","shape":[2],"data_offsets":[0,8]}}"#, data: floats8),
             "tensor 'a' has unknown dtype 'F19'"),
            ("not-mlp.safetensors", Self.safetensors(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: floats8),
             "metadata 'format' is missing, expected 'mlp-checkpoint-1' (a checkpoint written by mlp)"),
            ("shape.safetensors", try Self.reshaping(bytes, tensor: "layers.0.weight", to: [784, 8]),
             "tensor 'layers.0.weight' has shape [784, 8], but layers 784,8,10 need [8, 784]"),
        ]
        for (name, contents, message) in cases {
            let path = try file(name, contents)
            try expectFailure(["eval", "--checkpoint", path], "\(path): ")
            try expectFailure(["eval", "--checkpoint", path], message)
        }
    }

    /// The checkpoint `bytes` with one tensor's shape replaced (same element count, so only the shape check can
    /// catch it).
    static func reshaping(_ bytes: Data, tensor: String, to shape: [Int]) throws -> Data {
        let n = Int(bytes.prefix(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) })
        var header = try JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<8 + n)) as! [String: Any]
        var entry = header[tensor] as! [String: Any]
        entry["shape"] = shape
        header[tensor] = entry
        var json = try JSONSerialization.data(withJSONObject: header)
        // Keep the data section where it was: pad the header with spaces to its old length (or longer, aligned).
        while json.count < n { json.append(0x20) }
        return withUnsafeBytes(of: UInt64(json.count).littleEndian) { Data($0) } + json + bytes.dropFirst(8 + n)
    }

    @Test func resumingWithOtherLayersIsRefused() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let real = try realCheckpoint(in: dir)
        try expectFailure(["train", "--resume", real.path, "--layers", "784,16,10", "--epochs", "2"], "--resume continues the stored run; these flags would change it: --layers 784,16,10 (the checkpoint has 784,8,10)")
    }

    /// A checkpoint that cannot be written (here the file-size limit, as a full disk would): the run stops with an
    /// error naming the file, and the previous checkpoint is still there, whole.
    @Test func aCheckpointThatCannotBeWrittenLeavesThePreviousOne() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let real = try realCheckpoint(in: dir)
        let before = try Data(contentsOf: real)
        // `ulimit -f` in 512-byte blocks: 20 KB, a fifth of the checkpoint.
        let r = try runProcess(URL(fileURLWithPath: "/bin/sh"), ["-c", "ulimit -f 40; exec \"$0\" \"$@\"", mlp.path,
            "train", "--backend", "naive", "--train-samples", "100", "--test-samples", "50", "--epochs", "2", "--quiet",
            "--resume", real.path, "--output", real.deletingLastPathComponent().path])
        #expect(r.status != 0)
        #expect(r.stderr.contains("last.safetensors") || r.stderr.contains("best.safetensors"), "\(r.stderr)")
        #expect(r.stderr.contains("cannot write"), "\(r.stderr)")
        #expect(try Data(contentsOf: real) == before)
        _ = try Checkpoint.read(from: real)
    }
}
