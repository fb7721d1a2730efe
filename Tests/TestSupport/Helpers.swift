import Foundation
import MLPCore
import MNIST

/// A fresh temporary directory, removed by the caller with `removeItem` when done.
public func temporaryDirectory(_ name: String = #function) throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("mlp-tests-\(name.filter { $0.isLetter || $0.isNumber })-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// `count` random floats in `range` (never all zeros).
public func randomFloats(_ count: Int, in range: ClosedRange<Float> = -1...1, using generator: inout SeededGenerator) -> [Float] {
    (0..<count).map { _ in range.lowerBound + Float(generator.unitDouble()) * (range.upperBound - range.lowerBound) }
}

/// The repository's root (for the bundled data and the built tool).
public let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The bundled MNIST directory.
public var bundledMNIST: URL { packageRoot.appendingPathComponent("Data/mnist") }

/// A small synthetic labelled image set: `count` images of `rows × columns` random bytes; the label of an image
/// is the position of the brightest of its first `classes` pixels, a rule a small network can learn.
public func syntheticImages(count: Int, rows: Int = 5, columns: Int = 3, classes: Int = 4, seed: UInt64 = 1) -> LabeledImages {
    precondition(rows * columns >= classes)
    var g = SeededGenerator(seed: seed)
    let pixels = (0..<count * rows * columns).map { _ in UInt8(g.uniform(below: 256)) }
    let labels = (0..<count).map { i -> UInt8 in
        let first = pixels[i * rows * columns..<i * rows * columns + classes]
        return UInt8(first.indices.max { first[$0] < first[$1] }! - first.startIndex)
    }
    return try! LabeledImages(pixels: pixels, labels: labels, rows: rows, columns: columns, classCount: classes)
}

/// Runs a program and returns its exit status, standard output and standard error.
public func runProcess(_ executable: URL, _ arguments: [String], currentDirectory: URL? = nil, environment: [String: String]? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    if let currentDirectory { process.currentDirectoryURL = currentDirectory }
    if let environment { process.environment = environment }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Read both pipes while the child runs, so neither fills up and blocks it.
    nonisolated(unsafe) var errData = Data()
    let reader = Thread { errData = err.fileHandleForReading.readDataToEndOfFile() }
    reader.start()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    while !reader.isFinished { usleep(1000) }
    return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
}

/// The `mlp` tool built beside the test binary (the test target depends on it, so it is built first).
public func mlpExecutable() throws -> URL {
    let selfPath = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var dir = URL(fileURLWithPath: selfPath).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("mlp")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    throw POSIXError(.ENOENT)
}
