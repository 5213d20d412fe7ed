import Foundation
import MemoryPool
import MicroHTTP
@testable import RegionServer
import RegionState
@testable import TestSupport
import Testing

/// Every route of the region API and every error it answers with, in-process,
/// without sockets.
@Suite struct RouterTests {
    let api = InProcessAPI()

    // MARK: - POST /regions

    @Test func allocatingAnswers201WithLocationAndTheRegion() throws {
        let response = api.allocate(5_000_000)
        #expect(response.status == 201)
        #expect(response.header("Content-Type") == "application/json")
        #expect(response.header("Location") == "/regions/0?id=1")
        #expect(try decode(RegionJSON.self, response) == RegionJSON(offset: 0, size: 16 * MiB, class: 2, label: nil))
        #expect(jsonKeys(response.body) == ["id", "ref", "offset", "size", "class"])
        #expect(String(decoding: response.body, as: UTF8.self) == #"{"class":2,"id":1,"offset":0,"ref":1,"size":16777216}"#)
    }

    @Test func allocatingAgainPicksTheLowestFreeOffsetOfTheClass() throws {
        expectAllocated(MiB, at: 0)
        let second = api.allocate(MiB)
        #expect(second.locationPath == "/regions/1048576")
        #expect(try decode(RegionJSON.self, second).offset == MiB)
    }

    // MARK: - GET /regions

    @Test func listingIsSortedByOffset() throws {
        expectAllocated(MiB, at: 0)
        expectAllocated(MiB, at: MiB)
        #expect(api.send("DELETE", "/regions/0").status == 200)
        #expect(api.allocate(4 * MiB).locationPath == "/regions/4194304")
        #expect(api.allocate(MiB).locationPath == "/regions/0")
        let list = api.send("GET", "/regions")
        #expect(list.status == 200)
        #expect(list.header("Content-Type") == "application/json")
        #expect(jsonKeys(list.body) == ["regions"])
        #expect(try api.regions().map(\.offset) == [0, MiB, 4 * MiB])
        #expect(try api.regions().map(\.size) == [MiB, MiB, 4 * MiB])
    }

    @Test func listingAnEmptyPoolGivesAnEmptyArray() {
        #expect(String(decoding: api.send("GET", "/regions").body, as: UTF8.self) == #"{"regions":[]}"#)
    }

    @Test func labelQueryFiltersTheList() throws {
        expectAllocated(MiB, at: 0, label: "vm-a")
        expectAllocated(MiB, at: MiB, label: "vm-b")
        expectAllocated(MiB, at: 2 * MiB)
        expectAllocated(MiB, at: 3 * MiB, label: "vm-a")
        #expect(try api.regions(label: "vm-a").map(\.offset) == [0, 3 * MiB])
        #expect(try api.regions(label: "vm-b").map(\.offset) == [MiB])
        #expect(try api.regions(label: "nobody").isEmpty)
        #expect(try api.regions().count == 4)
    }

    // MARK: - GET and DELETE /regions/{offset}

    @Test func gettingARegionReturnsIt() throws {
        expectAllocated(MiB, at: 0)
        expectAllocated(64 * MiB, at: 64 * MiB)
        let response = api.send("GET", "/regions/67108864")
        #expect(response.status == 200)
        #expect(try decode(RegionJSON.self, response) == RegionJSON(offset: 64 * MiB, size: 64 * MiB, class: 3, label: nil))
    }

    @Test(arguments: ["GET", "DELETE"])
    func aBadOffsetIs400AndAFreeOneIs404(method: String) {
        expectAllocated(MiB, at: 0)
        expectProblem(api.send(method, "/regions/x1"), 400, "invalid_offset")
        expectProblem(api.send(method, "/regions/1048576"), 404, "not_allocated")
        let problem = expectProblem(api.send(method, "/regions/1"), 404, "not_allocated")
        #expect(problem?.detail == "no memory allocated at the given offset")
    }

    @Test func releasingReturnsTheRegionAndFreesIt() throws {
        expectAllocated(MiB, at: 0, label: "gone")
        let released = api.send("DELETE", "/regions/0")
        #expect(released.status == 200)
        #expect(try decode(RegionJSON.self, released) == RegionJSON(offset: 0, size: MiB, class: 0, label: "gone"))
        expectProblem(api.send("GET", "/regions/0"), 404, "not_allocated")
        expectProblem(api.send("DELETE", "/regions/0"), 404, "not_allocated")
        #expect(try api.pool() == .empty)
    }

