import Foundation
import Logging
@testable import RegionServer
@testable import regiond
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Sends one request through `router` and returns the response.
private func send(_ router: Router, _ method: String, _ path: String, headers: [(name: String, value: String)] = [], body: String = "") -> Response {
    let delivered = Mutex<Response?>(nil)
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
            let problem = try JSONDecoder().decode([String: JSONValue].self, from: Data(response.body))
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

@Suite struct TokenFileTests {
    @Test(arguments: [("tok\n", "tok"), ("tok", "tok"), ("tok\r\n", "tok")])
    func aTrailingNewlineIsIgnored(contents: String, token: String) throws {
        let path = NSTemporaryDirectory() + "regiond-token-\(UUID().uuidString)"
        try contents.write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        #expect(try Regiond.readToken(path) == token)
    }

    @Test(arguments: ["", "\n", "two words", "tok\n\n"])
    func aFileWithoutOneTokenIsRefused(contents: String) throws {
        let path = NSTemporaryDirectory() + "regiond-token-\(UUID().uuidString)"
        try contents.write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        #expect(throws: (any Error).self) { try Regiond.readToken(path) }
    }

    @Test func aMissingFileIsRefused() {
        #expect(throws: (any Error).self) { try Regiond.readToken("/nonexistent/regiond-token") }
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

@Suite(.serialized) struct UnixSocketTests {
    let path = NSTemporaryDirectory() + "regiond-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"

    func server() -> HTTPServer {
        let router = RegionAPI.router(
            service: RegionService(journal: nil, logger: quietLogger), metrics: RegionMetrics(), logger: quietLogger)
        return HTTPServer(configuration: .init(endpoint: .unix(path: path)), logger: quietLogger) { request, respond in
            router.handle(request, respond: respond)
        }
    }

    /// Runs `call` (connect or bind) on `fd` with the socket path's address.
    func withAddress(_ fd: Int32, _ call: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }

    /// Sends one HTTP/1.0 request over the socket and returns the whole reply.
    func ask(_ request: String) throws -> String {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        guard withAddress(fd, connect) == 0 else { throw POSIXError(.ECONNREFUSED) }
        _ = request.withCString { write(fd, $0, strlen($0)) }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(fd, &buffer, buffer.count)
            guard count > 0 else { break }
            reply += buffer[0..<count]
        }
        return String(decoding: reply, as: UTF8.self)
    }

    @Test func itServesOnASocketOnlyItsOwnerCanUse() throws {
        let server = server()
        try server.start()
        defer { server.shutdown() }
        #expect(server.address == "unix:\(path)")
        var info = stat()
        #expect(lstat(path, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        let reply = try ask("POST /regions HTTP/1.0\r\nContent-Length: 16\r\n\r\n{\"size\":1048576}")
        #expect(reply.hasPrefix("HTTP/1.0 201") || reply.hasPrefix("HTTP/1.1 201"))
        #expect(reply.contains(#"{"class":0,"offset":0,"size":1048576}"#))
    }

    @Test func theSocketFileIsRemovedOnExit() throws {
        let server = server()
        try server.start()
        server.shutdown()
        #expect(access(path, F_OK) != 0)
    }

    @Test func aStaleSocketIsReplacedButALiveOneIsNot() throws {
        // A socket file nobody listens on: bound, then closed.
        let stale = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        #expect(withAddress(stale, bind) == 0)
        close(stale)
        let first = server()
        try first.start()
        defer { first.shutdown() }
        #expect(try ask("GET /livez HTTP/1.0\r\n\r\n").contains(#"{"status":"ok"}"#))
        // A second server must not take the socket from the live one.
        let second = server()
        #expect(throws: HTTPServer.StartError.self) { try second.start() }
        #expect(try ask("GET /livez HTTP/1.0\r\n\r\n").contains(#"{"status":"ok"}"#))
    }

    @Test func aFileThatIsNotASocketIsLeftAlone() throws {
        FileManager.default.createFile(atPath: path, contents: Data("keep me".utf8))
        defer { unlink(path) }
        let server = server()
        #expect(throws: HTTPServer.StartError.self) { try server.start() }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "keep me")
    }
}

/// Enough of JSON to look at a problem document's fields.
enum JSONValue: Decodable, Equatable {
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
