/// Everything that can go wrong while reading, finding or downloading a dataset.
///
/// Every case names the file (or directory, or URL) it concerns, and its `description` says what was wrong and
/// what was expected, so that the tool can print it as it is.
public enum DataError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file could not be opened or read.
    case unreadable(file: String, reason: String)
    /// The file is not valid gzip/zlib data, or is cut short.
    case badCompression(file: String, reason: String)
    /// The IDX content is malformed (magic, element type, dimensions, length).
    case malformed(file: String, reason: String)
    /// The images and labels files of one split do not agree, or a label is out of range.
    case inconsistent(file: String, reason: String)
    /// A file that the dataset needs is not in the directory.
    case missingFile(directory: String, expected: [String])
    /// No directory holding the dataset was found.
    case notFound(dataset: String, searched: [String])
    /// A checksum did not match the one kept in the source.
    case checksumMismatch(file: String, expected: String, actual: String)
    /// Every mirror failed for a file; `attempts` says why each one did.
    case downloadFailed(file: String, attempts: [String])
    /// A file could not be written.
    case unwritable(file: String, reason: String)
    /// A value given by the caller is out of range (a flag's value, usually).
    case invalidArgument(name: String, reason: String)

    /// The message the tool prints: the file or flag, then what was wrong and what was expected.
    public var description: String {
        switch self {
        case let .unreadable(file, reason): return "\(file): cannot read: \(reason)"
        case let .badCompression(file, reason): return "\(file): not valid gzip data: \(reason)"
        case let .malformed(file, reason): return "\(file): \(reason)"
        case let .inconsistent(file, reason): return "\(file): \(reason)"
        case let .missingFile(directory, expected):
            return "\(directory): missing \(expected.joined(separator: " or "))"
        case let .notFound(dataset, searched):
            return "no \(dataset) data found; looked in:\n  " + searched.joined(separator: "\n  ")
                + "\n(pass --data-dir DIR, or run `mlp data download --dataset \(dataset) --dir DIR`)"
        case let .checksumMismatch(file, expected, actual):
            return "\(file): SHA-256 of the uncompressed data is \(actual), expected \(expected)"
        case let .downloadFailed(file, attempts):
            return "\(file): every mirror failed:\n  " + attempts.joined(separator: "\n  ")
        case let .unwritable(file, reason): return "\(file): cannot write: \(reason)"
        case let .invalidArgument(name, reason): return "\(name): \(reason)"
        }
    }
}

extension Int {
    /// The number with thousands separators, as messages print counts ("9,999").
    public var grouped: String {
        let digits = String(magnitude)
        var out = ""
        for (i, ch) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        return self < 0 ? "-" + out : out
    }
}
