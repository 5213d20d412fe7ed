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
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .target(
            name: "MemoryPool",
            dependencies: [],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RegionServer",
            dependencies: [
                "MemoryPool",
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
                "MemoryPool",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
