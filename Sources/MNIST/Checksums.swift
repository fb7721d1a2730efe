import Crypto
import Foundation

/// The SHA-256 of each dataset file's uncompressed IDX bytes, and the public mirrors that serve the files.
///
/// Checksums are of the uncompressed content because mirrors compress the same IDX bytes differently;
/// a file that inflates to these bytes is the right file whichever copy it came from.
public enum KnownDataset {
    /// Uncompressed SHA-256 (hex) of each file of `dataset`.
    public static func sha256(_ dataset: DatasetName, _ file: DatasetFile) -> String {
        switch (dataset, file) {
        case (.mnist, .trainImages): return "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
        case (.mnist, .trainLabels): return "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
        case (.mnist, .testImages): return "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
        case (.mnist, .testLabels): return "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
        case (.fashionMNIST, .trainImages): return "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
        case (.fashionMNIST, .trainLabels): return "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
        case (.fashionMNIST, .testImages): return "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
        case (.fashionMNIST, .testLabels): return "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
        }
    }

    /// Base URLs, tried in order; a file's URL is the base followed by its canonical name and `.gz`.
    public static func mirrors(_ dataset: DatasetName) -> [URL] {
        let bases: [String]
        switch dataset {
        case .mnist:
            bases = [
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                "https://storage.googleapis.com/cvdf-datasets/mnist/",
                "http://yann.lecun.com/exdb/mnist/",
            ]
        case .fashionMNIST:
            bases = [
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
            ]
        }
        return bases.map { URL(string: $0)! }
    }
}

/// Hex SHA-256 of `bytes`.
public func sha256Hex(_ bytes: [UInt8]) -> String {
    SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
}

extension Dataset {
    /// For each file, whether its uncompressed content has the known checksum of `dataset`.
    public func verifyChecksums(as dataset: DatasetName) -> [DatasetFile: Bool] {
        var result = [DatasetFile: Bool]()
        for (role, url) in files {
            guard let raw = try? [UInt8](Data(contentsOf: url)) else { result[role] = false; continue }
            let body = Gzip.isGzip(raw) ? ((try? Gzip.inflate(raw, file: url.lastPathComponent)) ?? []) : raw
            result[role] = sha256Hex(body) == KnownDataset.sha256(dataset, role)
        }
        return result
    }
}
