import Foundation
import MNIST
import Testing
import TestSupport

/// The `.npy` reader: files that NumPy itself writes read back to NumPy's values, every element type round-trips,
/// and every malformed or unsupported file is refused with an error that names it and says what is wrong.
@Suite struct NumPyTests {
    static let numpyReady: Bool = {
        guard let r = try? runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", "import numpy"]) else { return false }
        return r.status == 0
    }()

    /// NumPy writes random arrays of each type, shape, byte order and format version, with the values as text beside
    /// each; every file reads back to the same shape and values.
    @Test(.enabled(if: numpyReady, "python3 with numpy is not installed (pip install numpy)"))
    func filesWrittenByNumPyReadBackToTheirValues() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = """
            import numpy as np, sys, os
            out = sys.argv[1]
            rng = np.random.default_rng(7)
            cases = {
                "bool": rng.random((3, 5)) < 0.4,
                "uint8": rng.integers(0, 256, (7, 3), dtype=np.uint8),
                "int8": rng.integers(-128, 128, (11,), dtype=np.int8),
                "int16": rng.integers(-30000, 30000, (2, 3, 4), dtype=np.int16),
                "int32": rng.integers(-2**31, 2**31 - 1, (5, 2), dtype=np.int32),
                "int64": rng.integers(-2**40, 2**40, (4, 1, 3), dtype=np.int64),
                "float32": rng.standard_normal((6, 7)).astype(np.float32) * 1e3,
                "float64": rng.standard_normal((3, 3)) * 1e-3,
                "bigendian": (rng.standard_normal((4, 5)) * 7).astype(">f8"),
                "bigendian16": rng.integers(-3000, 3000, (9,)).astype(">i2"),
                "scalar": np.array(2.5, dtype=np.float32),
                "empty": np.zeros((0, 4), dtype=np.float32),
            }
            for name, a in cases.items():
                np.save(os.path.join(out, name + ".npy"), a)
                with open(os.path.join(out, name + ".txt"), "w") as f:
                    f.write(" ".join(str(s) for s in a.shape) + "\\n")
                    f.write(" ".join(repr(float(v)) for v in a.astype(np.float64).ravel()) + "\\n")
            # Format version 2.0 (a 4-byte header length), as NumPy writes for very large headers.
            a = rng.standard_normal((3, 4)).astype(np.float32)
            with open(os.path.join(out, "version2.npy"), "wb") as f:
                np.lib.format.write_array(f, a, version=(2, 0))
            with open(os.path.join(out, "version2.txt"), "w") as f:
                f.write("3 4\\n" + " ".join(repr(float(v)) for v in a.astype(np.float64).ravel()) + "\\n")
            """
        let python = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script, dir.path])
        #expect(python.status == 0, "\(python.stderr)")
        let expectedTypes: [String: NumPyElementType] = [
            "bool": .bool, "uint8": .uint8, "int8": .int8, "int16": .int16, "int32": .int32, "int64": .int64,
            "float32": .float32, "float64": .float64, "bigendian": .float64, "bigendian16": .int16, "scalar": .float32,
            "empty": .float32, "version2": .float32,
        ]
        for (name, type) in expectedTypes {
            let array = try NumPyArray.read(contentsOf: dir.appendingPathComponent("\(name).npy"))
            let lines = try String(contentsOf: dir.appendingPathComponent("\(name).txt"), encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
            let shape = lines[0].split(separator: " ").map { Int($0)! }
            let values = lines[1].split(separator: " ").map { Double($0)! }
            #expect(array.elementType == type, "\(name)")
            #expect(array.shape == shape, "\(name)")
            #expect(array.count == values.count, "\(name)")
            #expect(array.doubles == values, "\(name)")
        }
    }

    /// A random array of each type, encoded as `numpy.save` would and parsed back.
    @Test(arguments: NumPyElementType.allCases)
    func everyElementTypeRoundTrips(type: NumPyElementType) throws {
        var g = SeededGenerator(seed: UInt64(type.size * 31 + type.rawValue.count))
        let shape = [3, 1, 7]
        let n = 21
        let storage: NumPyArray.Storage
        switch type {
        case .bool: storage = .bool((0..<n).map { _ in g.uniform(below: 2) == 1 })
        case .uint8: storage = .uint8((0..<n).map { _ in UInt8(g.uniform(below: 256)) })
        case .int8: storage = .int8((0..<n).map { _ in Int8(g.uniform(below: 256) - 128) })
        case .int16: storage = .int16((0..<n).map { _ in Int16(g.uniform(below: 65536) - 32768) })
        case .int32: storage = .int32((0..<n).map { _ in Int32(truncatingIfNeeded: g.next()) })
        case .int64: storage = .int64((0..<n).map { _ in Int64(bitPattern: g.next()) })
        case .float32: storage = .float32((0..<n).map { _ in Float(g.gaussian() * 1e3) })
        case .float64: storage = .float64((0..<n).map { _ in g.gaussian() * 1e-3 })
        }
        let array = NumPyArray(shape: shape, storage: storage)
        let bytes = array.encoded()
        #expect((bytes.count - array.count * type.size) % 64 == 0)  // the data starts on a multiple of 64 bytes
        #expect(try NumPyArray.parse(bytes, file: "a.npy") == array)
    }

    /// A header as NumPy writes it, around `descr`, `fortran_order` and `shape` given as text.
    static func file(descr: String, fortran: String = "False", shape: String, body: Int, version: UInt8 = 1) -> [UInt8] {
        let header = Array("{'descr': '\(descr)', 'fortran_order': \(fortran), 'shape': \(shape), }      \n".utf8)
        let length: [UInt8] = version == 1 ? [UInt8(header.count), 0] : [UInt8(header.count), 0, 0, 0]
        return [0x93] + Array("NUMPY".utf8) + [version, 0] + length + header + [UInt8](repeating: 7, count: body)
    }

    /// A version 1.0 file of `header` and no data.
    static func file(header: String) -> [UInt8] {
        [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count), 0] + Array(header.utf8)
    }

    @Test(arguments: [
        ([UInt8]("PK\u{3}\u{4}not an npy at all".utf8), "does not start with \\x93NUMPY"),
        ([0x93] + [UInt8]("NUMPY".utf8) + [9, 0, 10, 0], "format version 9.0"),
        (Array(NumPyTests.file(descr: "<f4", shape: "(2, 3)", body: 24).prefix(30)), "truncated in its header"),
        (NumPyTests.file(descr: "<f4", shape: "(2, 3)", body: 23), "truncated: 23 bytes of data, but a 2×3 array of <f4 needs 24"),
        (NumPyTests.file(descr: "<f4", shape: "(2, 3)", body: 25), "too long: 25 bytes"),
        (NumPyTests.file(descr: "<f4", fortran: "True", shape: "(2, 3)", body: 24), "Fortran order: save numpy.ascontiguousarray(a)"),
        (NumPyTests.file(descr: "|O", shape: "(2,)", body: 16), "an array of Python objects"),
        (NumPyTests.file(descr: "<U5", shape: "(2,)", body: 40), "an array of strings"),
        (NumPyTests.file(descr: "<c8", shape: "(2,)", body: 16), "an element type of '<c8'"),
        (NumPyTests.file(header: "[1, 2, 3]\n"), "its header is not the dict NumPy writes"),
        (NumPyTests.file(header: "{'descr': [('a', '<f4')], 'x'\n"), "its header is not the dict NumPy writes"),
        (NumPyTests.file(header: "{'descr': [('a', '<f4'), ('b', '<i2')], 'fortran_order': False, 'shape': (2,)}\n"), "a structured array"),
        (NumPyTests.file(header: "{'fortran_order': False, 'shape': (2,)}\n"), "no element type"),
        (NumPyTests.file(descr: "<f4", shape: "(2, -3)", body: 24), "its header is not the dict NumPy writes"),
        (NumPyTests.file(descr: "<i8", shape: "(4294967296, 4294967296)", body: 8), "truncated (or its shape is wrong)"),
    ] as [([UInt8], String)])
    func badFilesAreRefusedWithTheirReason(bytes: [UInt8], message: String) {
        let error = #expect(throws: DataError.self) { try NumPyArray.parse(bytes, file: "/data/x.npy") }
        #expect(error?.description.hasPrefix("/data/x.npy: ") == true, "\(String(describing: error))")
        #expect(error?.description.contains(message) == true, "\(String(describing: error)) should say \(message)")
    }

    /// A shape whose header is longer than version 1.0 allows is written as version 2.0, and read back.
    @Test func aLongHeaderIsWrittenAsVersion2() throws {
        let array = NumPyArray(shape: [Int](repeating: 1, count: 30_000) + [2], storage: .int8([3, -4]))
        let bytes = array.encoded()
        #expect(bytes[6] == 2 && (bytes.count - 2) % 64 == 0)
        #expect(try NumPyArray.parse(bytes, file: "long.npy") == array)
    }

    @Test func version2HeadersAndPython2LongsAreRead() throws {
        let bytes = Self.file(descr: "<i2", shape: "(3L, 1L)", body: 6, version: 2)
        let array = try NumPyArray.parse(bytes, file: "v2.npy")
        #expect(array.shape == [3, 1] && array.elementType == .int16 && array.doubles == [1799, 1799, 1799])
    }

    @Test func aMissingFileIsNamed() {
        let error = #expect(throws: DataError.self) { try NumPyArray.read(contentsOf: URL(fileURLWithPath: "/nonexistent/x.npy")) }
        #expect(error?.description.hasPrefix("/nonexistent/x.npy: cannot read") == true)
    }

    /// `numpy.savez` (stored) and `numpy.savez_compressed` (deflated) archives read back to their arrays, by name.
    @Test(.enabled(if: numpyReady, "python3 with numpy is not installed (pip install numpy)"))
    func archivesWrittenByNumPyReadBack() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = """
            import numpy as np, sys, os
            rng = np.random.default_rng(3)
            x = rng.standard_normal((13, 5)).astype(np.float32)
            y = rng.integers(0, 3, 13).astype(np.int64)
            np.savez(os.path.join(sys.argv[1], "stored.npz"), x_train=x, y_train=y)
            np.savez_compressed(os.path.join(sys.argv[1], "deflated.npz"), x_train=x, y_train=y, x_test=x[:4])
            print(" ".join(repr(float(v)) for v in x.ravel()))
            print(" ".join(str(int(v)) for v in y))
            """
        let python = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script, dir.path])
        #expect(python.status == 0, "\(python.stderr)")
        let lines = python.stdout.split(separator: "\n")
        let x = lines[0].split(separator: " ").map { Double($0)! }, y = lines[1].split(separator: " ").map { Double($0)! }
        for (name, members) in [("stored", ["x_train", "y_train"]), ("deflated", ["x_test", "x_train", "y_train"])] {
            let arrays = try NumPyArchive.read(contentsOf: dir.appendingPathComponent("\(name).npz"))
            #expect(arrays.keys.sorted() == members, "\(name)")
            #expect(arrays["x_train"]?.shape == [13, 5] && arrays["x_train"]?.doubles == x, "\(name)")
            #expect(arrays["y_train"]?.elementType == .int64 && arrays["y_train"]?.doubles == y, "\(name)")
        }
    }

    @Test func aFileThatIsNoArchiveIsNamed() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("x.npz")
        try Data(NumPyArray(shape: [2], storage: .int8([1, 2])).encoded()).write(to: url)
        let error = #expect(throws: DataError.self) { try NumPyArchive.read(contentsOf: url) }
        #expect(error?.description.hasPrefix("\(url.path): not an .npz archive") == true, "\(String(describing: error))")
        let missing = #expect(throws: DataError.self) { try NumPyArchive.read(contentsOf: dir.appendingPathComponent("none.npz")) }
        #expect(missing?.description.contains("none.npz: cannot read: no such file") == true)
    }
}
