import Foundation
import MemoryPool
import Logging
import MicroHTTP
import RegionServer
import RegionState
@testable import TestSupport
import Locking
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The region API over a fresh in-memory service, driven without sockets.
struct InProcessAPI {
    let router = RegionAPI.router(service: RegionService(journal: nil, logger: quietLogger), metrics: RegionMetrics(), logger: quietLogger)

    /// Sends a request and returns the response, which the in-memory service delivers synchronously.
    func send(
        _ method: String, _ path: String, query: [String: String] = [:],
        headers: [(name: String, value: String)] = [], body: [UInt8] = [],
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> Response {
        let delivered = Locked<[Response]>([])
        let request = Request(method: method, path: path, query: query, headers: headers, body: body)
        router.handle(request) { response in delivered.withLock { $0.append(response) } }
        let responses = delivered.withLock { $0 }
        #expect(responses.count == 1, "exactly one response", sourceLocation: sourceLocation)
        return responses.first ?? Response(status: 0)
    }

    func send(_ method: String, _ path: String, json: String, headers: [(name: String, value: String)] = []) -> Response {
        send(method, path, headers: headers, body: Array(json.utf8))
    }

    /// `POST /regions` with a size, and a label and an idempotency key when given.
    func allocate(_ size: UInt64, label: String? = nil, key: String? = nil) -> Response {
        var object: [String: Any] = ["size": size]
        if let label { object["label"] = label }
        let body = try! JSONSerialization.data(withJSONObject: object)
        return send("POST", "/regions", headers: key.map { [("Idempotency-Key", $0)] } ?? [], body: Array(body))
    }

    /// `GET /pool`, decoded.
    func pool() throws -> PoolJSON {
        try decode(PoolJSON.self, send("GET", "/pool"))
    }

    /// `GET /regions`, decoded.
    func regions(label: String? = nil) throws -> [RegionJSON] {
        try decode(RegionListJSON.self, send("GET", "/regions", query: label.map { ["label": $0] } ?? [:])).regions
    }

    /// The bodies of `GET /pool` and `GET /regions`: everything a failed request must leave alone.
    func stateBytes() -> [[UInt8]] {
        [send("GET", "/pool").body, send("GET", "/regions").body]
    }
}

/// A region as the wire shows it.
struct RegionJSON: Codable, Equatable, Sendable {
    let offset: UInt64
    let size: UInt64
    let `class`: Int
    let label: String?
}

struct RegionListJSON: Codable {
    let regions: [RegionJSON]
}

/// `GET /pool` as the wire shows it.
struct PoolJSON: Codable, Equatable {
    struct ClassJSON: Codable, Equatable {
        let `class`: Int
        let size: UInt64
        let free: Int
        let allocated: Int
        let split: Int
        let unusableIndex: Double
    }
    let capacity: UInt64
    let usedBytes: UInt64
    let freeBytes: UInt64
    let regionCount: Int
    let largestFree: UInt64
    let wastedBytes: UInt64
    let classes: [ClassJSON]

    /// The pool with nothing allocated: one free 4 GiB region.
    static let empty = PoolJSON(
        capacity: 4 * GiB, usedBytes: 0, freeBytes: 4 * GiB, regionCount: 0, largestFree: 4 * GiB,
        wastedBytes: 0,
        classes: (0..<7).map {
            ClassJSON(class: $0, size: MiB << (2 * UInt64($0)), free: $0 == 6 ? 1 : 0, allocated: 0, split: 0, unusableIndex: 0)
        })
}

/// An RFC 9457 problem as regiond sends it.
struct ProblemJSON: Codable {
    let type: String
    let title: String
    let status: Int
    let detail: String
    let code: String
    let largestFree: UInt64?
}

func decode<T: Decodable>(_ type: T.Type, _ response: Response) throws -> T {
    try JSONDecoder().decode(type, from: Data(response.body))
}

func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
    try JSONDecoder().decode(type, from: Data(bytes))
}

/// The top-level keys of a JSON object body.
func jsonKeys(_ bytes: [UInt8]) -> Set<String> {
    guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else { return [] }
    return Set(object.keys)
}

let reasonPhrases = [
    400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
    413: "Content Too Large", 422: "Unprocessable Content", 503: "Service Unavailable",
]

/// Checks that `status`, `headers` and `body` are an RFC 9457 problem with this status and code.
@discardableResult
func expectProblem(
    status: Int, headers: (String) -> String?, body: [UInt8], _ expectedStatus: Int, _ code: String,
    sourceLocation: SourceLocation = #_sourceLocation
) -> ProblemJSON? {
    #expect(status == expectedStatus, "status", sourceLocation: sourceLocation)
    #expect(headers("Content-Type") == "application/problem+json", sourceLocation: sourceLocation)
    guard let problem = try? decode(ProblemJSON.self, body) else {
        Issue.record("not a problem body: \(String(decoding: body, as: UTF8.self))", sourceLocation: sourceLocation)
        return nil
    }
    #expect(problem.type == "about:blank", sourceLocation: sourceLocation)
    #expect(problem.title == reasonPhrases[expectedStatus], sourceLocation: sourceLocation)
    #expect(problem.status == expectedStatus, sourceLocation: sourceLocation)
    #expect(problem.status == status, sourceLocation: sourceLocation)
    #expect(!problem.detail.isEmpty, sourceLocation: sourceLocation)
    #expect(problem.code == code, sourceLocation: sourceLocation)
    #expect(
        jsonKeys(body).isSubset(of: ["type", "title", "status", "detail", "code", "largestFree", "index", "refs", "limit"]),
        sourceLocation: sourceLocation)
    return problem
}

@discardableResult
func expectProblem(
    _ response: Response, _ status: Int, _ code: String, sourceLocation: SourceLocation = #_sourceLocation
) -> ProblemJSON? {
    expectProblem(
        status: response.status, headers: response.header, body: response.body, status, code,
        sourceLocation: sourceLocation)
}


extension Response {
    /// The path of the `Location` header, without the query that names the allocation.
    var locationPath: String? {
        header("Location").map { String($0.prefix { $0 != "?" }) }
    }
}
