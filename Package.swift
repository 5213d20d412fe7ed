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
        .executable(name: "RegionFuzz", targets: ["RegionFuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
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
        .systemLibrary(
            name: "CMicroHTTPD",
            pkgConfig: "libmicrohttpd",
            providers: [.apt(["libmicrohttpd-dev"])]
        ),
        .target(
            name: "RegionServer",
            dependencies: [
                "MemoryPool",
                "CMicroHTTPD",
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
                "RegionServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "RegionFuzz",
            dependencies: [
                "RegionServer",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MemoryPoolTests",
            dependencies: ["MemoryPool"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RegionServerTests",
            dependencies: [
                "RegionServer",
                "regiond",
                "RegionFuzz",
                "MemoryPool",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
