import ArgumentParser
import Foundation
import MLPCore
import MNIST

extension Checkpoint {
    /// The data the network was trained on, as its checkpoint describes it (`DataDescription`, in the `data` note);
    /// nil for a checkpoint written before the tool read data other than MNIST's.
    /// - Throws: `ValidationError` naming `path` when the note is there but cannot be read.
    func dataDescription(path: String) throws -> DataDescription? {
        guard let json = notes["data"] else { return nil }
        do {
            return try JSONDecoder().decode(DataDescription.self, from: Data(json.utf8))
        } catch {
            throw ValidationError("\(path): its 'data' metadata is not what mlp writes: \(error)")
        }
    }
}

extension JSONEncoder {
    /// An encoder with sorted keys, so that equal values give equal bytes.
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }
}
