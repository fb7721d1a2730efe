import Foundation
import MNIST

/// Whether a run's data is copied whole into the backend's memory (`ResidentDataset`) or streamed to it a batch at a
/// time (`StreamedDataset`), and why.
public struct DataPlacement: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case resident, streamed

        /// `samples` on `backend` this way: copied whole, or streamed in batches of at most `batchCapacity` samples.
        /// - Throws: when the backend memory (or, streamed, the pinned host buffers) cannot be allocated.
        public func source(_ samples: LabeledSamples, on backend: any Backend, batchCapacity: Int) throws -> any BatchSource {
            switch self {
            case .resident: return try ResidentDataset(samples, on: backend)
            case .streamed: return try StreamedDataset(samples, on: backend, batchCapacity: batchCapacity)
            }
        }
    }
    /// What was chosen.
    public var kind: Kind
    /// Why, with the sizes (for `-v`).
    public var reason: String

    /// The share of the backend's free memory that data may take and still be copied whole: the rest is for the
    /// network, its batches, the products' scratch and whatever else runs on the device.
    public static let residentShare = 0.5

    /// Decides for data of `bytes` on `backend`.
    /// - Parameters:
    ///   - bytes: the data as it would be resident (`residentBytes`), training and evaluation sets together.
    ///   - backend: the backend that trains on it (its `memoryAvailable`).
    ///   - forced: `--stream` or `--resident`; nil decides by the sizes.
    ///   - memoryLimit: `--device-memory-limit`: the most backend memory to assume free (on a backend whose memory is
    ///     the host's too, where it makes the choice as on a device of that size).
    /// - Throws: `ConfigurationError` when `--resident` is asked for data larger than the memory free.
    public static func choose(bytes: Int, backend: any Backend, forced: Kind?, memoryLimit: Int?) throws -> DataPlacement {
        let device = backend.memoryAvailable
        var available: Int? = device?.free
        if let memoryLimit { available = min(available ?? memoryLimit, memoryLimit) }
        let sizes = "the data takes \(bytes.bytesDescription)" + (available.map {
            ", \($0.bytesDescription) of \(backend.name) memory is free"
                + (memoryLimit != nil && $0 == memoryLimit ? " (--device-memory-limit)" : "")
        } ?? "")
        switch forced {
        case .streamed?:
            return DataPlacement(kind: .streamed, reason: "--stream (\(sizes))")
        case .resident?:
            if let available, bytes > available {
                throw ConfigurationError(flag: "--resident", value: bytes.bytesDescription,
                                         expected: "data that fits the \(available.bytesDescription) of \(backend.name) memory free (leave --resident out to stream it)")
            }
            return DataPlacement(kind: .resident, reason: "--resident (\(sizes))")
        case nil:
            guard let available else {
                return DataPlacement(kind: .resident, reason: "the \(backend.name) backend computes in host memory (\(sizes))")
            }
            let share = Int(Double(available) * residentShare)
            if bytes <= share {
                return DataPlacement(kind: .resident, reason: "\(sizes): it fits in half of that")
            }
            return DataPlacement(kind: .streamed, reason: "\(sizes): more than half of that")
        }
    }

    /// The bytes `samples` take resident: values in their stored type, labels, a regression's targets.
    public static func residentBytes(_ samples: LabeledSamples) -> Int {
        samples.values.count * samples.values.type.size + samples.count * 4 + samples.targets.count * 4
    }

    /// `choose` for the sets a run holds together (training and evaluation), by their resident bytes.
    public static func choose(for sets: [LabeledSamples], backend: any Backend, forced: Kind?, memoryLimit: Int?) throws -> DataPlacement {
        try choose(bytes: sets.map(residentBytes).reduce(0, +), backend: backend, forced: forced, memoryLimit: memoryLimit)
    }

    /// `samples` on `backend` as this placement says (`Kind.source`).
    public func source(_ samples: LabeledSamples, on backend: any Backend, batchCapacity: Int) throws -> any BatchSource {
        try kind.source(samples, on: backend, batchCapacity: batchCapacity)
    }

    public var description: String { "data \(kind.rawValue): \(reason)" }
}

extension Int {
    /// Bytes in binary units, three significant digits: "47.0 MiB", "1.50 GiB".
    public var bytesDescription: String {
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(self), unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        if unit == 0 { return "\(self) bytes" }
        let digits = value >= 100 ? 0 : value >= 10 ? 1 : 2
        return String(format: "%.\(digits)f \(units[unit])", value)
    }
}
