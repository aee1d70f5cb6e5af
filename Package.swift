// swift-tools-version:6.2
import PackageDescription

let package = Package(
    name: "logtriage",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "logtriage", targets: ["logtriage"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        .target(name: "EventModel"),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .target(name: "Ingest", dependencies: ["EventModel"]),
        .target(name: "Sigma", dependencies: ["EventModel", .product(name: "Yams", package: "Yams")]),
        .target(name: "Findings", dependencies: ["EventModel", "Sigma"]),
        .target(name: "Triage", dependencies: ["EventModel", "Findings"]),
        .target(
            name: "Daemon",
            dependencies: [
                "EventModel", "Ingest", "Sigma", "Findings", "Triage",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "logtriage",
            dependencies: ["Daemon", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .target(name: "TestSupport", dependencies: ["EventModel", "Ingest", "Sigma", "Findings", "Daemon"]),
        .testTarget(name: "EventModelTests", dependencies: ["EventModel", "TestSupport"]),
        .testTarget(name: "IngestTests", dependencies: ["Ingest", "TestSupport"]),
        .testTarget(name: "SigmaTests", dependencies: ["Sigma", "Ingest", "TestSupport"]),
        .testTarget(name: "FindingsTests", dependencies: ["Findings", "TestSupport"]),
        .testTarget(name: "DaemonTests", dependencies: ["Daemon", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
