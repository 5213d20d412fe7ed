import Foundation
@testable import RegionFuzz
import MicroHTTP
@testable import RegionServer
import RegionState
@testable import TestSupport
import Testing

/// Replays fuzz inputs through the fuzzer's own decoding and checks.
@Suite struct FuzzRegressionTests {
    /// Inputs that once broke a promise, by what they broke; empty so far.
    static let crashes: [(String, [UInt8])] = []

    @Test func everySeedOfTheCorpusKeepsEveryPromise() throws {
        let corpus = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fuzz/corpus")
        let seeds = try FileManager.default.contentsOfDirectory(atPath: corpus.path).sorted()
        #expect(seeds.count > 50)
        let harness = FuzzHarness()
        for seed in seeds {
            let bytes = try [UInt8](Data(contentsOf: corpus.appendingPathComponent(seed)))
            #expect(harness.run(bytes) == nil, "seed \(seed)")
        }
    }

    @Test func aTruncatedInputStillDecodes() {
        let (request, useToken) = FuzzInput.request(from: [0x03])
        #expect(request.method == "POST" && request.path == "" && request.body.isEmpty && useToken)
    }

    @Test func theKnownAuthorizationHeaderCarriesTheToken() {
        let (request, _) = FuzzInput.request(from: [0x00, 0xE1, 0, 1, 5])
        #expect(request.path == "/pool")
        #expect(request.header("authorization") == "Bearer \(FuzzInput.token)")
    }
}
