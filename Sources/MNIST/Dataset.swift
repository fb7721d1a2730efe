import Foundation

/// The datasets the tool knows by name. Any other folder of IDX files is loaded with `Dataset.load(directory:)`.
public enum DatasetName: String, CaseIterable, Sendable {
    case mnist
    case fashionMNIST = "fashion-mnist"

    /// The class names, for printing predictions.
    public var classNames: [String] {
        switch self {
        case .mnist: return (0..<10).map(String.init)
        case .fashionMNIST:
            return ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
        }
    }
}

/// One of the four files of an MNIST-style dataset.
public enum DatasetFile: String, CaseIterable, Sendable {
    case trainImages = "train-images"
    case trainLabels = "train-labels"
    case testImages = "t10k-images"
    case testLabels = "t10k-labels"

    var dimensionsTag: String { self == .trainImages || self == .testImages ? "idx3" : "idx1" }

    /// The canonical name of the uncompressed file, `train-images-idx3-ubyte`.
    public var canonicalName: String { "\(rawValue)-\(dimensionsTag)-ubyte" }

    /// Every spelling accepted in a directory, in the order they are tried: the canonical name and the dotted one
    /// (`train-images.idx3-ubyte`), each gzip-compressed or not.
    public var acceptedNames: [String] {
        let dotted = "\(rawValue).\(dimensionsTag)-ubyte"
        return [canonicalName + ".gz", canonicalName, dotted + ".gz", dotted]
    }
}

/// A training and a test set read from the four IDX files of one directory.
public struct Dataset: Sendable {
    /// The training set (60,000 images for MNIST).
    public var train: LabeledImages
    /// The test set (10,000 images for MNIST).
    public var test: LabeledImages
    /// The directory the files were read from.
    public var directory: URL
    /// The file read for each role.
    public var files: [DatasetFile: URL]

    /// Finds the file for `role` in `directory` under any accepted spelling.
    /// - Throws: `DataError.missingFile` listing the names that were tried.
    public static func locate(_ role: DatasetFile, in directory: URL) throws -> URL {
        for name in role.acceptedNames {
            let url = directory.appendingPathComponent(name)
            if FileManager.default.isReadableFile(atPath: url.path) { return url }
        }
        throw DataError.missingFile(directory: directory.path, expected: role.acceptedNames)
    }

    /// Whether `directory` holds all four files.
    public static func isComplete(_ directory: URL) -> Bool {
        DatasetFile.allCases.allSatisfy { (try? locate($0, in: directory)) != nil }
    }

    /// Reads and checks the four files of `directory`.
    ///
    /// Images must be unsigned bytes of shape N×rows×columns, labels unsigned bytes of shape N, with the same N,
    /// and every label below `classCount`.
    /// - Throws: `DataError` naming the file at fault.
    public static func load(directory: URL, classCount: Int = 10) throws -> Dataset {
        var files = [DatasetFile: URL]()
        for role in DatasetFile.allCases { files[role] = try locate(role, in: directory) }
        // The four files are independent until they are matched: read (and inflate) them in parallel, each
        // thread writing only its own slot.
        let urls = DatasetFile.allCases.map { files[$0]! }
        let results = UnsafeMutablePointer<Result<IDXArray, Error>?>.allocate(capacity: 4)
        results.initialize(repeating: nil, count: 4)
        defer { results.deinitialize(count: 4); results.deallocate() }
        nonisolated(unsafe) let slots = results
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            slots[i] = Result { try IDXArray.read(contentsOf: urls[i]) }
        }
        let arrays = try (0..<4).map { try results[$0]!.get() }
        func split(_ images: IDXArray, _ imagesURL: URL, _ labels: IDXArray, _ labelsURL: URL) throws -> LabeledImages {
            let imagesName = imagesURL.lastPathComponent, labelsName = labelsURL.lastPathComponent
            guard images.elementType == .uint8, images.shape.count == 3 else {
                throw DataError.malformed(
                    file: imagesName,
                    reason: "images are \(images.shape.count)-dimensional \(images.elementType.name)s, expected 3-dimensional unsigned bytes (count×rows×columns)")
            }
            guard labels.elementType == .uint8, labels.shape.count == 1 else {
                throw DataError.malformed(
                    file: labelsName,
                    reason: "labels are \(labels.shape.count)-dimensional \(labels.elementType.name)s, expected 1-dimensional unsigned bytes")
            }
            guard case .uint8(let pixels) = images.storage, case .uint8(let labelBytes) = labels.storage else {
                preconditionFailure("element type and storage disagree")
            }
            return try LabeledImages(
                pixels: pixels, labels: labelBytes, rows: images.shape[1], columns: images.shape[2],
                classCount: classCount, imagesFile: imagesName, labelsFile: labelsName)
        }
        let train = try split(arrays[0], files[.trainImages]!, arrays[1], files[.trainLabels]!)
        let test = try split(arrays[2], files[.testImages]!, arrays[3], files[.testLabels]!)
        guard train.rows == test.rows, train.columns == test.columns else {
            throw DataError.inconsistent(
                file: files[.testImages]!.lastPathComponent,
                reason: "test images are \(test.rows)×\(test.columns), training images \(train.rows)×\(train.columns)")
        }
        return Dataset(train: train, test: test, directory: directory, files: files)
    }
}
