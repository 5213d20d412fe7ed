import Foundation
@testable import RegionFuzz
import MicroHTTP
@testable import RegionServer
import RegionState
@testable import TestSupport
import Testing

/// Replays fuzz inputs through the fuzzer's own decoding and checks.
@Suite struct FuzzRegressionTests {
    @Test func everySeedOfTheCorpusKeepsEveryPromise() throws {
        let corpus = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fuzz/corpus")
        let seeds = try FileManager.default.contentsOfDirectory(atPath: corpus.path).sorted()
        try #require(!seeds.isEmpty, "no seeds in \(corpus.path)")
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

    @Test func everyRouteThatSucceedsPassesTheChecks() {
        let harness = FuzzHarness()
        let requests = [
            Request(method: "POST", path: "/regions", body: Array(#"{"size":1}"#.utf8)),
            Request(method: "GET", path: "/regions"), Request(method: "GET", path: "/regions/0"),
            Request(method: "GET", path: "/pool"), Request(method: "GET", path: "/livez"),
            Request(method: "GET", path: "/healthz"), Request(method: "GET", path: "/readyz"),
            Request(method: "GET", path: "/metrics"), Request(method: "GET", path: "/openapi.yaml"),
            Request(method: "DELETE", path: "/regions/0"),
        ]
        for request in requests {
            guard case .success(let response) = harness.answer(request, by: harness.open) else {
                Issue.record("not exactly one response to \(request.method) \(request.path)")
                continue
            }
            #expect((200..<300).contains(response.status), "\(request.method) \(request.path)")
            #expect(harness.check(response, to: request, guarded: false) == nil, "\(request.method) \(request.path)")
        }
    }

    @Test(arguments: [
        ("POST", "/regions"), ("GET", "/regions/0"), ("DELETE", "/regions/0"), ("GET", "/regions"), ("GET", "/pool"),
        ("GET", "/livez"), ("GET", "/metrics"), ("GET", "/openapi.yaml"), ("PUT", "/pool"),
    ])
    func aSuccessWithoutTheRoutesBodyBreaksAPromise(method: String, path: String) {
        let request = Request(method: method, path: path)
        for body in ["<html>", "null", "[]", #"{"offset":0}"#, ""] {
            let response = Response(status: 200, headers: [("Content-Type", "application/json")], body: Array(body.utf8))
            #expect(FuzzHarness().check(response, to: request, guarded: false) != nil, "body \(body)")
        }
    }
}
