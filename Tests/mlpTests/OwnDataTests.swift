import Foundation
import MLPCore
import MNIST
import Testing
import TestSupport

/// `mlp` on data of one's own, as a user runs it: a table trained, evaluated on the same held-out rows, and its
/// classes predicted by name from rows without the class column; an archive with its own test part; and each bad
/// input refused with a message naming the file, row or column, a non-zero exit and nothing written.
@Suite(.serialized) struct OwnDataTests {
    let mlp: URL
    init() throws { mlp = try mlpExecutable() }

    /// A table of 400 rows: an id, four numeric features on unlike scales, and a text class decided by two of them.
    func writeTable(_ url: URL, rows: Int = 400, header: String = "id,width,height,weight,noise,kind") throws {
        var g = SeededGenerator(seed: 8)
        var text = header + "\n"
        for i in 0..<rows {
            let width = g.gaussian(), height = 1000 + 100 * g.gaussian(), weight = 0.01 * g.gaussian(), noise = g.gaussian()
            let kind = width + (height - 1000) / 100 > 0.3 ? "tall" : (width < -0.8 ? "\"short, wide\"" : "round")
            text += "\(i),\(width),\(height),\(weight),\(noise),\(kind)\n"
        }
        try text.write(to: url, atomically: true, encoding: .utf8)
    }

