// swift-tools-version:6.1
import PackageDescription

/// The allocator's benchmarks, kept out of the root package so that building
/// and testing regiond never fetches or builds the benchmark tooling.
let package = Package(
    name: "regiond-benchmarks",
    dependencies: [
        // A path dependency's identity is its folder's name (main, a clone's
        // folder, CI's), so the root package is named here for `.product` below.
        .package(name: "regiond", path: ".."),
        // The MallocInterposer trait provides the malloc metrics.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "PoolBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "MemoryPool", package: "regiond"),
            ],
            path: "Benchmarks/PoolBenchmarks",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
