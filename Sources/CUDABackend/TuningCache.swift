import Foundation

/// The algorithm that timing chose for each product, kept on disk between runs (where: `CUDAOptions.tuningCache`). A
/// later process on the same card, driver and cuBLASLt takes the recorded choice instead of timing the candidates
/// again: start-up is shorter, and every run makes the same choice, so two runs with the same seed give bit-identical
/// weights (without the file, timing may choose differently from one process to the next).
///
/// The file is JSON, `{"format": 1, "entries": {key: choice}}`. A key names the card, the driver, the cuBLASLt version,
/// the compute type and the product (`MatmulKey`: shape, strides, transposes, epilogue, alignments); a choice is
/// `lt:<i> of <n>`, the position of the algorithm in the list of `n` that cuBLASLt's heuristic returned (the same list
/// for the same key and context; the 64-byte algorithm itself is not compared, as some of its bytes were seen to differ
/// from one process to the next for the same algorithm), `lt:<i> of <n>, k in <parts>/<scheme>` for that algorithm made
/// to split `k` (`SplitVariant`). A choice that does not fit the candidates of this run is timed again. A file that
/// cannot be read or parsed is ignored and replaced at the next save; a save that fails is reported, never fatal. Saves
/// are atomic (a temporary file renamed over the old one) and merge what other processes wrote since.
final class TuningCache {
    /// Where the file is; nil keeps the choices in memory only.
    let url: URL?
    /// What the choices depend on besides the product: card, driver, library, compute type.
    let context: String
    private(set) var entries: [String: String]

    init(url: URL?, context: String) {
        self.url = url
        self.context = context
        entries = url.map(Self.read) ?? [:]
    }

    /// The recorded choice for `key`, if any.
    func choice(for key: MatmulKey) -> String? { entries[entryKey(key)] }

    /// Records `choice` for `key` and saves the file.
    /// - Throws: the file system's error when the file cannot be written (the choice stays recorded in memory).
    func record(_ choice: String, for key: MatmulKey) throws {
        try record(entry: entryKey(key), choice)
    }

    private func record(entry: String, _ value: String) throws {
        entries[entry] = value
        guard let url else { return }
        // Entries another process saved since this one read the file are kept; this process's win on a clash.
        var merged = Self.read(url)
        merged.merge(entries) { _, mine in mine }
        entries = merged
        let object: [String: Any] = ["format": 1, "entries": merged]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try data.write(to: url, options: .atomic)
    }

    /// What was recorded for the products `keys` chosen together inside a training step, if anything.
    func stepChoice(for keys: [MatmulKey]) -> String? { entries[stepEntryKey(keys)] }

    /// Records that the products `keys` were chosen together inside a training step (`summary` says how) and saves.
    func recordStepChoice(_ summary: String, for keys: [MatmulKey]) throws {
        try record(entry: stepEntryKey(keys), summary)
    }

    /// `context | step: product + product + …`, the products in sorted order.
    private func stepEntryKey(_ keys: [MatmulKey]) -> String {
        "\(context) | step: " + keys.map { String(entryKey($0).dropFirst(context.count + 3)) }.sorted().joined(separator: " + ")
    }

    func entryKey(_ key: MatmulKey) -> String {
        let product = "\(key.transposeA ? "T" : "N")\(key.transposeB ? "T" : "N") \(key.m)×\(key.n)×\(key.k) ld \(key.lda),\(key.ldb),\(key.ldc) epilogue \(key.epilogue.rawValue) align \(key.alignA),\(key.alignB),\(key.alignC),\(key.alignBias)\(key.bf16 ? " bf16" : "")"
        return "\(context) | \(product)"
    }

    /// The entries of the file at `url`; empty when it is missing, unreadable, not JSON or of another format.
    static func read(_ url: URL) -> [String: String] {
        guard let data = try? Data(contentsOf: url),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              object["format"] as? Int == 1,
              let entries = object["entries"] as? [String: String]
        else { return [:] }
        return entries
    }

    /// How the choice of `candidates[index]` is written in the file.
    static func encode(_ candidates: [MatmulAlgorithm], chosen index: Int) -> String {
        // Positions count the heuristic's algorithms only: the variants made of them are named by their base.
        let heuristic = heuristicIndices(candidates)
        switch candidates[index] {
        case .lt(_, _, _, let variant?):
            guard let base = heuristic.firstIndex(of: variant.base) else { return "lt:? of \(heuristic.count)" }
            return "lt:\(base) of \(heuristic.count), k in \(variant.parts)/\(variant.scheme)"
        case .lt:
            return "lt:\(heuristic.firstIndex(of: index)!) of \(heuristic.count)"
        }
    }

    /// The index in `candidates` of the choice written as `text`; nil when it does not fit them.
    static func decode(_ text: String, candidates: [MatmulAlgorithm]) -> Int? {
        candidates.indices.first { encode(candidates, chosen: $0) == text }
    }

    /// The positions in `candidates` of cuBLASLt's heuristic's algorithms (not the split variants made of them).
    static func heuristicIndices(_ candidates: [MatmulAlgorithm]) -> [Int] {
        candidates.indices.filter { if case .lt(_, _, _, nil) = candidates[$0] { return true } else { return false } }
    }

    /// The split variant that `text` names, when it names one of the heuristic's algorithms among `candidates` (counted
    /// as `encode` counts them) made to split `k`; the planner makes it again and adds it to the candidates.
    static func decodeVariant(_ text: String, candidates: [MatmulAlgorithm]) -> SplitVariant? {
        let heuristic = heuristicIndices(candidates)
        let parts = text.split(separator: " ")  // "lt:<i>", "of", "<n>,", "k", "in", "<parts>/<scheme>"
        guard parts.count == 6, parts[0].hasPrefix("lt:"), parts[1] == "of", parts[3] == "k", parts[4] == "in",
              let i = Int(parts[0].dropFirst(3)), let n = Int(parts[2].dropLast()), parts[2].hasSuffix(","),
              n == heuristic.count, heuristic.indices.contains(i) else { return nil }
        let split = parts[5].split(separator: "/")
        guard split.count == 2, let p = UInt32(split[0]), let s = UInt32(split[1]) else { return nil }
        return SplitVariant(base: heuristic[i], parts: p, scheme: s)
    }
}