    // MARK: - GET /pool

    @Test func poolOfAFreshServiceIsOneFree4GiBRegion() throws {
        let response = api.send("GET", "/pool")
        #expect(response.status == 200)
        #expect(
            jsonKeys(response.body) == [
                "capacity", "usedBytes", "freeBytes", "regionCount", "largestFree", "wastedBytes", "classes",
            ])
        #expect(try api.pool() == .empty)
        let object = try JSONSerialization.jsonObject(with: Data(response.body)) as! [String: Any]
        for entry in object["classes"] as! [[String: Any]] {
            #expect(Set(entry.keys) == ["class", "size", "free", "allocated", "split", "unusableIndex"])
        }
    }

    @Test func poolCountsFreeAllocatedAndSplitRegionsPerClass() throws {
        expectAllocated(MiB, at: 0)
        let pool = try api.pool()
        #expect(pool.usedBytes == MiB)
        #expect(pool.freeBytes == 4 * GiB - MiB)
        #expect(pool.regionCount == 1)
        #expect(pool.largestFree == GiB)
        #expect(pool.classes.map(\.class) == Array(0..<7))
        #expect(pool.classes.map(\.size) == (0..<7).map { MiB << (2 * UInt64($0)) })
        #expect(pool.classes.map(\.free) == [3, 3, 3, 3, 3, 3, 0])
        #expect(pool.classes.map(\.allocated) == [1, 0, 0, 0, 0, 0, 0])
        #expect(pool.classes.map(\.split) == [0, 1, 1, 1, 1, 1, 1])
    }

    // MARK: - Probes and the spec

    @Test(arguments: ["/livez", "/healthz", "/readyz"])
    func probesAnswerOk(path: String) {
        let response = api.send("GET", path)
        #expect(response.status == 200)
        #expect(response.header("Content-Type") == "application/json")
        #expect(String(decoding: response.body, as: UTF8.self) == #"{"status":"ok"}"#)
    }

    @Test func openAPIIsExactlyTheTopLevelSpec() throws {
        let spec = try Data(contentsOf: repositoryRoot.appendingPathComponent("openapi.yaml"))
        let response = api.send("GET", "/openapi.yaml")
        #expect(response.status == 200)
        #expect(response.header("Content-Type") == "application/yaml")
        #expect(response.body == Array(spec))
    }

    // MARK: - Unknown paths and methods

    @Test(arguments: ["/", "/nope", "/regions/", "/regions/1/2", "/pool/", "/Regions", "regions", "", "/livez/x"])
    func unknownPathsAre404NotFound(path: String) {
        expectProblem(api.send("GET", path), 404, "not_found")
    }

    @Test(arguments: [
        ("PUT", "/regions", "POST, GET, HEAD, DELETE"), ("PATCH", "/regions/0", "GET, HEAD, DELETE"),
        ("POST", "/regions/0", "GET, HEAD, DELETE"), ("PATCH", "/regions", "POST, GET, HEAD, DELETE"), ("POST", "/pool", "GET, HEAD"),
        ("DELETE", "/livez", "GET, HEAD"), ("POST", "/healthz", "GET, HEAD"), ("PUT", "/readyz", "GET, HEAD"),
        ("POST", "/openapi.yaml", "GET, HEAD"), ("PUT", "/metrics", "GET, HEAD"), ("HEAD", "/regions/batch", "POST"),
        ("HEAD", "/regions/0/renew", "POST"),
    ])
    func otherMethodsOnKnownPathsAre405WithAllow(method: String, path: String, allow: String) {
        let response = api.send(method, path)
        expectProblem(response, 405, "method_not_allowed")
        let allowed = response.header("Allow")?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(Set(allowed ?? []) == Set(allow.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }))
    }

    /// Every GET route, with a path that fits it.
    static let getPaths = RegionRoute.allCases.filter { $0.method == "GET" }.map {
        $0.template.replacingOccurrences(of: "{offset}", with: "0")
    }

    @Test(arguments: getPaths)
    func headIsAnsweredLikeGet(path: String) {
        #expect(api.allocate(MiB).status == 201)
        let get = api.send("GET", path)
        let head = api.send("HEAD", path)
        #expect(head.status == 200)
        #expect(head.status == get.status)
        #expect(head.headers.map(\.name) == get.headers.map(\.name))
        #expect(head.header("Content-Type") == get.header("Content-Type"))
        // In-process the body is still there; libmicrohttpd leaves it off the wire.
        if path != "/metrics" { #expect(head.body == get.body) }
    }

    /// Every route, and HEAD wherever GET is, with a path that fits it.
    static let everyRoute = RegionRoute.allCases.flatMap { route in
        let path = route.template.replacingOccurrences(of: "{offset}", with: "0").replacingOccurrences(of: "{ref}", with: "1")
        return route.method == "GET" ? [(route.method, path), ("HEAD", path)] : [(route.method, path)]
    }

    @Test(arguments: everyRoute)
    func anUnknownQueryParameterIs400NamingIt(method: String, path: String) {
        // No body: the query is checked before it.
        let problem = expectProblem(api.send(method, path, query: ["lable": "x"]), 400, "invalid_request")
        #expect(problem?.detail == #"unknown query parameter "lable""#)
    }

    // MARK: - A full pool

    @Test func fillingThePoolWith1MiBRegionsEndsIn409WithLargestFreeZero() throws {
        var offsets = Set<UInt64>()
        for _ in 0..<4096 {
            let response = api.allocate(MiB)
            #expect(response.status == 201)
            offsets.insert(try decode(RegionJSON.self, response).offset)
        }
        #expect(offsets.count == 4096)
        #expect(offsets == Set((0..<4096).map { UInt64($0) * MiB }))
        let pool = try api.pool()
        #expect(pool.largestFree == 0)
        #expect(pool.freeBytes == 0)
        #expect(pool.classes[0].allocated == 4096)
        let before = api.stateBytes()
        let problem = expectProblem(api.allocate(MiB), 409, "not_enough_space")
        #expect(problem?.largestFree == 0)
        #expect(problem?.detail == "not enough space")
        #expect(api.stateBytes() == before)
    }

    @Test func a4GiBRequestFailsWhileLargestFreeIs1GiB() throws {
        #expect(api.allocate(GiB).status == 201)
        let problem = expectProblem(api.allocate(4 * GiB), 409, "not_enough_space")
        #expect(problem?.largestFree == GiB)
        #expect(jsonKeys(api.allocate(4 * GiB).body).contains("largestFree"))
    }

    @Test func onlyNotEnoughSpaceCarriesLargestFree() {
        #expect(!jsonKeys(api.send("GET", "/regions/5").body).contains("largestFree"))
        #expect(!jsonKeys(api.allocate(0).body).contains("largestFree"))
    }

    // MARK: - Idempotency-Key

    @Test func repeatingAKeyReplaysTheSameRegion() throws {
        let first = api.allocate(MiB, label: "l", key: "key-1")
        #expect(first.status == 201)
        let again = api.allocate(MiB, label: "l", key: "key-1")
        #expect(again.status == 200)
        #expect(again.header("Idempotent-Replayed") == "true")
        #expect(again.locationPath == first.locationPath)
        #expect(again.body == first.body)
        #expect(first.header("Idempotent-Replayed") == nil)
        #expect(try api.pool().regionCount == 1)
    }

    @Test func reusingAKeyWithAnotherSizeIs422() throws {
        expectAllocated(MiB, at: 0, key: "key-1")
        let before = api.stateBytes()
        expectProblem(api.allocate(4 * MiB, key: "key-1"), 422, "idempotency_key_reused")
        #expect(api.stateBytes() == before)
        #expect(api.allocate(4 * MiB, key: "key-2").status == 201)
    }

    @Test(arguments: ["", String(repeating: "k", count: 256), "a key", "ключ", "tab\there", "\u{7F}"])
    func aBadKeyIs400InvalidRequest(key: String) {
        expectAllocated(MiB, at: 0)
        let before = api.stateBytes()
        expectProblem(api.allocate(MiB, key: key), 400, "invalid_request")
        #expect(api.stateBytes() == before)
    }

    @Test(arguments: ["k", String(repeating: "k", count: 255), "!~", "550e8400-e29b-41d4-a716-446655440000"])
    func aGoodKeyIsAccepted(key: String) {
        #expect(api.allocate(MiB, key: key).status == 201)
        #expect(api.allocate(MiB, key: key).status == 200)
    }

    @Test func aFailedRequestBindsNoKey() throws {
        expectProblem(api.allocate(0, key: "k"), 400, "invalid_memory_class")
        #expect(api.allocate(4 * GiB).status == 201)
        expectProblem(api.allocate(MiB, key: "k"), 409, "not_enough_space")
        #expect(api.send("DELETE", "/regions/0").status == 200)
        let fresh = api.allocate(4 * MiB, key: "k")
        #expect(fresh.status == 201)
        #expect(fresh.header("Idempotent-Replayed") == nil)
    }

    @Test func releasingForgetsTheKey() throws {
        #expect(api.allocate(MiB, key: "k").status == 201)
        #expect(api.send("DELETE", "/regions/0").status == 200)
        let other = api.allocate(4 * MiB, key: "k")
        #expect(other.status == 201)
        #expect(other.header("Idempotent-Replayed") == nil)
        expectProblem(api.allocate(MiB, key: "k"), 422, "idempotency_key_reused")
    }

    // MARK: - Labels

    @Test func theLabelIsStoredAndReturnedEverywhere() throws {
        let expected = RegionJSON(offset: 0, size: MiB, class: 0, label: "vm-7 é")
        #expect(try decode(RegionJSON.self, api.allocate(MiB, label: "vm-7 é")) == expected)
        #expect(try decode(RegionJSON.self, api.send("GET", "/regions/0")) == expected)
        #expect(try api.regions() == [expected])
        #expect(try api.regions(label: "vm-7 é") == [expected])
        #expect(try decode(RegionJSON.self, api.send("DELETE", "/regions/0")) == expected)
    }

    /// Characters as JSON Schema's `maxLength` counts them (Unicode scalars), not bytes.
    @Test(arguments: [
        (String(repeating: "a", count: 256), 201), (String(repeating: "é", count: 256), 201),
        (String(repeating: "😀", count: 256), 201), (String(repeating: "a", count: 257), 400),
        (String(repeating: "é", count: 257), 400), (String(repeating: "€", count: 257), 400), ("", 201),
    ])
    func labelsUpTo256CharactersAreAccepted(label: String, status: Int) throws {
        let response = api.allocate(MiB, label: label)
        if status == 201 {
            #expect(response.status == 201)
            #expect(try decode(RegionJSON.self, response).label == label)
        } else {
            expectProblem(response, 400, "invalid_request")
            #expect(try api.pool() == .empty)
        }
    }

    // MARK: - Problem details

    @Test func everyErrorIsAProblemDocument() {
        expectAllocated(MiB, at: 0, key: "k")
        expectProblem(api.send("POST", "/regions", json: "{"), 400, "invalid_request")
        expectProblem(api.allocate(0), 400, "invalid_memory_class")
        expectProblem(api.allocate(4 * MiB, key: "k"), 422, "idempotency_key_reused")
        expectProblem(api.send("GET", "/regions/a"), 400, "invalid_offset")
        expectProblem(api.send("DELETE", "/regions/5"), 404, "not_allocated")
        expectProblem(api.send("GET", "/x"), 404, "not_found")
        expectProblem(api.send("PUT", "/pool"), 405, "method_not_allowed")
        expectProblem(api.allocate(4 * GiB), 409, "not_enough_space")
        expectAllocated(GiB, at: GiB)
        expectAllocated(GiB, at: 2 * GiB)
        expectAllocated(GiB, at: 3 * GiB)
        expectProblem(api.allocate(GiB), 409, "not_enough_space")
    }

    /// `POST /regions` that must answer 201 with the region at `offset`.
    private func expectAllocated(
        _ size: UInt64, at offset: UInt64, label: String? = nil, key: String? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let response = api.allocate(size, label: label, key: key)
        #expect(response.status == 201, "status", sourceLocation: sourceLocation)
        #expect(response.locationPath == "/regions/\(offset)", sourceLocation: sourceLocation)
    }
}

@Suite struct IdempotencySizeTests {
    /// The key binds the exact request, not only its class: 1 MiB and 1 byte
    /// both get a class-0 region, but they are different requests.
    @Test func aKeyReusedWithAnotherSizeOfTheSameClassIs422() {
        let api = InProcessAPI()
        #expect(api.allocate(MiB, key: "k").status == 201)
        #expect(api.allocate(MiB, key: "k").status == 200)
        let reused = api.allocate(1, key: "k")
        #expect(reused.status == 422)
        #expect(reused.problemCode == "idempotency_key_reused")
    }
}
