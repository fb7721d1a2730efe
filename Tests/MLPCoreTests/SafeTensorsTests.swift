import Foundation
import MLPCore
import MNIST
import Testing
import TestSupport

@Suite struct SafeTensorsTests {
    func sample() -> [SafeTensors.Tensor] {
        var g = SeededGenerator(seed: 2)
        return [
            .init(name: "layers.0.weight", shape: [3, 5], values: randomFloats(15, using: &g)),
            .init(name: "layers.0.bias", shape: [3], values: randomFloats(3, using: &g)),
            .init(name: "odd \"name\"", shape: [1, 1, 1], values: [42.5]),
        ]
    }

    @Test func layoutFollowsTheFormat() throws {
        let bytes = SafeTensors.encode(sample(), metadata: ["format": "x", "note": "a\nb"])
        let n = Int(bytes[0..<8].withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) })
        #expect((8 + n) % 8 == 0)  // the data starts 8-byte aligned
        #expect(bytes.count == 8 + n + 19 * 4)
        let header = try JSONSerialization.jsonObject(with: Data(bytes[8..<8 + n])) as! [String: Any]
        let weight = header["layers.0.weight"] as! [String: Any]
        #expect(weight["dtype"] as? String == "F32")
        #expect(weight["shape"] as? [Int] == [3, 5])
        #expect(weight["data_offsets"] as? [Int] == [0, 60])
        #expect((header["layers.0.bias"] as! [String: Any])["data_offsets"] as? [Int] == [60, 72])
        #expect((header["__metadata__"] as? [String: String])?["note"] == "a\nb")
        // Little-endian float32 at the weight's offset.
        let first = bytes[8 + n..<8 + n + 4].withUnsafeBytes { Float(bitPattern: UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self))) }
        #expect(first == sample()[0].values[0])
    }

    @Test func roundTrip() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("t.safetensors")
        try SafeTensors.write(sample(), metadata: ["k": "v"], to: url)
        let file = try SafeTensors.read(contentsOf: url)
        #expect(file.metadata == ["k": "v"])
        for t in sample() {
            let (shape, values) = try file.floats(t.name)
            #expect(shape == t.shape && values == t.values)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["t.safetensors"])  // no temporary left
    }

    /// Builds a file from a header text and a data size.
    func file(header: String, dataBytes: Int) -> [UInt8] {
        let h = Array(header.utf8)
        var out = [UInt8]()
        withUnsafeBytes(of: UInt64(h.count).littleEndian) { out += $0 }
        return out + h + [UInt8](repeating: 0, count: dataBytes)
    }

    @Test func malformedFilesAreRejectedWithTheReason() {
        let cases: [([UInt8], String)] = [
            ([1, 2, 3], "too short"),
            (Array(file(header: "{}", dataBytes: 0).prefix(9)), "runs past the end"),
            ({ var b = file(header: "{}", dataBytes: 0); b.replaceSubrange(0..<8, with: [0, 0, 0, 0x10, 0, 0, 0, 0]); return b }(), "over the limit"),
            (file(header: "[1]", dataBytes: 0), "not a JSON object"),
            (file(header: #"{"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}}"#, dataBytes: 4), "unknown dtype 'Q7'"),
            (file(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, dataBytes: 4), "needs 8 bytes"),
            (file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}"#, dataBytes: 6), "overlaps"),
            (file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, dataBytes: 8), "gap in the data"),
            (file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, dataBytes: 12), "belong to no tensor"),
            (file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,40]}}"#, dataBytes: 4), "outside the 4 data bytes"),
        ]
        for (bytes, reason) in cases {
            let error = #expect(throws: SafeTensorsError.self) { try SafeTensors.decode(bytes, file: "x.safetensors") }
            #expect(error?.description.contains(reason) == true, "expected '\(reason)' in \(String(describing: error))")
            #expect(error?.description.hasPrefix("x.safetensors") == true)
        }
    }

    @Test func aFailedWriteKeepsThePreviousFile() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("c.safetensors")
        try SafeTensors.write(sample(), to: url)
        let before = try Data(contentsOf: url)
        // A directory in the temporary file's place makes the write fail.
        try FileManager.default.createDirectory(at: dir.appendingPathComponent(".c.safetensors.\(getpid()).tmp"), withIntermediateDirectories: false)
        #expect(throws: SafeTensorsError.self) { try SafeTensors.write([.init(name: "x", shape: [1], values: [1])], to: url) }
        #expect(try Data(contentsOf: url) == before)
    }
}
