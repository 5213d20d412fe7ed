import Foundation
import OpenAPIURLSession
import RegionClient
import Testing

/// A client of the regiond at `url` (the address its `listening on` line names).
func regiondClient(at url: URL) -> Client {
    Client(
        serverURL: url,
        // regiond writes expiresAt with milliseconds (2026-12-04T04:12:15.250Z).
        configuration: .init(dateTranscoder: .iso8601WithFractionalSeconds),
        transport: URLSessionTransport())
}

/// A VM's PMem device: a 5 MB request gets a 16 MiB region, released by its id.
func attachAndDetachPMem(_ regiond: Client) async throws {
    let region = try await regiond.allocateRegion(
        body: .json(.init(size: 5_000_000, label: "vm-42/pmem0"))).created.body.json
    #expect(region.size == ._16777216)
    // With its id, a retried release can never release a later allocation
    // at the same offset.
    let released = try await regiond.releaseRegion(
        path: .init(offset: region.offset), query: .init(id: region.id)).ok.body.json
    #expect(released.id == region.id)
    // Errors are typed problems: the same release again is 404 not_allocated.
    let gone = try await regiond.releaseRegion(
        path: .init(offset: region.offset), query: .init(id: region.id)).notFound.body.applicationProblemJson
    #expect(gone.code == .notAllocated)
}

@Test(.enabled(if: ProcessInfo.processInfo.environment["REGIOND_URL"] != nil))
func vmAttachesAndDetachesItsPMem() async throws {
    let url = try #require(URL(string: ProcessInfo.processInfo.environment["REGIOND_URL"] ?? ""))
    try await attachAndDetachPMem(regiondClient(at: url))
}
