// swift-tools-version:6.1
import PackageDescription

/// Settings shared by every target (as in apple/swift-log's Package.swift).
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "regiond",
    products: [
        .library(name: "MemoryPool", targets: ["MemoryPool"]),
        .executable(name: "regiond", targets: ["regiond"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .target(
            name: "MemoryPool",
            dependencies: [],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Locking",
            dependencies: [],
            swiftSettings: swiftSettings
        ),
        .systemLibrary(
            name: "CMicroHTTPD",
            pkgConfig: "libmicrohttpd",
            providers: [.apt(["libmicrohttpd-dev"])]
        ),
        .target(
            name: "MicroHTTP",
            dependencies: [
                "CMicroHTTPD",
                "Locking",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RegionState",
            dependencies: [
                "Locking",
                "MemoryPool",
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RegionLog",
            dependencies: ["Locking", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RegionServer",
            dependencies: [
                "Locking",
                "MemoryPool",
                "MicroHTTP",
                "RegionState",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            resources: [.embedInCode("openapi.yaml")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "regiond",
            dependencies: [
                "MicroHTTP",
                "RegionState",
                "RegionServer",
                "RegionLog",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "RegionFuzz",
            dependencies: [
                "Locking",
                "MicroHTTP",
                "RegionState",
                "RegionServer",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "LockingTests",
            dependencies: ["Locking"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MemoryPoolTests",
            dependencies: ["MemoryPool", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "TestSupport",
            dependencies: ["Locking", .product(name: "Logging", package: "swift-log")],
            path: "Tests/TestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MicroHTTPTests",
            dependencies: ["Locking", "MicroHTTP", "TestSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RegionStateTests",
            dependencies: ["Locking", "RegionState", "MemoryPool", "TestSupport", .product(name: "Logging", package: "swift-log")],
            // State directories written by earlier releases, read by path.
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RegionServerTests",
            dependencies: [
                "Locking",
                "RegionServer",
                "RegionState",
                "MicroHTTP",
                "RegionFuzz",
                "MemoryPool",
                "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RegionLogTests",
            dependencies: ["RegionLog", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "regiondTests",
            dependencies: [
                "Locking",
                "regiond",
                "TestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
