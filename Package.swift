// swift-tools-version:6.1
import Foundation
import PackageDescription

// Floors, from the ground up: data (MNIST) → core (MLPCore) → backends side by side → the `mlp` tool.
// Nothing imports upward and no backend imports another.
let package = Package(
    name: "mlp",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "mlp", targets: ["mlp"]),
        .library(name: "MLP", targets: ["MNIST", "MLPCore", "NaiveBackend", "CPUBackend", "CUDABackend", "BackendChecks"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        // .npz archives (NumPy's zip of .npy files).
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
        // `swift package generate-documentation --target MLPCore`: the API reference (Sources/MLPCore/MLPCore.docc).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // zlib, linked as a system library: gzip IDX files and PNG's deflate streams.
        // (Not named CZlib: ZIPFoundation has a module of that name.)
        .systemLibrary(name: "SystemZlib", path: "Sources/SystemZlib", providers: [.apt(["zlib1g-dev"])]),
        .target(
            name: "MNIST",
            dependencies: ["SystemZlib", .product(name: "Crypto", package: "swift-crypto"), .product(name: "ZIPFoundation", package: "ZIPFoundation")]
        ),
        .target(name: "MLPCore", dependencies: ["MNIST"]),
        .target(name: "NaiveBackend", dependencies: ["MLPCore"]),
        // The cpu backend. Its kernels are written once, generic over the instruction set (CPUKernels), and
        // specialised in one module per ISA compiled for that ISA; the backend picks one at run time.
        .target(name: "CCPUFeatures"),
        // bf16 products on AVX-512 BF16 (vdpbf16ps has no Swift spelling); -O3 and unrolling keep the register tile's
        // 24 accumulators in registers.
        .target(name: "CBF16GEMM", cSettings: [.unsafeFlags(["-O3", "-funroll-loops"])]),
        .target(name: "CPUKernels", dependencies: ["MLPCore", "CCPUFeatures"]),
        .target(
            name: "CPUKernelsAVX512", dependencies: ["CPUKernels"],
            swiftSettings: [.unsafeFlags(["-target-cpu", "skylake-avx512"], .when(platforms: [.linux]))]),
        .target(
            name: "CPUKernelsAVX2", dependencies: ["CPUKernels"],
            swiftSettings: [.unsafeFlags(["-target-cpu", "haswell"], .when(platforms: [.linux]))]),
        .target(
            name: "CPUBackend",
            dependencies: [
                "MLPCore", "CPUKernels", "CCPUFeatures", "CBF16GEMM",
                .target(name: "CPUKernelsAVX512", condition: .when(platforms: [.linux])),
                .target(name: "CPUKernelsAVX2", condition: .when(platforms: [.linux])),
            ]),
        // The cuda backend: the driver API, NVRTC and cuBLAS opened at run time (nothing to link).
        .target(name: "CUDABackend", dependencies: ["MLPCore", .product(name: "Crypto", package: "swift-crypto")]),
        // Every backend operation checked against a Double computation of its definition: `mlp check` and the tests.
        .target(name: "BackendChecks", dependencies: ["MNIST", "MLPCore"]),
        .executableTarget(
            name: "mlp",
            dependencies: [
                "MNIST", "MLPCore", "NaiveBackend", "CPUBackend", "CUDABackend", "BackendChecks",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "TestSupport", dependencies: ["SystemZlib", "MNIST", "MLPCore", "BackendChecks"], path: "Tests/TestSupport"),
        .testTarget(name: "MNISTTests", dependencies: ["MNIST", "TestSupport"]),
        .testTarget(name: "MLPCoreTests", dependencies: ["MNIST", "MLPCore", "NaiveBackend", "TestSupport"]),
        .testTarget(name: "NaiveBackendTests", dependencies: ["MNIST", "NaiveBackend", "MLPCore", "TestSupport"]),
        .target(name: "CAllocationCounter", path: "Tests/CAllocationCounter"),
        .testTarget(name: "CPUBackendTests", dependencies: ["MNIST", "MLPCore", "NaiveBackend", "CPUBackend", "CPUKernels", "CBF16GEMM", "TestSupport", "CAllocationCounter"]),
        .testTarget(name: "CUDABackendTests", dependencies: ["MNIST", "MLPCore", "CUDABackend", "TestSupport", "CAllocationCounter"]),
        .testTarget(name: "mlpTests", dependencies: ["mlp", "MNIST", "MLPCore", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)

// The fuzz harnesses of the parsers that read untrusted files (IDX, .npy, CSV and safetensors checkpoints), libFuzzer
// entry points without a `main`: they exist only when Fuzz/run.sh builds them (MLP_FUZZ=1, with
// `-sanitize=fuzzer,address -parse-as-library`), so that a plain build or `swift test` never sees them.
if ProcessInfo.processInfo.environment["MLP_FUZZ"] == "1" {
    package.targets += [
        .target(name: "CFuzzMain", path: "Fuzz/CFuzzMain"),
        .executableTarget(name: "FuzzIDX", dependencies: ["MNIST", "CFuzzMain"], path: "Fuzz/FuzzIDX"),
        .executableTarget(name: "FuzzCheckpoint", dependencies: ["MLPCore", "CFuzzMain"], path: "Fuzz/FuzzCheckpoint"),
        .executableTarget(name: "FuzzNumPy", dependencies: ["MNIST", "CFuzzMain"], path: "Fuzz/FuzzNumPy"),
        .executableTarget(name: "FuzzCSV", dependencies: ["MNIST", "CFuzzMain"], path: "Fuzz/FuzzCSV"),
    ]
}
