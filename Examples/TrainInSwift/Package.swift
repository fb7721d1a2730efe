// swift-tools-version:6.1
import Foundation
import PackageDescription

// Uses the mlp library from this repository, two folders up, by path. SwiftPM names a path dependency after its
// folder, so the product is looked up under that folder's name (whatever the clone is called).
let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

let package = Package(
    name: "TrainInSwift",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: repository.path)],
    targets: [
        .executableTarget(
            name: "TrainInSwift",
            dependencies: [.product(name: "MLP", package: repository.lastPathComponent)]),
    ],
    swiftLanguageModes: [.v6]
)
