import Foundation
import Logging
import RegionClient
import RegionServer
import Testing

/// The generated client against a live regiond (in memory, on port 0): what
/// an integration test written in Swift does with the RegionClient product.
@Suite struct RegionClientTests {
    /// A shared, leased region through its whole life, with the typed answers.
    @Test func allocatesSharesRenewsAndReleasesARegion() async throws {
        try await withRegiond { client in
            // Allocate: 201 with the region, a lease and a Location.
            let first = try await client.allocateRegion(
                body: .json(.init(size: 5_000_000, share: "layer-ab12", ttl: 60)))
            let created = try first.created
            let region = try created.body.json
            #expect(region.size == ._16777216)
            #expect(region._class == 2)
            #expect(region.refs == 1)
            #expect(created.headers.location == "/regions/\(region.offset)?id=\(region.id)&ref=\(try #require(region.ref))")
            let expiresAt = try #require(region.expiresAt)

            // Share: the same key joins the region, 200 with a new reference.
            let joined = try await client.allocateRegion(
                body: .json(.init(size: 4_194_305, share: "layer-ab12"))).ok.body.json
            #expect(joined.offset == region.offset && joined.id == region.id)
            #expect(joined.refs == 2)
            #expect(joined.ref != region.ref)

            // Renew the lease: it now ends later than it did.
            let renewed = try await client.renewRegion(
                path: .init(offset: region.offset), query: .init(id: region.id),
                body: .json(.init(ttl: 600))).ok.body.json
            #expect(try #require(renewed.expiresAt) > expiresAt)

            // Release by offset and id: refused while the other reference is
            // held; once it is dropped, the allocation goes.
            let held = try await client.releaseRegion(
                path: .init(offset: region.offset), query: .init(id: region.id)).conflict.body.applicationProblemJson
            #expect(held.code == .referencesHeld)
            #expect(held.refs == 2)
            let dropped = try await client.dropReference(
                path: .init(offset: region.offset, ref: try #require(joined.ref))).ok.body.json
            #expect(dropped.refs == 1)
            let released = try await client.releaseRegion(
                path: .init(offset: region.offset), query: .init(id: region.id)).ok.body.json
            #expect(released.id == region.id)
            #expect(released.refs == 0)

            // The same release again names an allocation that is gone: 404.
            let stale = try await client.releaseRegion(
                path: .init(offset: region.offset), query: .init(id: region.id)).notFound.body.applicationProblemJson
            #expect(stale.code == .notAllocated)
            #expect(stale.status == 404)
        }
    }

    /// A size no memory class holds is a typed 400 problem.
    @Test func answersAnOversizedRequestWithAProblem() async throws {
        try await withRegiond { client in
            let problem = try await client.allocateRegion(
                body: .json(.init(size: 4_294_967_297))).badRequest.body.applicationProblemJson
            #expect(problem.code == .invalidMemoryClass)
            #expect(problem._type == .about_colon_blank)
        }
    }

    /// The README's example (ReadmeExample.swift, compiled here) runs.
    @Test func readmeExampleRunsAgainstALiveRegiond() async throws {
        try await withRegiond(attachAndDetachPMem)
    }

    /// The README shows ReadmeExample.swift as it is, so what it shows compiles.
    @Test func readmeShowsTheExampleThatCompiles() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        let example = try String(contentsOf: folder.appendingPathComponent("ReadmeExample.swift"), encoding: .utf8)
        let readme = try String(
            contentsOf: folder.appendingPathComponent("../../README.md").standardizedFileURL, encoding: .utf8)
        let shown = readme.contains("```swift\n" + example + "```\n")
        #expect(shown, "README.md's Swift example is not ReadmeExample.swift as it is")
    }
}

/// Runs `body` with a client of a regiond started for it on 127.0.0.1:<a free
/// port>, in memory, and stops that regiond afterwards.
func withRegiond(_ body: (Client) async throws -> Void) async throws {
    let daemon = try RegionDaemon(
        configuration: .init(server: .init(endpoint: .tcp(host: "127.0.0.1", port: 0)), stateDirectory: nil),
        logger: Logger(label: "regiond") { _ in SwiftLogNoOpLogHandler() })
    defer { daemon.stop() }
    try daemon.listen()
    try daemon.load()
    try await body(regiondClient(at: try #require(URL(string: daemon.address))))
}
