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
        .target(
            name: "Model",
            dependencies: [
                "CBLAS", "CZlib",
                .product(name: "Crypto", package: "swift-crypto"),
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
        .target(
            name: "Coordinator",
            dependencies: [
                "BuildStamp", "Model", "Protocol", "TaskRuntime",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            exclude: ["CLI"]
        ),
        .executableTarget(
            name: "CoordinatorCLI",
            dependencies: [
                "BuildStamp", "Coordinator", "Model", "Protocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/Coordinator/CLI"
        ),
        .target(
            name: "Worker",
            dependencies: ["BuildStamp", "Model", "Protocol", "TaskRuntime"],
            exclude: ["CLI"]
        ),
        .executableTarget(
            name: "WorkerCLI",
            dependencies: [
                "BuildStamp", "Model", "Protocol", "Worker",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
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
            dependencies: ["BuildStamp", "Coordinator", "CoordinatorCLI", "Protocol", "TaskRuntime", "WorkerCLI"]
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
