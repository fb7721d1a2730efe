import Foundation
import MNIST
import Testing
import TestSupport

/// Data of one's own: tables written by Python's csv module and arrays written by NumPy read back to the same values
/// and classes; classes numbered in sorted order; the stratified test split; per-feature standardisation against its
/// closed form; and the bad inputs each refused with the file, row and column named.
@Suite struct DataSourceTests {
    static let numpyReady: Bool = {
        guard let r = try? runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", "import numpy, csv"]) else { return false }
        return r.status == 0
    }()

    func python(_ script: String, _ dir: URL) throws {
        let r = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script, dir.path])
        #expect(r.status == 0, "\(r.stderr)")
    }

    /// Reads the text file of numbers Python wrote beside the data (one per line, as repr writes them).
    func numbers(_ url: URL) throws -> [Double] {
        try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map { Double($0)! }
    }

    /// A table with quoted fields, text classes, an id column to ignore and columns on scales a thousand apart, as
    /// Python's csv module writes it: every feature and class reads back, classes numbered in sorted order.
    @Test(.enabled(if: numpyReady, "python3 with numpy is not installed (pip install numpy)"))
    func aTableWrittenByPythonReadsBack() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try python("""
            import csv, sys, os, numpy as np
            rng = np.random.default_rng(3)
            x = rng.standard_normal((137, 5)) * [1, 1e3, 1e-3, 7, 1] + [0, 5e3, 0, -2, 1]
            classes = ["malignant", "benign", "in, between", 'say "what"']
            y = [classes[i] for i in rng.integers(0, 4, 137)]
            with open(os.path.join(sys.argv[1], "t.csv"), "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["id", "alpha", "beta", "gamma", "delta, quoted", "eps", "kind"])
                for i in range(137):
                    w.writerow([1000 + i] + [repr(float(v)) for v in x[i]] + [y[i]])
            with open(os.path.join(sys.argv[1], "x.txt"), "w") as f:
                f.write("\\n".join(repr(float(v)) for v in x.ravel()))
            with open(os.path.join(sys.argv[1], "y.txt"), "w") as f:
                f.write("\\n".join(y))
            """, dir)
        let loaded = try DataSource(path: dir.appendingPathComponent("t.csv").path, target: "kind", ignored: ["id"]).load()
        let set = loaded.train
        #expect(loaded.test == nil && loaded.target == "kind")
        #expect(set.count == 137 && set.sampleShape == [5] && set.featureNames == ["alpha", "beta", "gamma", "delta, quoted", "eps"])
        #expect(set.classNames == ["benign", "in, between", "malignant", "say \"what\""])
        guard case .floats(let values) = set.values else { Issue.record("a table reads as floats"); return }
        #expect(values == (try numbers(dir.appendingPathComponent("x.txt"))).map(Float.init))
        let names = try String(contentsOf: dir.appendingPathComponent("y.txt"), encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(set.labels.map { set.classNames[Int($0)] } == names)
        // The same columns chosen by index and by --features, the target by index.
        let byIndex = try DataSource(path: dir.appendingPathComponent("t.csv").path, target: "6", features: ["1", "beta", "3", "delta, quoted", "5"]).load()
        #expect(byIndex.train == set)
    }

    /// Arrays NumPy writes, in an archive and as a pair of .npy files: samples of any rank flattened, bytes kept as
    /// bytes, other types as floats, labels of any integer type numbered in sorted order.
    @Test(.enabled(if: numpyReady, "python3 with numpy is not installed (pip install numpy)"))
    func arraysWrittenByNumPyReadBack() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try python("""
            import sys, os, numpy as np
            d = sys.argv[1]
            rng = np.random.default_rng(5)
            xtr = rng.integers(0, 256, (53, 3, 4, 2), dtype=np.uint8)
            ytr = rng.choice([-3, 7, 12], 53).astype(np.int16)
            xte = rng.integers(0, 256, (11, 3, 4, 2), dtype=np.uint8)
            yte = rng.choice([7, 12], 11).astype(np.int64)
            np.savez(os.path.join(d, "a.npz"), x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
            x = rng.standard_normal((29, 6))
            y = rng.integers(0, 3, 29).astype(np.float32)   # whole numbers stored as floats are classes
            np.save(os.path.join(d, "x.npy"), x)
            np.save(os.path.join(d, "y.npy"), y)
            np.savez(os.path.join(d, "bad.npz"), features=x)
            np.save(os.path.join(d, "yshort.npy"), y[:10])
            for name, a in [("xtr", xtr), ("ytr", ytr), ("xte", xte), ("yte", yte), ("x", x), ("y", y)]:
                with open(os.path.join(d, name + ".txt"), "w") as f:
                    f.write("\\n".join(repr(float(v)) for v in a.ravel()))
            """, dir)
        let archive = try DataSource(path: dir.appendingPathComponent("a.npz").path).load()
        #expect(archive.train.sampleShape == [3, 4, 2] && archive.train.classNames == ["-3", "7", "12"])
        #expect(archive.train.values == .bytes(try numbers(dir.appendingPathComponent("xtr.txt")).map { UInt8($0) }))
        #expect(archive.train.labels.map { Double(archive.train.classNames[Int($0)])! } == (try numbers(dir.appendingPathComponent("ytr.txt"))))
        let test = try #require(archive.test)
        #expect(test.classNames == archive.train.classNames && test.count == 11)
        #expect(test.labels.map { Double(test.classNames[Int($0)])! } == (try numbers(dir.appendingPathComponent("yte.txt"))))

        let pair = try DataSource(path: dir.appendingPathComponent("x.npy").path, labelsPath: dir.appendingPathComponent("y.npy").path).load()
        #expect(pair.train.values == .floats(try numbers(dir.appendingPathComponent("x.txt")).map(Float.init)))
        #expect(pair.train.labels.map { Double(pair.train.classNames[Int($0)])! } == (try numbers(dir.appendingPathComponent("y.txt"))))

        #expect(throws: DataError.self) { try DataSource(path: dir.appendingPathComponent("x.npy").path).load() }
        let missing = #expect(throws: DataError.self) { try DataSource(path: dir.appendingPathComponent("bad.npz").path).load() }
        #expect("\(missing!)".contains("no array x_train") && "\(missing!)".contains("features"))
        // Labels of the wrong count.
        let short = #expect(throws: DataError.self) {
            try DataSource(path: dir.appendingPathComponent("x.npy").path, labelsPath: dir.appendingPathComponent("yshort.npy").path).load()
        }
        #expect("\(short!)".contains("yshort.npy") && "\(short!)".contains("10 labels for 29 samples"))
    }

    /// Regression targets, as NumPy and Python's csv module write them: a table's column of decimals is a regression by
    /// itself, its integers only with --task regression; float labels that are not whole, and labels of several
    /// columns, are targets; the values read back exactly as written (to Float).
    @Test(.enabled(if: numpyReady, "python3 with numpy is not installed (pip install numpy)"))
    func regressionTargetsReadBack() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try python("""
            import sys, os, csv, numpy as np
            d = sys.argv[1]
            rng = np.random.default_rng(3)
            x = rng.standard_normal((41, 5)).astype(np.float32)
            y1 = (rng.standard_normal(41) * 1e3 + 2e4).astype(np.float64)
            y3 = rng.standard_normal((41, 3)).astype(np.float32)
            np.save(os.path.join(d, "x.npy"), x)
            np.save(os.path.join(d, "y1.npy"), y1)
            np.save(os.path.join(d, "y3.npy"), y3)
            np.savez(os.path.join(d, "r.npz"), x_train=x[:30], y_train=y3[:30], x_test=x[30:], y_test=y3[30:])
            with open(os.path.join(d, "t.csv"), "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["a", "b", "count", "price"])
                for i in range(41):
                    w.writerow([repr(float(x[i, 0])), repr(float(x[i, 1])), int(i % 7), repr(float(y1[i]))])
            for name, a in [("y1", y1), ("y3", y3)]:
                with open(os.path.join(d, name + ".txt"), "w") as f:
                    f.write("\\n".join(repr(float(v)) for v in a.ravel()))
            """, dir)
        let x = dir.appendingPathComponent("x.npy").path
        let one = try DataSource(path: x, labelsPath: dir.appendingPathComponent("y1.npy").path).load().train
        #expect(one.isRegression && one.targetNames == ["y"] && one.count == 41 && one.labels.isEmpty)
        #expect(one.targets == (try numbers(dir.appendingPathComponent("y1.txt"))).map { Float($0) })
        let three = try DataSource(path: x, labelsPath: dir.appendingPathComponent("y3.npy").path).load().train
        #expect(three.targetNames == ["y0", "y1", "y2"] && three.outputCount == 3)
        #expect(three.targets == (try numbers(dir.appendingPathComponent("y3.txt"))).map { Float($0) })
        let archive = try DataSource(path: dir.appendingPathComponent("r.npz").path).load()
        #expect(archive.train.count == 30 && archive.test?.count == 11 && archive.test?.targetCount == 3)
        #expect(archive.test!.targets == Array(three.targets[90...]))

        let table = dir.appendingPathComponent("t.csv").path
        let price = try DataSource(path: table).load().train
        #expect(price.isRegression && price.targetNames == ["price"] && price.featureNames == ["a", "b", "count"])
        #expect(price.targets == (try numbers(dir.appendingPathComponent("y1.txt"))).map { Float($0) })
        // Whole numbers are classes unless the task says otherwise.
        #expect(try DataSource(path: table, target: "count").load().train.classCount == 7)
        var counted = DataSource(path: table, target: "count")
        counted.task = .regression
        let counts = try counted.load().train
        #expect(counts.isRegression && counts.targets == (0..<41).map { Float($0 % 7) })
        // A regression split is random, not by class, and keeps each sample's targets with it.
        let (train, test) = try three.splittingOffTest(fraction: 0.25, seed: 9)
        #expect(train.count + test.count == 41 && test.count == 10)
        #expect(Set(train.targets + test.targets) == Set(three.targets))
    }

    /// A regression's bad targets: text or an empty cell in a target column read as numbers, a target that never
    /// changes (found before training), pictures asked for a regression; standardised targets map back exactly.
    @Test func badRegressionTargetsAreRefused() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let table = dir.appendingPathComponent("t.csv")
        try "a,b,y\n1,2,0.5\n3,4,high\n5,6,1.5\n".write(to: table, atomically: true, encoding: .utf8)
        var source = DataSource(path: table.path)
        source.task = .regression
        let text = #expect(throws: DataError.self) { try source.load() }
        #expect("\(text!)".contains("t.csv") && "\(text!)".contains("row 1") && "\(text!)".contains("column y") && "\(text!)".contains("high"))
        try "a,b,y\n1,2,0.5\n3,4,\n".write(to: table, atomically: true, encoding: .utf8)
        let empty = #expect(throws: DataError.self) { try source.load() }
        #expect("\(empty!)".contains("row 1") && "\(empty!)".contains("empty"))
        try "a,b,y\n1,2,0.5\n3,4,0.5\n5,7,0.5\n".write(to: table, atomically: true, encoding: .utf8)
        let constant = try source.load().train
        #expect(constant.constantTargets == ["y"])

        var pictures = DataSource(path: dir.path, format: .images)
        pictures.task = .regression
        let refused = #expect(throws: DataError.self) { try pictures.load() }
        #expect("\(refused!)".contains("--task regression"))

        let values: [Float] = [1e4, 2.5e4, -3e3, 7e3]
        let samples = try LabeledSamples(values: .floats([1, 2, 3, 4]), sampleShape: [1], targets: values, targetNames: ["y"])
        var standardized = samples
        let scaling = Standardization(fittingTargetsOf: samples)
        scaling.applyToTargets(of: &standardized)
        let mean = standardized.targets.reduce(0, +) / 4
        #expect(abs(mean) < 1e-6)
        var back = standardized.targets
        scaling.restore(&back)
        for (a, b) in zip(back, values) { #expect(abs(a - b) <= 1e-3) }
        let nan = #expect(throws: DataError.self) {
            try LabeledSamples(values: .floats([1, 2]), sampleShape: [1], targets: [1, .nan], targetNames: ["y"], file: "n.npy")
        }
        #expect("\(nan!)".contains("n.npy") && "\(nan!)".contains("row 1") && "\(nan!)".contains("target y"))
    }

    /// Integers sort as numbers and text as text; whole numbers written as decimals are integers; a fraction is a
    /// regression target and an unknown class is refused, each naming the row.
    @Test func classesAreNumberedInSortedOrder() throws {
        let numbers = try ClassLabels.number(["10", "9", " 2", "9", "2.0", "-1"], file: "f", what: "column y")
        #expect(numbers.names == ["-1", "2", "9", "10"] && numbers.labels == [3, 2, 1, 2, 1, 0])
        let text = try ClassLabels.number(["b", "a", "c", "a"], file: "f", what: "column y")
        #expect(text.names == ["a", "b", "c"] && text.labels == [1, 0, 2, 0])
        let known = try ClassLabels.number(["c", "a"], known: ["a", "b", "c"], file: "f", what: "column y")
        #expect(known.labels == [2, 0])
        let fraction = #expect(throws: DataError.self) { try ClassLabels.number(["1", "2.5"], file: "f.csv", what: "column y") }
        #expect("\(fraction!)".contains("f.csv") && "\(fraction!)".contains("2.5") && "\(fraction!)".contains("row 1"))
        let unknown = #expect(throws: DataError.self) { try ClassLabels.number(["a", "d"], known: ["a", "b"], file: "f.csv", what: "column y") }
        #expect("\(unknown!)".contains("row 1") && "\(unknown!)".contains("\"d\""))
        let empty = #expect(throws: DataError.self) { try ClassLabels.number(["a", " "], file: "f.csv", what: "column y") }
        #expect("\(empty!)".contains("row 1") && "\(empty!)".contains("empty"))
    }

    /// Each class gives its rounded share to the test part, drawn by the seed: the parts are disjoint, cover the set,
    /// keep the source's order, and the same seed draws the same samples.
    @Test func theTestSplitIsStratifiedAndSeeded() throws {
        var g = SeededGenerator(seed: 11)
        let labels = (0..<503).map { _ in Int32(g.uniform(below: 7) < 5 ? 0 : g.uniform(below: 3)) }
        let values = (0..<503 * 3).map { Float($0) }
        let set = try LabeledSamples(values: .floats(values), sampleShape: [3], labels: labels, classNames: ["x", "y", "z"])
        let (train, test) = try set.splittingOffTest(fraction: 0.3, seed: 4)
        for c in 0..<3 {
            let n = set.labelHistogram[c]
            #expect(test.labelHistogram[c] == Int((Double(n) * 0.3).rounded()))
            #expect(train.labelHistogram[c] == n - test.labelHistogram[c])
        }
        // Rows are identified by their first value (3 × the row).
        func rows(_ s: LabeledSamples) -> [Int] {
            guard case .floats(let v) = s.values else { return [] }
            return stride(from: 0, to: v.count, by: 3).map { Int(v[$0]) / 3 }
        }
        let all = rows(train) + rows(test)
        #expect(Set(all).count == 503 && rows(train) == rows(train).sorted() && rows(test) == rows(test).sorted())
        #expect(try set.splittingOffTest(fraction: 0.3, seed: 4).test == test)
        #expect(try set.splittingOffTest(fraction: 0.3, seed: 5).test != test)
        #expect(throws: DataError.self) { try set.splittingOffTest(fraction: 1, seed: 4) }
    }

    /// Means and standard deviations against the two-pass formula in Double, on random columns far from zero; a
    /// constant column keeps a divisor of 1; applying it gives mean 0 and deviation 1.
    @Test func standardizationMatchesItsDefinition() throws {
        var g = SeededGenerator(seed: 2)
        let rows = 301, f = 4
        var values = [Float]()
        for _ in 0..<rows { values += [Float(1e4 + g.gaussian() * 3), Float(g.gaussian() * 1e-3), 5, Float(g.gaussian())] }
        var set = try LabeledSamples(values: .floats(values), sampleShape: [f], labels: [Int32](repeating: 0, count: rows), classNames: ["a"])
        let s = Standardization(fitting: set)
        for j in 0..<f {
            let column = (0..<rows).map { Double(values[$0 * f + j]) }
            let mean = column.reduce(0, +) / Double(rows)
            let std = (column.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(rows)).squareRoot()
            #expect(abs(s.mean[j] - mean) <= 1e-12 * max(1, abs(mean)))
            if j == 2 { #expect(s.standardDeviation[j] == 1) } else { #expect(abs(s.standardDeviation[j] - std) <= 1e-10 * std) }
        }
        #expect(s.constantFeatures == [2])
        s.apply(to: &set)
        let again = Standardization(fitting: set)
        for j in [0, 1, 3] {
            #expect(abs(again.mean[j]) < 1e-6 && abs(again.standardDeviation[j] - 1) < 1e-6, "feature \(j): mean \(again.mean[j]), std \(again.standardDeviation[j])")
        }
        // Fitted on a subset: only those rows count.
        let some = Standardization(fitting: try LabeledSamples(values: .floats(values), sampleShape: [f], labels: [Int32](repeating: 0, count: rows), classNames: ["a"]), indices: [0, 1])
        #expect(some.mean[3] == (Double(values[3]) + Double(values[7])) / 2)
    }
}
