// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "PruneSweep",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Model", targets: ["Model"]),
        .library(name: "Protocol", targets: ["Protocol"]),
        .executable(name: "worker", targets: ["WorkerCLI"]),
        .executable(name: "coordinator", targets: ["CoordinatorCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.0"..<"5.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .systemLibrary(
            name: "CZeroMQ",
            providers: [.apt(["libzmq3-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // The git commit and dirty flag of the build (scripts/build-stamp.sh, run by the plugin).
        .plugin(
            name: "BuildStampPlugin",
            capability: .buildTool()
        ),
        .target(
            name: "BuildStamp",
            plugins: ["BuildStampPlugin"]
        ),
        // A digest of the convolution kernels' sources (scripts/kernel-stamp.sh, run by the
        // plugin): part of the key of the sparse engine's measured per-layer verdicts.
        .target(
            name: "KernelStamp",
            plugins: ["BuildStampPlugin"]
        ),
        // The 3×3 stride-1 convolution without im2col, in C for per-function AVX2/AVX-512
        // code chosen at run time (Swift compiles for baseline x86-64).
        .target(name: "DirectConvolution"),
        // The sparse engine's inner loops: AVX2+FMA chosen at run time (Swift compiles for
        // baseline x86-64, without FMA), a portable version elsewhere.
        .target(
            name: "CSparse"
        ),
        // BatchNorm's passes over the data: AVX-512, AVX2 or baseline code chosen at load time.
        .target(name: "CBatchNorm"),
        .target(
            name: "Model",
            dependencies: [
                "CBLAS", "CBatchNorm", "CSparse", "CZlib", "DirectConvolution", "KernelStamp",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "Protocol",
            dependencies: ["CZeroMQ"]
        ),
        // What the worker and the coordinator both run: task specs, the step runner, the
        // artifact store. Kept apart so that a worker links no journal (GRDB/SQLite) code.
        .target(
            name: "TaskRuntime",
            dependencies: [
                "Model",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Log lines with time, level and source: human lines to the terminal, JSON lines to a file.
        .target(
            name: "SweepLog",
            dependencies: [.product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "Coordinator",
            dependencies: [
                "BuildStamp", "Model", "Protocol", "SweepLog", "TaskRuntime",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["CLI"]
        ),
        // The coordinator's HTTP side: the live dashboard and /metrics. Only the coordinator
        // program links it, so workers carry no HTTP server or metrics backend.
        .target(
            name: "Monitoring",
            dependencies: [
                "Coordinator", "Protocol",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ]
        ),
        .executableTarget(
            name: "CoordinatorCLI",
            dependencies: [
                "BuildStamp", "Coordinator", "Model", "Monitoring", "Protocol", "SweepLog", "TaskRuntime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Coordinator/CLI"
        ),
        .target(
            name: "Worker",
            dependencies: ["BuildStamp", "Model", "Protocol", "SweepLog", "TaskRuntime",
                           .product(name: "Logging", package: "swift-log")],
            exclude: ["CLI"]
        ),
        .executableTarget(
            name: "WorkerCLI",
            dependencies: [
                "BuildStamp", "Model", "Protocol", "SweepLog", "TaskRuntime", "Worker",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Worker/CLI"
        ),
        .testTarget(
            name: "ModelTests",
            dependencies: ["Model"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "CoordinatorTests",
            dependencies: ["BuildStamp", "Coordinator", "CoordinatorCLI", "Monitoring", "Protocol", "SweepLog", "TaskRuntime", "WorkerCLI",
                           .product(name: "Logging", package: "swift-log")],
            // Read from the source tree (`#filePath`), so no copy goes into the test bundle.
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "ProtocolTests",
            dependencies: ["Protocol"]
        ),
        .testTarget(
            name: "TaskRuntimeTests",
            dependencies: ["Model", "TaskRuntime"]
        ),
        .testTarget(
            name: "WorkerTests",
            dependencies: ["Model", "TaskRuntime", "Worker", "WorkerCLI"]
        ),
    ]
)