    func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try runProcess(mlp, arguments, currentDirectory: FileManager.default.temporaryDirectory)
    }

    @Test func aTableIsTrainedEvaluatedAndPredicted() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let table = dir.appendingPathComponent("shapes.csv")
        try writeTable(table)
        let out = dir.appendingPathComponent("run")
        let train = try run(["train", "--data", table.path, "--ignore", "id", "--hidden", "24", "--epochs", "25", "--batch-size", "16",
                             "--lr", "0.01", "--backend", "cpu", "--output", out.path, "--no-progress"])
        #expect(train.status == 0, "\(train.stderr)")
        #expect(train.stdout.contains("training 4,24,3"))
        // A fifth of each class, rounded: 80 of the 400 give or take a sample for each of the three classes.
        let held = train.stdout.firstMatch(of: /test set: (\d+) samples/).map { Int($0.1)! } ?? 0
        #expect(abs(held - 80) <= 2, "\(train.stdout)")
        let accuracy = train.stdout.firstMatch(of: /test accuracy ([\d.]+)%/).map { Double($0.1)! }
        #expect((accuracy ?? 0) > 85, "\(train.stdout)")
        let checkpoint = out.appendingPathComponent("last.safetensors").path

        // The same held-out rows, by the checkpoint's seed: the same accuracy as training's last line.
        let eval = try run(["eval", "--checkpoint", checkpoint, "--data", table.path, "--test-fraction", "0.2", "--backend", "naive"])
        #expect(eval.status == 0, "\(eval.stderr)")
        let evalAccuracy = eval.stdout.firstMatch(of: /test accuracy ([\d.]+)%/).map { Double($0.1)! }
        #expect(evalAccuracy == accuracy, "\(eval.stdout)")
        #expect(eval.stdout.contains("0 round, 1 \"short, wide\"") || eval.stdout.contains("classes: 0 round"), "\(eval.stdout)")

        // Rows without the class column, the columns in another order: predictions by name, as CSV.
        var rows = "noise,height,width,weight\n"
        rows += "0.1,1400,2.0,0\n0.0,1000,-2.0,0.01\n"
        let unlabelled = dir.appendingPathComponent("new.csv")
        try rows.write(to: unlabelled, atomically: true, encoding: .utf8)
        let predictions = dir.appendingPathComponent("predictions.csv")
        let predict = try run(["predict", "--checkpoint", checkpoint, "--data", unlabelled.path, "--output", predictions.path, "--backend", "cpu"])
        #expect(predict.status == 0, "\(predict.stderr)")
        let lines = try String(contentsOf: predictions, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.first == "row,prediction,p_round,p_\"short, wide\",p_tall" || lines.first == "row,prediction,p_round,\"p_short, wide\",p_tall", "\(lines)")
        #expect(lines.count == 3 && lines[1].hasPrefix("0,tall,") && lines[2].hasPrefix("1,\"short, wide\","), "\(lines)")
    }

    @Test(.enabled(if: DataSourceTestsReady.numpy, "python3 with numpy is not installed (pip install numpy)"))
    func anArchiveTrainsOnItsOwnTestPart() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = """
            import sys, numpy as np
            rng = np.random.default_rng(1)
            x = rng.integers(0, 256, (300, 4, 5), dtype=np.uint8)
            y = (x[:, 0, 0] > x[:, 3, 4]).astype(np.int32) + 2 * (x[:, 1, 1] > 128)
            np.savez(sys.argv[1], x_train=x[:250], y_train=y[:250], x_test=x[250:], y_test=y[250:])
            """
        let archive = dir.appendingPathComponent("a.npz")
        let python = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script, archive.path])
        #expect(python.status == 0, "\(python.stderr)")
        let train = try run(["train", "--data", archive.path, "--hidden", "16", "--epochs", "3", "--batch-size", "25", "--backend", "naive"])
        #expect(train.status == 0, "\(train.stderr)")
        #expect(train.stdout.contains("training 20,16,4") && train.stdout.contains("on 250 samples") && !train.stdout.contains("split off"))
        let fraction = try run(["train", "--data", archive.path, "--test-fraction", "0.1", "--backend", "naive"])
        #expect(fraction.status != 0 && fraction.stderr.contains("--test-fraction") && fraction.stderr.contains("test part of its own"))

        // A .npy pair of floats (standardised for training): predictions from the samples alone are those made
        // with their labels beside them, and the default batch shrinks to the 32 training samples.
        let pair = """
            import sys, os, numpy as np
            rng = np.random.default_rng(2)
            x = rng.standard_normal((40, 3)) * [1, 100, 0.01] + [0, 50, 3]
            np.save(os.path.join(sys.argv[1], "x.npy"), x)
            np.save(os.path.join(sys.argv[1], "y.npy"), (x[:, 0] > 0).astype(np.uint8))
            """
        #expect(try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", pair, dir.path]).status == 0)
        let x = dir.appendingPathComponent("x.npy").path, y = dir.appendingPathComponent("y.npy").path
        let out = dir.appendingPathComponent("pair").path
        let fit = try run(["train", "--data", x, "--labels", y, "--hidden", "6", "--epochs", "5", "--backend", "cpu", "--output", out])
        #expect(fit.status == 0 && fit.stdout.contains("batch 32"), "\(fit.stdout) \(fit.stderr)")
        let bare = try run(["predict", "--checkpoint", out + "/last.safetensors", "--data", x, "--backend", "cpu"])
        let labelled = try run(["predict", "--checkpoint", out + "/last.safetensors", "--data", x, "--labels", y, "--backend", "cpu"])
        #expect(bare.status == 0 && labelled.status == 0, "\(bare.stderr) \(labelled.stderr)")
        let bareRows = bare.stdout.split(separator: "\n").dropFirst()
        let labelledRows = labelled.stdout.split(separator: "\n").dropFirst().map { $0.split(separator: ",").dropLast().joined(separator: ",") }
        #expect(bareRows.count == 40 && Array(bareRows.map(String.init)) == labelledRows)
    }

    /// A binary PGM of `width × height` bytes.
    func writePGM(_ url: URL, width: Int, height: Int, pixels: [UInt8]) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try (Data("P5\n\(width) \(height)\n255\n".utf8) + Data(pixels)).write(to: url)
    }

    /// Picture folders with a test part of their own: the classes are the folder names, the pictures their bytes; an
    /// empty class and a picture of another size are refused by name.
    @Test func pictureFoldersAreTrainedAndBadOnesRefused() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var g = SeededGenerator(seed: 4)
        let root = dir.appendingPathComponent("shapes")
        for (split, count) in [("train", 40), ("test", 9)] {
            for (c, name) in ["dark", "light"].enumerated() {
                for i in 0..<count {
                    let pixels = (0..<35).map { _ in UInt8(g.uniform(below: 100) + 120 * c) }
                    try writePGM(root.appendingPathComponent("\(split)/\(name)/\(i).pgm"), width: 5, height: 7, pixels: pixels)
                }
            }
        }
        let train = try run(["train", "--data", root.path, "--hidden", "8", "--epochs", "10", "--batch-size", "8", "--lr", "0.01", "--backend", "cpu"])
        #expect(train.status == 0, "\(train.stderr)")
        #expect(train.stdout.contains("training 35,8,2") && train.stdout.contains("on 80 samples") && (train.stdout.firstMatch(of: /test accuracy ([\d.]+)%/).map { Double($0.1)! } ?? 0) > 90, "\(train.stdout)")

        try writePGM(root.appendingPathComponent("train/light/odd.pgm"), width: 6, height: 7, pixels: [UInt8](repeating: 9, count: 42))
        try expectFailure(["train", "--data", root.path], ["odd.pgm", "6×7 pixels", "5×7"])
        try FileManager.default.removeItem(at: root.appendingPathComponent("train/light/odd.pgm"))
        try FileManager.default.createDirectory(at: root.appendingPathComponent("train/empty"), withIntermediateDirectories: true)
        try expectFailure(["train", "--data", root.path], ["train/empty", "holds no pictures"])
    }

    /// A regression as a user runs one: a table whose target is a price in the thousands is recognised as one,
    /// trained (its RMSE reported in the price's own units, well under the price's spread), evaluated on the same
    /// held-out rows to the same figures, and predicted in its units from rows without the target; with Huber's
    /// loss too; and losses of the other task refused.
    @Test func aRegressionIsTrainedEvaluatedAndPredicted() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var g = SeededGenerator(seed: 12)
        var text = "id,rooms,area,age,price\n"
        for i in 0..<500 {
            let rooms = Double(1 + g.uniform(below: 6)), area = 40 + 30 * rooms + 10 * g.gaussian(), age = 50 * g.unitDouble()
            let price = 20_000 + 1_500 * area - 300 * age + 500 * g.gaussian()
            text += "\(i),\(Int(rooms)),\(area),\(age),\(price)\n"
        }
        let table = dir.appendingPathComponent("houses.csv")
        try text.write(to: table, atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("run")
        let train = try run(["train", "--data", table.path, "--ignore", "id", "--hidden", "32", "--epochs", "30", "--batch-size", "16",
                             "--lr", "0.01", "--backend", "cpu", "--output", out.path, "--no-progress"])
        #expect(train.status == 0, "\(train.stderr)")
        #expect(train.stdout.contains("training 3,32,1 (relu, squared-error)"), "\(train.stdout)")
        #expect(train.stdout.contains("rmse") && !train.stdout.contains(" acc "), "\(train.stdout)")
        // The price spreads over about 75,000 (one standard deviation): the model's RMSE is a small part of it.
        let figures = try #require(train.stdout.firstMatch(of: /test RMSE ([\d.e+]+), MAE ([\d.e+]+), R² ([-\d.]+)/), "\(train.stdout)")
        let (rmse, r2) = (Double(figures.1)!, Double(figures.3)!)
        #expect(rmse > 100 && rmse < 10_000 && r2 > 0.95, "\(train.stdout)")
        let checkpoint = out.appendingPathComponent("last.safetensors").path

        let eval = try run(["eval", "--checkpoint", checkpoint, "--data", table.path, "--test-fraction", "0.2", "--backend", "naive"])
        #expect(eval.status == 0, "\(eval.stderr)")
        #expect(eval.stdout.contains("test RMSE \(figures.1), MAE \(figures.2), R² \(figures.3)"), "\(eval.stdout)")

        let unlabelled = dir.appendingPathComponent("new.csv")
        try "area,age,rooms\n100,10,2\n250,40,6\n".write(to: unlabelled, atomically: true, encoding: .utf8)
        let predict = try run(["predict", "--checkpoint", checkpoint, "--data", unlabelled.path, "--backend", "cpu"])
        #expect(predict.status == 0, "\(predict.stderr)")
        let lines = predict.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "row,pred_price" && lines.count == 3, "\(lines)")
        // The rule's own prices: 20,000 + 1,500 × area − 300 × age, within a few RMSEs.
        for (line, expected) in zip(lines.dropFirst(), [167_000.0, 383_000.0]) {
            let value = Double(line.split(separator: ",")[1])!
            #expect(abs(value - expected) < 5 * rmse + 5_000, "\(line), expected about \(expected)")
        }

        let huber = try run(["train", "--data", table.path, "--ignore", "id", "--hidden", "16", "--epochs", "2", "--loss", "huber", "--backend", "naive", "--no-progress"])
        #expect(huber.status == 0 && huber.stdout.contains("(relu, huber)"), "\(huber.stderr)")
        try expectFailure(["train", "--data", table.path, "--loss", "cross-entropy"], ["--loss cross-entropy", "regression"])
        try expectFailure(["train", "--data", table.path, "--target", "rooms", "--ignore", "price", "--loss", "huber"], ["--loss huber", "classes"])
    }

    func expectFailure(_ arguments: [String], _ messages: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let r = try run(arguments)
        #expect(r.status != 0, "exit status 0 for \(arguments)", sourceLocation: sourceLocation)
        for m in messages { #expect(r.stderr.contains(m), "stderr: \(r.stderr)", sourceLocation: sourceLocation) }
        #expect(!r.stderr.contains("Fatal error") && !r.stderr.contains("Stack dump"), sourceLocation: sourceLocation)
    }

    @Test func badTablesAreRefusedByFileLineAndColumn() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        func file(_ name: String, _ text: String) throws -> String {
            let url = dir.appendingPathComponent(name)
            try text.write(to: url, atomically: true, encoding: .utf8)
            return url.path
        }
        let out = dir.appendingPathComponent("out").path
        let ragged = try file("ragged.csv", "a,b,y\n1,2,x\n3,4\n")
        try expectFailure(["train", "--data", ragged, "--output", out], [ragged, "line 3", "2 fields"])
        let text = try file("text.csv", "a,b,y\n1,2,x\n3,abc,z\n")
        try expectFailure(["train", "--data", text, "--output", out], [text, "line 3", "column b", "\"abc\" is not a number"])
        let empty = try file("empty.csv", "a,b,y\n1,,x\n")
        try expectFailure(["train", "--data", empty, "--output", out], [empty, "line 2", "column b", "empty cell"])
        let nan = try file("nan.csv", "a,b,y\n1,nan,x\n")
        try expectFailure(["train", "--data", nan, "--output", out], [nan, "line 2", "column b", "not a finite number"])
        let headerOnly = try file("header.csv", "a,b,y\n")
        try expectFailure(["train", "--data", headerOnly, "--output", out], [headerOnly, "no rows"])
        let nothing = try file("nothing.csv", "")
        try expectFailure(["train", "--data", nothing, "--output", out], [nothing, "empty"])
        let good = try file("good.csv", "a,b,y\n1,2,x\n3,4,z\n5,6,x\n7,8,z\n9,1,x\n")
        try expectFailure(["train", "--data", good, "--target", "label", "--output", out], ["--target label", "no such column", "a, b, y"])
        let oneClass = try file("one.csv", "a,b,y\n1,2,x\n3,4,x\n")
        try expectFailure(["train", "--data", oneClass, "--output", out], ["one.csv", "one class"])
        let regression = try file("reg.csv", "a,b,y\n1,2,0.5\n3,4,1.25\n")
        try expectFailure(["train", "--data", regression, "--task", "classification", "--output", out], [regression, "column y", "not classes", "--task regression"])
        try expectFailure(["train", "--data", good, "--layers", "3,8,2", "--output", out], ["--layers 3,8,2", "2 features", "2 classes"])
        try expectFailure(["train", "--data", dir.appendingPathComponent("none.csv").path], ["none.csv", "no such file"])
        try expectFailure(["train", "--data", good, "--delimiter", "ab"], ["--delimiter ab"])
        try expectFailure(["train", "--target", "y"], ["--target applies to --data"])
        // `data info` on such a table: what each column holds, the first problem of each, and the reason, exit 65 (bad data).
        let mixed = try file("mixed.csv", "a,b,c,kind\n1,2,3,x\n4,,6,y\n7,abc,nan,x\n1,2\n5,6,7,z\n")
        let info = try run(["data", "info", "--data", mixed])
        #expect(info.status == 65 && info.stderr.contains("line 3, column b: an empty cell"), "\(info.stderr)")
        #expect(info.stdout.contains("1 record of another width than the header's (the first on line 5)"), "\(info.stdout)")
        #expect(info.stdout.contains("empty on line 3; \"abc\" on line 4") && info.stdout.contains("NaN or infinite on line 4")
                    && info.stdout.contains("text: 3 distinct values"), "\(info.stdout)")
        // Nothing was written for any of them.
        #expect(!FileManager.default.fileExists(atPath: out + "/last.safetensors"))
    }
}

/// Whether python3 with NumPy is here (the archive test writes its file with it).
enum DataSourceTestsReady {
    static let numpy: Bool = {
        guard let r = try? runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", "import numpy"]) else { return false }
        return r.status == 0
    }()
}
