import Foundation
import MemoryPool
import MicroHTTP
import Testing

@testable import RegionServer
@testable import TestSupport

/// The routes of shared regions, leases and batches, in-process: every
/// answer, and every new error with its status and code.
@Suite struct SharedRegionRouteTests {
    let api = InProcessAPI()

    func text(_ response: Response) -> String {
        String(decoding: response.body, as: UTF8.self)
    }

    func object(_ response: Response) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
    }

    @Test func aShareKeyJoinsTheSameRegionAndReleasesCountDown() throws {
        let first = api.send("POST", "/regions", json: #"{"size": 5000000, "share": "layer-a", "label": "a"}"#)
        #expect(first.status == 201)
        #expect(text(first) == #"{"class":2,"id":1,"label":"a","offset":0,"ref":1,"refs":1,"share":"layer-a","size":16777216}"#)
        #expect(first.header("Location") == "/regions/0?id=1&ref=1")
        let second = api.send("POST", "/regions", json: #"{"size": 16777216, "share": "layer-a"}"#)
        #expect(second.status == 200)
        #expect(second.header("Location") == "/regions/0?id=1&ref=2")
        #expect(text(second) == #"{"class":2,"id":1,"label":"a","offset":0,"ref":2,"refs":2,"share":"layer-a","size":16777216}"#)
        #expect(text(api.send("GET", "/regions/0")).contains(#""refs":2"#))
        #expect(text(api.send("DELETE", "/regions/0")).contains(#""refs":1"#))
        #expect(api.send("GET", "/regions/0").status == 200)
        let last = api.send("DELETE", "/regions/0")
        #expect(last.status == 200)
        #expect(text(last).contains(#""refs":0"#))
        expectProblem(api.send("GET", "/regions/0"), 404, "not_allocated")
        #expect(try api.pool() == .empty)
    }

    @Test func eachCallerDropsItsOwnReferenceByItsPath() throws {
        #expect(api.send("POST", "/regions", json: #"{"size": 1048576, "share": "l", "label": "vm-1"}"#).status == 201)
        #expect(api.send("POST", "/regions", json: #"{"size": 1048576, "share": "l", "label": "vm-2"}"#).status == 200)
        expectProblem(api.send("DELETE", "/regions/0", query: ["id": "1"]), 409, "references_held")
        expectProblem(api.send("DELETE", "/regions/0/refs/3", query: ["id": "1"]), 404, "not_allocated")
        expectProblem(api.send("DELETE", "/regions/0/refs/1", query: ["id": "2"]), 404, "not_allocated")
        expectProblem(api.send("DELETE", "/regions/0/refs/0"), 400, "invalid_request")
        expectProblem(api.send("DELETE", "/regions/0/refs/1", query: ["lable": "x"]), 400, "invalid_request")
        let dropped = api.send("DELETE", "/regions/0/refs/1", query: ["id": "1"])
        #expect(text(dropped) == #"{"class":0,"id":1,"label":"vm-1","offset":0,"ref":1,"refs":1,"share":"l","size":1048576}"#)
        expectProblem(api.send("GET", "/regions/0", query: ["ref": "1"]), 404, "not_allocated")
        #expect(api.send("GET", "/regions/0", query: ["id": "1", "ref": "2"]).status == 200)
        let last = api.send("DELETE", "/regions/0", query: ["id": "1", "ref": "2"])
        #expect(text(last).contains(#""refs":0"#))
        expectProblem(api.send("GET", "/regions/0"), 404, "not_allocated")
    }

    @Test func aShareKeyWithAnotherClassIsAConflictAndChangesNothing() throws {
        #expect(api.send("POST", "/regions", json: #"{"size": 1048576, "share": "s"}"#).status == 201)
        let before = api.stateBytes()
        expectProblem(api.send("POST", "/regions", json: #"{"size": 4194304, "share": "s"}"#), 409, "share_conflict")
        expectProblem(api.send("POST", "/regions", json: #"{"size": 0, "share": "s"}"#), 400, "invalid_memory_class")
        #expect(api.stateBytes() == before)
    }

    @Test(arguments: [
        #"{"size": 1, "share": ""}"#, #"{"size": 1, "share": 7}"#, #"{"size": 1, "share": null}"#,
        #"{"size": 1, "ttl": 0}"#, #"{"size": 1, "ttl": 2592001}"#, #"{"size": 1, "ttl": 1.5}"#, #"{"size": 1, "ttl": "60"}"#,
    ])
    func aBadShareOrTTLIsInvalidRequest(body: String) {
        let before = api.stateBytes()
        expectProblem(api.send("POST", "/regions", json: body), 400, "invalid_request")
        #expect(api.stateBytes() == before)
    }

    @Test func aLeaseShowsItsExpiryAndARenewalMovesIt() throws {
        let created = api.send("POST", "/regions", json: #"{"size": 1048576, "ttl": 60}"#)
        #expect(created.status == 201)
        let expiresAt = try #require(try object(created)["expiresAt"] as? String)
        let format = ISO8601DateFormatter()
        format.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let expiry = try #require(format.date(from: expiresAt))
        #expect(abs(expiry.timeIntervalSinceNow - 60) < 5)
        let renewed = api.send("POST", "/regions/0/renew", json: #"{"ttl": 3600}"#)
        #expect(renewed.status == 200)
        let renewedAt = try #require(try object(renewed)["expiresAt"] as? String)
        let later = try #require(format.date(from: renewedAt))
        #expect(abs(later.timeIntervalSinceNow - 3600) < 5)
        #expect(api.send("POST", "/regions/0/renew").status == 200)
    }

    @Test func renewalErrorsHaveTheirCodes() {
        expectProblem(api.send("POST", "/regions/0/renew"), 404, "not_allocated")
        expectProblem(api.send("POST", "/regions/x/renew"), 400, "invalid_offset")
        #expect(api.send("POST", "/regions", json: #"{"size": 1}"#).status == 201)
        expectProblem(api.send("POST", "/regions/0/renew"), 409, "not_leased")
        expectProblem(api.send("POST", "/regions/0/renew", json: #"{"ttl": 0}"#), 400, "invalid_request")
        expectProblem(api.send("POST", "/regions/0/renew", json: "[]"), 400, "invalid_request")
        // A mistyped offset never makes a permanent region expire.
        expectProblem(api.send("POST", "/regions/0/renew", json: #"{"ttl": 5}"#), 409, "not_leased")
    }

    @Test func aBatchAllocatesEveryItemInOrder() throws {
        let response = api.send(
            "POST", "/regions/batch",
            json: #"{"regions": [{"size": 1048576, "label": "a"}, {"size": 5000000, "share": "s"}, {"size": 16000000, "share": "s"}]}"#)
        #expect(response.status == 201)
        let regions = try #require(try object(response)["regions"] as? [[String: Any]])
        #expect(regions.map { $0["offset"] as? Int } == [0, 16 << 20, 16 << 20])
        #expect(regions.map { $0["refs"] as? Int } == [nil, 1, 2])
        #expect(try api.regions().count == 2)
    }

    @Test func aBatchThatDoesNotFitAllocatesNothingAndNamesTheItem() throws {
        #expect(api.send("POST", "/regions", json: #"{"size": 1}"#).status == 201)
        let before = api.stateBytes()
        let response = api.send(
            "POST", "/regions/batch",
            json: #"{"regions": [{"size": 1}, {"size": 1073741824}, {"size": 1073741824}, {"size": 1073741824}, {"size": 1073741824}]}"#)
        let problem = expectProblem(response, 409, "not_enough_space")
        // As it was when item 4 was tried: items 1-3 had taken three 1 GiB regions.
        #expect(problem?.largestFree == 268_435_456)
        #expect(try object(response)["index"] as? Int == 4)
        #expect(api.stateBytes() == before)
    }

    @Test(arguments: [
        (#"{"regions": []}"#, 400, "invalid_request", nil), (#"{"regions": {}}"#, 400, "invalid_request", nil),
        (#"{"size": 1}"#, 400, "invalid_request", nil), (#"{"regions": [{"size": 1}, {"label": "x"}]}"#, 400, "invalid_request", 1),
        (#"{"regions": [{"size": 1}, {"size": 0}]}"#, 400, "invalid_memory_class", 1),
        (#"{"regions": [{"size": 1, "share": "s"}, {"size": 4194304, "share": "s"}]}"#, 409, "share_conflict", 1),
    ] as [(String, Int, String, Int?)])
    func aBadBatchIsRefusedWhole(body: String, status: Int, code: String, index: Int?) throws {
        let before = api.stateBytes()
        let response = api.send("POST", "/regions/batch", json: body)
        expectProblem(response, status, code)
        #expect(try object(response)["index"] as? Int == index)
        #expect(api.stateBytes() == before)
    }

    @Test func aBatchOfMoreThan1024ItemsOrWithAKeyIsRefused() {
        let items = Array(repeating: #"{"size": 1}"#, count: 1025).joined(separator: ",")
        expectProblem(api.send("POST", "/regions/batch", json: #"{"regions": [\#(items)]}"#), 400, "invalid_request")
        expectProblem(
            api.send("POST", "/regions/batch", json: #"{"regions": [{"size": 1}]}"#, headers: [("Idempotency-Key", "k")]),
            400, "invalid_request")
        #expect(try! api.regions().isEmpty)
    }

    @Test func wastedBytesAndTheUnusableIndexFollowThePool() throws {
        #expect(api.send("POST", "/regions", json: #"{"size": 5000000}"#).status == 201)
        #expect(api.send("POST", "/regions", json: #"{"size": 1048576}"#).status == 201)
        let pool = try api.pool()
        #expect(pool.wastedBytes == 16_777_216 - 5_000_000)
        let free: [Double] = [0, 3, 15, 47, 239, 1007, 4079]
        let expected = free.map { $0 / 4079 }
        #expect(pool.classes.map(\.unusableIndex) == expected)
    }
}
