/// Turns a target column or a labels array into class numbers `0..<k` and the classes' names.
///
/// Classes are numbered in sorted order of their values: integers numerically (`-1, 0, 2`), text lexicographically
/// (`benign, malignant`). When the classes are already known (a checkpoint's, or the training set's for its test
/// set), every value must be one of them and keeps its number.
public enum ClassLabels {
    /// Numbers text labels (a CSV column). Text that reads as an integer is taken as one, so `"1"` and `"01"` are the
    /// same class and `"10"` sorts after `"9"`; a column of numbers that are not all integers is a regression target.
    /// - Parameters:
    ///   - values: one label per sample.
    ///   - known: the classes' names when they are fixed already.
    ///   - file: named in errors, with `what` (the column) and the 0-based row.
    /// - Throws: `DataError.malformed` for an empty label, a non-integer number, or a class not in `known`.
    public static func number(_ values: [String], known: [String]? = nil, file: String, what: String) throws -> (labels: [Int32], names: [String]) {
        var integers = [Int?](repeating: nil, count: values.count)
        var allNumbers = true
        var firstFraction: (row: Int, text: String)?
        for (i, text) in values.enumerated() {
            let t = text.trimmingCharacters(in: .whitespaces)
            if t.isEmpty {
                throw DataError.malformed(file: file, reason: "row \(i.grouped) (counting rows of values from 0), \(what): an empty label")
            }
            if let v = Int(t) {
                integers[i] = v
            } else if allNumbers {
                if let d = Double(t), d.isFinite {
                    if d == d.rounded(), abs(d) < 1e15 { integers[i] = Int(d) } else if firstFraction == nil { firstFraction = (i, t) }
                } else {
                    allNumbers = false
                }
            }
        }
        if allNumbers, let fraction = firstFraction {
            throw DataError.malformed(
                file: file,
                reason: "\(what) holds numbers that are not whole (\(fraction.text) in row \(fraction.row.grouped)): not classes (train a regression with --task regression)")
        }
        if allNumbers {
            return try number(integers: integers.map { $0! }, known: known, file: file, what: what)
        }
        let trimmed = values.map { $0.trimmingCharacters(in: .whitespaces) }
        let names = known ?? Array(Set(trimmed)).sorted()
        let numbers = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, Int32($0)) })
        return (try trimmed.enumerated().map { i, t in
            guard let n = numbers[t] else { throw unknown(t, row: i, known: names, file: file, what: what) }
            return n
        }, names)
    }

    /// Numbers integer labels (a NumPy or IDX array): the distinct values in increasing order, named by their
    /// decimal text. Known classes with names that are not integers take the integers as their indices.
    /// - Throws: `DataError.malformed` for a value not among `known`.
    public static func number(integers values: [Int], known: [String]? = nil, file: String, what: String) throws -> (labels: [Int32], names: [String]) {
        let names = known ?? Array(Set(values)).sorted().map(String.init)
        var numbers = [Int: Int32]()
        if names.allSatisfy({ Int($0) != nil }) {
            for (i, name) in names.enumerated() { numbers[Int(name)!] = Int32(i) }
        } else {
            // Classes with names of their own (Fashion-MNIST's "Trouser"), stored as integers: each is its index.
            for i in names.indices { numbers[i] = Int32(i) }
        }
        return (try values.enumerated().map { i, v in
            guard let n = numbers[v] else { throw unknown(String(v), row: i, known: names, file: file, what: what) }
            return n
        }, names)
    }

    static func unknown(_ value: String, row: Int, known: [String], file: String, what: String) -> DataError {
        let list = known.count <= 12 ? known.joined(separator: ", ") : known.prefix(12).joined(separator: ", ") + ", …"
        return DataError.inconsistent(
            file: file, reason: "row \(row.grouped), \(what): class \"\(value.prefix(40))\" is not one the network was trained on (\(list))")
    }
}

/// A regression's target column in a table: whether a column is one, and its numbers.
public enum TargetColumn {
    /// Regression when every cell is a finite number and at least one is not whole (`3.7`); classification otherwise
    /// (integers, text).
    public static func task(of cells: [String]) -> DataSource.Task {
        var fraction = false
        for cell in cells {
            guard let d = Double(cell.trimmingCharacters(in: .whitespaces)), d.isFinite else { return .classification }
            if d != d.rounded() { fraction = true }
        }
        return fraction ? .regression : .classification
    }

    /// The cells as numbers.
    /// - Throws: `DataError.malformed` naming the row (0-based, counting rows of values) and `what` for an empty cell,
    ///   text or a value that is not finite.
    public static func numbers(_ cells: [String], file: String, what: String) throws -> [Float] {
        try cells.enumerated().map { i, cell in
            let t = cell.trimmingCharacters(in: .whitespaces)
            guard let d = Double(t), d.isFinite, abs(d) <= Double(Float.greatestFiniteMagnitude) else {
                throw DataError.malformed(
                    file: file, reason: "row \(i.grouped) (counting rows of values from 0), \(what): \(t.isEmpty ? "an empty cell" : "\"\(t.prefix(40))\"") is not a finite number (a regression target)")
            }
            return Float(d)
        }
    }
}
