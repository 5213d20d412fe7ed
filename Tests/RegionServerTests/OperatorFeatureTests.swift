import Foundation
import Logging
import MemoryPool
import MicroHTTP
@testable import RegionServer
import RegionState
@testable import TestSupport
import Locking
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Sends one request through `router` and returns the response.
private func send(_ router: Router, _ method: String, _ path: String, headers: [(name: String, value: String)] = [], body: String = "") -> Response {
    let delivered = Locked<Response?>(nil)
    router.handle(Request(method: method, path: path, headers: headers, body: Array(body.utf8))) { response in
        delivered.withLock { $0 = response }
    }
    return delivered.withLock { $0 } ?? Response(status: 0)
}

@Suite struct BearerTokenTests {
    static let token = "s3cret-token-0123456789"
    let log = LogCapture()
    let router: Router

    init() {
        router = RegionAPI.router(
            service: RegionService(journal: nil, logger: log.logger), metrics: RegionMetrics(), logger: log.logger,
            token: Self.token)
    }

    @Test(arguments: [
        ("POST", "/regions"), ("GET", "/regions"), ("GET", "/regions/0"), ("DELETE", "/regions/0"), ("GET", "/pool"),
        ("GET", "/metrics"), ("GET", "/openapi.yaml"), ("GET", "/nowhere"), ("PUT", "/pool"),
    ])
    func everyRouteButTheProbesNeedsTheToken(method: String, path: String) throws {
        for headers in [[], [("Authorization", "Bearer wrong-token-0123456789")], [("Authorization", Self.token)],
            [("Authorization", "Basic \(Self.token)")], [("Authorization", "Bearer \(Self.token)x")]] as [[(name: String, value: String)]]
        {
            let response = send(router, method, path, headers: headers, body: #"{"size":1}"#)
            #expect(response.status == 401)
            #expect(response.header("WWW-Authenticate") == "Bearer")
            #expect(response.header("Content-Type") == "application/problem+json")
            let problem = try JSONDecoder().decode([String: ProblemField].self, from: Data(response.body))
            #expect(problem["code"] == .string("unauthorized"))
            #expect(problem["detail"] == .string("a valid bearer token is required"))
        }
    }

    @Test(arguments: ["/livez", "/healthz", "/readyz"])
    func theProbesAnswerWithoutTheToken(path: String) {
        #expect(send(router, "GET", path).status == 200)
    }

    @Test func theRightTokenIsLetThrough() {
        let authorized = [(name: "authorization", value: "Bearer \(Self.token)")]
        #expect(send(router, "POST", "/regions", headers: authorized, body: #"{"size":1}"#).status == 201)
        #expect(send(router, "GET", "/metrics", headers: authorized).status == 200)
        // Nothing was allocated by the refused requests.
        #expect(send(router, "DELETE", "/regions/0", headers: authorized).status == 200)
        #expect(send(router, "GET", "/regions/0", headers: authorized).status == 404)
    }

    @Test(arguments: ["bearer", "BEARER", "BeArEr", "Bearer  "])
    func theSchemeMatchesWhateverItsCase(scheme: String) {
        let authorized = [(name: "Authorization", value: "\(scheme) \(Self.token)")]
        #expect(send(router, "GET", "/pool", headers: authorized).status == 200)
    }

    @Test(arguments: [
        "Bearer \(token.uppercased())", "Bearer\(token)", "Bearer\t\(token)", "Bearer", "Bearer ", "Bearers \(token)",
        "Bear \(token)", "Bearer \(token) ",
    ])
    func theTokenItselfMatchesExactly(authorization: String) {
        #expect(send(router, "GET", "/pool", headers: [("Authorization", authorization)]).status == 401)
    }

    @Test func theTokenNeverReachesTheLog() {
        let authorized = [(name: "Authorization", value: "Bearer \(Self.token)")]
        _ = send(router, "POST", "/regions", headers: authorized, body: #"{"size":1,"label":"l"}"#)
        _ = send(router, "POST", "/regions", headers: authorized, body: #"{"size":0}"#)
        _ = send(router, "GET", "/regions", headers: [("Authorization", "Bearer \(Self.token)-almost")])
        _ = send(router, "GET", "/nowhere", headers: [("Authorization", "Bearer \(Self.token)")])
        let lines = log.messages.map(\.text)
        #expect(lines.contains { $0.contains("unauthorized") })
        #expect(lines.contains { $0.contains("allocated") })
        #expect(!lines.contains { $0.contains("s3cret") })
    }

    @Test func tokensCompareWholeNotByPrefix() {
        let expected = Array("Bearer abc".utf8)
        #expect(RegionAPI.constantTimeEquals(expected, expected))
        for given in ["Bearer ab", "Bearer abcd", "Bearer abd", "", "bearer abc"] {
            #expect(!RegionAPI.constantTimeEquals(Array(given.utf8), expected), "\(given)")
        }
    }
}

@Suite struct MetricsTests {
    /// The exposition's metric families by name: the `# TYPE` line, then the
    /// samples sorted (the registry keeps neither families nor label sets in
    /// a fixed order).
    static func families(_ bytes: [UInt8]) -> [String: [String]] {
        let text = String(decoding: bytes, as: UTF8.self)
        var families: [String: [String]] = [:]
        for block in text.components(separatedBy: "# TYPE ").dropFirst() {
            let lines = block.split(separator: "\n").map(String.init)
            families[String(lines[0].split(separator: " ")[0])] = ["# TYPE " + lines[0]] + lines.dropFirst().sorted()
        }
        return families
    }

    @Test func aSmallExpositionIsExactlyThis() {
        let log = LogCapture()
        let metrics = RegionMetrics()
        let router = RegionAPI.router(service: RegionService(journal: nil, logger: log.logger), metrics: metrics, logger: log.logger)
        _ = send(router, "POST", "/regions", body: #"{"size":1048576}"#)
        _ = send(router, "POST", "/regions", body: #"{"size":5000000}"#)
        _ = send(router, "POST", "/regions", body: #"{"size":0}"#)
        _ = send(router, "POST", "/regions", body: #"{"size":4294967296}"#)
        let exposition = send(router, "GET", "/metrics")
        #expect(exposition.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8")
        let expected: [String: [String]] = Self.families(Array("""
            # TYPE regiond_allocations_total counter
            regiond_allocations_total 2
            # TYPE regiond_allocation_failures_total counter
            regiond_allocation_failures_total{reason="invalid_memory_class"} 1
            regiond_allocation_failures_total{reason="not_enough_space"} 1
            # TYPE regiond_journal_fsyncs_total counter
            regiond_journal_fsyncs_total 0
            # TYPE regiond_pool_used_bytes gauge
            regiond_pool_used_bytes 17825792.0
            # TYPE regiond_pool_free_bytes gauge
            regiond_pool_free_bytes 4277141504.0
            # TYPE regiond_pool_regions gauge
            regiond_pool_regions 2.0
            # TYPE regiond_pool_largest_free_bytes gauge
            regiond_pool_largest_free_bytes 1073741824.0
            # TYPE regiond_pool_free_regions gauge
            regiond_pool_free_regions{class="0"} 3.0
            regiond_pool_free_regions{class="1"} 3.0
            regiond_pool_free_regions{class="2"} 2.0
            regiond_pool_free_regions{class="3"} 3.0
            regiond_pool_free_regions{class="4"} 3.0
            regiond_pool_free_regions{class="5"} 3.0
            regiond_pool_free_regions{class="6"} 0.0
            # TYPE regiond_pool_wasted_bytes gauge
            regiond_pool_wasted_bytes 11777216.0
            # TYPE regiond_pool_unusable_index gauge
            regiond_pool_unusable_index{class="0"} 0.0
            regiond_pool_unusable_index{class="1"} 0.0007354743809757293
            regiond_pool_unusable_index{class="2"} 0.003677371904878647
            regiond_pool_unusable_index{class="3"} 0.01152243196861976
            regiond_pool_unusable_index{class="4"} 0.05859279235106644
            regiond_pool_unusable_index{class="5"} 0.24687423388085314
            regiond_pool_unusable_index{class="6"} 1.0
            # TYPE regiond_lease_expirations_total counter
            regiond_lease_expirations_total 0
            # TYPE regiond_build_info gauge
            regiond_build_info{version="0.2.0"} 1.0
            # TYPE regiond_connections_refused_total counter
            regiond_connections_refused_total{reason="per_ip"} 0
            regiond_connections_refused_total{reason="total"} 0
            # TYPE regiond_http_requests_total counter
            regiond_http_requests_total{route="/regions",method="POST",status="201"} 2
            regiond_http_requests_total{route="/regions",method="POST",status="400"} 1
            regiond_http_requests_total{route="/regions",method="POST",status="409"} 1

            """.utf8))
        let families = Self.families(exposition.body)
        for (name, lines) in expected {
            #expect(families[name] == lines, "\(name)")
        }
        // Besides those: the two duration histograms (their sums vary).
        #expect(Set(families.keys).subtracting(expected.keys) == [
            "regiond_http_request_duration_seconds", "regiond_journal_fsync_duration_seconds",
        ])
        #expect(families["regiond_http_request_duration_seconds"]?.contains(
            #"regiond_http_request_duration_seconds_count{route="/regions"} 4"#) == true)
    }

    @Test func routesAreLabelledByTemplateNeverByOffset() {
        let log = LogCapture()
        let router = RegionAPI.router(
            service: RegionService(journal: nil, logger: log.logger), metrics: RegionMetrics(), logger: log.logger)
        _ = send(router, "GET", "/regions/123456789")
        _ = send(router, "DELETE", "/regions/987654321")
        _ = send(router, "BREW", "/coffee/42")
        let text = String(decoding: send(router, "GET", "/metrics").body, as: UTF8.self)
        #expect(text.contains(#"regiond_http_requests_total{route="/regions/{offset}",method="GET",status="404"} 1"#))
        #expect(text.contains(#"regiond_http_requests_total{route="/regions/{offset}",method="DELETE",status="404"} 1"#))
        #expect(text.contains(#"regiond_http_requests_total{route="unmatched",method="other",status="404"} 1"#))
        #expect(!text.contains("123456789") && !text.contains("987654321") && !text.contains("coffee"))
    }
}

/// Enough of JSON to look at a problem document's fields.
enum ProblemField: Decodable, Equatable {
    case string(String)
    case number(Double)
    case other

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let string = try? container.decode(String.self) {
            self = .string(string)
        } else if let number = try? container.decode(Double.self) {
            self = .number(number)
        } else {
            self = .other
        }
    }
}

/// Connections refused at the per-IP or total limit: answered 503
/// `too_many_connections` with `Retry-After`, counted by reason (not as
/// requests) and logged, a flood in a few lines.
@Suite struct ConnectionRefusalTests {
    @Test(arguments: [(ConnectionRefusal.perIP, 1000, 2), (.total, 2, 0)])
    func aRefusedConnectionIsCountedAndLogged(reason: ConnectionRefusal, maxConnections: Int, perIP: Int) throws {
        let log = LogCapture()
        let server = HTTPServer.Configuration(
            endpoint: .tcp(host: "127.0.0.1", port: 0), maxConnections: maxConnections, maxConnectionsPerIP: perIP)
        let daemon = try RegionDaemon(configuration: .init(server: server, stateDirectory: nil), logger: log.logger)
        try daemon.listen()
        try daemon.load()
        defer { daemon.stop() }
        let port = try #require(Int(daemon.address.split(separator: ":").last ?? ""))
        let held = try (0..<2).map { _ in try RawClient(port: port) }
        defer { held.forEach { $0.close() } }
        for client in held {
            client.send(RawClient.request("GET", "/livez"))
            #expect(client.nextResponse().status == 200)
        }
        // The refusal is counted and logged before the server answers, so
        // the answer is the event to wait for.
        for _ in 0..<3 {
            let refused = try RawClient(port: port)
            refused.send(RawClient.request("GET", "/livez"))
            guard case .response(let answer) = refused.nextResponse() else { Issue.record("no 503"); return }
            _ = expectProblem(answer, 503, "too_many_connections")
            #expect(answer.header("Retry-After") == "1")
            #expect(refused.waitForClose())
        }
        let exposition = String(decoding: daemon.metrics.exposition((PoolAllocator(), 0)), as: UTF8.self)
        let other = reason == .perIP ? ConnectionRefusal.total : .perIP
        #expect(exposition.contains(#"regiond_connections_refused_total{reason="\#(reason.rawValue)"} 3"#), "\(exposition)")
        #expect(exposition.contains(#"regiond_connections_refused_total{reason="\#(other.rawValue)"} 0"#))
        #expect(!exposition.contains(#"status="503""#), "counted as connections, not requests")
        #expect(!log.messages.contains { $0.text.contains("request failed") })
        let lines = log.messages.filter { $0.level == .warning && $0.text.contains("connections refused at the limit") }
        #expect(lines.count == 1, "one line for three refusals within the interval")
        #expect(lines.first?.text.contains(#""\#(reason == .perIP ? "perIP" : "total")": 1"#) == true, "\(lines)")
    }

    @Test func aFloodIsLoggedAsTheFirstThenACountPerInterval() {
        var log = ConnectionRefusalLog(interval: .seconds(10))
        let start = ContinuousClock.now
        #expect(log.refused(.perIP, at: start) == [.perIP: 1])
        for second in 1...9 { #expect(log.refused(.perIP, at: start + .seconds(second)) == nil) }
        #expect(log.refused(.total, at: start + .milliseconds(9_500)) == nil)
        #expect(log.refused(.perIP, at: start + .seconds(10)) == [.perIP: 10, .total: 1])
        #expect(log.refused(.total, at: start + .seconds(15)) == nil)
        #expect(log.refused(.total, at: start + .seconds(60)) == [.total: 2])
    }
}
