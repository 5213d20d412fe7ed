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
    targets: [
        .target(
            name: "MemoryPool",
            dependencies: [],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MemoryPoolTests",
            dependencies: ["MemoryPool"],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
