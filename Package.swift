// swift-tools-version:6.1
import PackageDescription

// Floors, from the ground up: data (MNIST) → core (MLPCore) → backends side by side → the `mlp` tool.
// Nothing imports upward and no backend imports another.
let package = Package(
    name: "mlp",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "mlp", targets: ["mlp"]),
        .library(name: "MLP", targets: ["MNIST", "MLPCore", "NaiveBackend"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // zlib, linked as a system library: gzip IDX files and PNG's deflate streams.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", providers: [.apt(["zlib1g-dev"])]),
        .target(
            name: "MNIST",
            dependencies: ["CZlib", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(name: "MLPCore", dependencies: ["MNIST"]),
        .target(name: "NaiveBackend", dependencies: ["MLPCore"]),
        .executableTarget(
            name: "mlp",
            dependencies: [
                "MNIST", "MLPCore", "NaiveBackend",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "TestSupport", dependencies: ["CZlib", "MNIST", "MLPCore"], path: "Tests/TestSupport"),
        .testTarget(name: "MNISTTests", dependencies: ["MNIST", "TestSupport"]),
        .testTarget(name: "MLPCoreTests", dependencies: ["MNIST", "MLPCore", "NaiveBackend", "TestSupport"]),
        .testTarget(name: "NaiveBackendTests", dependencies: ["MNIST", "NaiveBackend", "MLPCore", "TestSupport"]),
        .testTarget(name: "mlpTests", dependencies: ["mlp", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
