// swift-tools-version:6.2
import Foundation
import PackageDescription

/// Release builds of our modules let the optimizer inline and specialize across module
/// boundaries (the per-event path runs through EventModel, Ingest, Sigma and Findings), and put
/// each function in a section of its own, for the linker to place (below).
let optimized: [SwiftSetting] = [
    .unsafeFlags(["-cross-module-optimization", "-Xfrontend", "-function-sections"], .when(configuration: .release))
]

/// Release links lay functions out by the call graph of the per-line path, measured by
/// scripts/link-order.sh: a caller and its hot callees share cache lines and pages of code.
/// (The scan runs about 4 % faster than with the default layout.) lld comes with the toolchain.
let linkOrder = Context.packageDirectory + "/scripts/link-order.txt"
let laidOut: [LinkerSetting] =
    FileManager.default.fileExists(atPath: linkOrder)
    ? [
        .unsafeFlags(
            ["-use-ld=lld", "-Xlinker", "--call-graph-ordering-file=" + linkOrder, "-Xlinker", "--no-warn-symbol-ordering"],
            .when(configuration: .release))
    ] : []

/// logtriage allocates with jemalloc (Debian's libjemalloc-dev) when it is installed: the scan
/// allocates a few small blocks per line (field lists, evidence, findings) and runs about 3.5 %
/// faster than on glibc's malloc. Linked as a shared library, listed before libc, so that every
/// library of the process allocates and frees through it. (Linked statically, its symbols would
/// stay local to the binary under the static Swift runtime's `--exclude-libs ALL`, and memory
/// from libc or libsystemd would be freed into the wrong allocator.) Without it, glibc's.
/// The tests link it too.
let jemallocInstalled = ["/usr/lib/x86_64-linux-gnu/libjemalloc.so", "/usr/lib/aarch64-linux-gnu/libjemalloc.so"]
    .contains { FileManager.default.fileExists(atPath: $0) }
let allocator: [LinkerSetting] = jemallocInstalled ? [.linkedLibrary("jemalloc")] : []

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
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.24.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
    ],
    targets: [
        .target(name: "EventModel", swiftSettings: optimized),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .target(name: "Ingest", dependencies: ["EventModel", "CSystemd"], swiftSettings: optimized),
        .target(name: "Sigma", dependencies: ["EventModel", .product(name: "Yams", package: "Yams")], swiftSettings: optimized),
        .target(name: "Findings", dependencies: ["EventModel", "Sigma"], swiftSettings: optimized),
        .target(
            name: "Triage",
            dependencies: [
                "EventModel", "Sigma", "Findings",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .target(
            name: "Daemon",
            dependencies: [
                "EventModel", "Ingest", "Sigma", "Findings", "Triage", "CSystemd",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: optimized
        ),
        .executableTarget(
            name: "logtriage",
            dependencies: [
                "Daemon", "Triage", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            linkerSettings: laidOut + allocator
        ),
        .target(
            name: "TestSupport",
            dependencies: [
                "EventModel", "Ingest", "Sigma", "Findings", "Daemon",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            // The test processes allocate as the daemon does.
            linkerSettings: allocator
        ),
        .testTarget(name: "EventModelTests", dependencies: ["EventModel", "TestSupport"]),
        .testTarget(name: "IngestTests", dependencies: ["Ingest", "TestSupport"]),
        .testTarget(name: "SigmaTests", dependencies: ["Sigma", "Ingest", "TestSupport"]),
        .testTarget(name: "FindingsTests", dependencies: ["Findings", "TestSupport"]),
        .testTarget(name: "TriageTests", dependencies: ["Triage", "TestSupport"]),
        .testTarget(name: "DaemonTests", dependencies: ["Daemon", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
