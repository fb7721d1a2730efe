import ArgumentParser
import Foundation
import Logging
import MLPCore
import MNIST

/// Whether the data is copied whole to the backend or streamed to it (`DataPlacement`): `mlp train` and `mlp eval`.
struct PlacementOptions: ParsableArguments {
    @Flag(help: "Stream the data to the backend a batch at a time from host memory (the default when it does not fit in half of the GPU's free memory).")
    var stream = false
    @Flag(help: "Copy the data to the backend whole before training, and fail if it cannot fit (the default when it fits).")
    var resident = false
    @Option(help: ArgumentHelp("The most GPU memory to assume free when choosing between --resident and --stream, in bytes or with a binary unit: 512M, 4G, 1.5GiB.", valueName: "size"))
    var deviceMemoryLimit: String?

    func validate() throws {
        if stream && resident { throw ValidationError("--stream and --resident: give one of them") }
        if let deviceMemoryLimit { _ = try Self.bytes(deviceMemoryLimit) }
    }

    /// The placement of `sets` on `backend`, logged with its reason (`-v`).
    func choose(for sets: [LabeledSamples], on backend: any Backend, logger: Logger) throws -> DataPlacement {
        let placement = try DataPlacement.choose(
            for: sets, backend: backend, forced: stream ? .streamed : resident ? .resident : nil,
            memoryLimit: try deviceMemoryLimit.map(Self.bytes))
        logger.debug("\(placement)")
        return placement
    }

    /// A size: a number of bytes, or a number with K, M, G or T (powers of 1024), optionally followed by "iB" or "B".
    static func bytes(_ text: String) throws -> Int {
        let units: [(String, Double)] = [("T", 0x1p40), ("G", 0x1p30), ("M", 0x1p20), ("K", 0x1p10)]
        var number = Substring(text.trimmingCharacters(in: .whitespaces))
        for suffix in ["iB", "B"] where number.hasSuffix(suffix) && number.count > suffix.count {
            number = number.dropLast(suffix.count)
            break
        }
        var scale = 1.0
        if let factor = units.first(where: { number.uppercased().hasSuffix($0.0) })?.1 {
            number = number.dropLast()
            scale = factor
        }
        guard let value = Double(number), value.isFinite, value > 0, value * scale < 0x1p62 else {
            throw ValidationError("--device-memory-limit \(text): expected a size such as 2G, 512M or 1073741824")
        }
        return Int(value * scale)
    }
}
