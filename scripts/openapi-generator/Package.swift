// swift-tools-version:6.1
import PackageDescription

/// swift-openapi-generator's command-line tool, kept out of the root package
/// so that building and testing regiond never fetches or builds the generator
/// (OpenAPIKit, Yams). scripts/generate-client.sh runs it.
let package = Package(
    name: "regiond-openapi-generator",
    dependencies: [
        .package(url: "https://github.com/apple/swift-openapi-generator", exact: "1.14.3"),
    ],
    targets: []
)
