import Foundation
import MemoryPool
import MicroHTTP
@testable import RegionServer
import RegionState
@testable import TestSupport
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// regiond (the daemon the executable runs) on 127.0.0.1:<any free port>, in memory.
final class LiveServer: Sendable {
    let daemon: RegionDaemon
    let port: Int
    let base: URL
    let session: URLSession

    init() throws {
        daemon = try RegionDaemon(
            configuration: .init(server: .init(endpoint: .tcp(host: "127.0.0.1", port: 0)), stateDirectory: nil), logger: quietLogger)
        try daemon.listen()
        try daemon.load()
        port = Int(daemon.address.split(separator: ":").last!)!
        base = URL(string: daemon.address)!
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = 64
        configuration.timeoutIntervalForRequest = 120
        session = URLSession(configuration: configuration)
    }

    /// One response: status, header lookup and body.
    struct Reply: Sendable {
        let status: Int
        let headers: [String: String]
        let body: [UInt8]
        func header(_ name: String) -> String? {
            headers.first { $0.key.lowercased() == name.lowercased() }?.value
        }
    }

    func send(_ method: String, _ path: String, body: [UInt8]? = nil, headers: [String: String] = [:]) async throws -> Reply {
        var request = URLRequest(url: URL(string: path, relativeTo: base)!)
        request.httpMethod = method
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let (data, response): (Data, URLResponse)
        if let body {
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            (data, response) = try await session.upload(for: request, from: Data(body))
        } else {
            (data, response) = try await session.data(for: request)
        }
        let http = response as! HTTPURLResponse
        var fields: [String: String] = [:]
        for case (let name as String, let value as String) in http.allHeaderFields { fields[name] = value }
        return Reply(status: http.statusCode, headers: fields, body: Array(data))
    }

    func allocate(_ size: UInt64) async throws -> Reply {
        try await send("POST", "/regions", body: Array(#"{"size":\#(size)}"#.utf8))
    }

    func stop() {
        session.invalidateAndCancel()
        daemon.stop()
    }
}

func expectProblem(_ reply: LiveServer.Reply, _ status: Int, _ code: String, sourceLocation: SourceLocation = #_sourceLocation) -> ProblemJSON? {
    expectProblem(status: reply.status, headers: reply.header, body: reply.body, status, code, sourceLocation: sourceLocation)
}

func expectProblem(_ reply: RawResponse, _ status: Int, _ code: String, sourceLocation: SourceLocation = #_sourceLocation) -> ProblemJSON? {
    expectProblem(status: reply.status, headers: reply.header, body: reply.body, status, code, sourceLocation: sourceLocation)
}

/// The server on real sockets, port 0, with URLSession and raw TCP as clients.
@Suite struct LiveServerTests {
    /// What the server refuses before any route sees the request (a body
    /// over the limit, a framing that reads two ways) is a problem the
    /// application renders, counted and logged like any failed request.
    @Test func refusalsOfTheServerAreProblemsThatAreCountedAndLogged() throws {
        let log = LogCapture()
        let daemon = try RegionDaemon(
            configuration: .init(server: .init(endpoint: .tcp(host: "127.0.0.1", port: 0)), stateDirectory: nil), logger: log.logger)
        try daemon.listen()
        try daemon.load()
        defer { daemon.stop() }
        let port = try #require(Int(daemon.address.split(separator: ":").last ?? ""))
        let tooLarge = try RawClient.exchange(port: port, "POST", "/regions", body: String(repeating: "x", count: 70_000))
        guard case .response(let large) = tooLarge else { Issue.record("\(tooLarge)"); return }
        _ = expectProblem(large, 413, "payload_too_large")
        let client = try RawClient(port: port)
        defer { client.close() }
        _ = client.send("POST /regions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
        guard case .response(let framing) = client.nextResponse() else { Issue.record("no answer to a framing error"); return }
        _ = expectProblem(framing, 400, "invalid_request")
        let exposition = String(decoding: daemon.metrics.exposition((PoolAllocator(), 0)), as: UTF8.self)
        #expect(exposition.contains(#"regiond_http_requests_total{route="/regions",method="POST",status="413"} 1"#), "\(exposition)")
        #expect(exposition.contains(#"regiond_http_requests_total{route="/regions",method="POST",status="400"} 1"#))
        let warnings = log.messages.filter { $0.level == .warning && $0.text.contains("request failed") }
        #expect(warnings.contains { $0.text.contains("payload_too_large") })
        #expect(warnings.contains { $0.text.contains("invalid_request") })
    }

    @Test func aRegionMakesTheRoundTrip() async throws {
        let live = try LiveServer()
        defer { live.stop() }
        let created = try await live.send("POST", "/regions", body: Array(#"{"size":5000000,"label":"rt"}"#.utf8))
        #expect(created.status == 201)
        #expect(created.header("Location") == "/regions/0?id=1")
        let region = try decode(RegionJSON.self, created.body)
        #expect(region == RegionJSON(offset: 0, size: 16 * MiB, class: 2, label: "rt"))
        let fetched = try await live.send("GET", "/regions/0")
        #expect(fetched.status == 200)
        #expect(try decode(RegionJSON.self, fetched.body) == region)
        let list = try await live.send("GET", "/regions")
        #expect(try decode(RegionListJSON.self, list.body).regions == [region])
        let released = try await live.send("DELETE", "/regions/0")
        #expect(released.status == 200)
        #expect(try decode(RegionJSON.self, released.body) == region)
        _ = expectProblem(try await live.send("GET", "/regions/0"), 404, "not_allocated")
        #expect(try decode(PoolJSON.self, try await live.send("GET", "/pool").body) == .empty)
    }

    @Test func sixteenParallelPostsGetSixteenDistinctRegions() async throws {
        let live = try LiveServer()
        defer { live.stop() }
        let regions = try await withThrowingTaskGroup(of: RegionJSON.self) { group in
            for _ in 0..<16 {
                group.addTask {
                    let reply = try await live.allocate(MiB)
                    #expect(reply.status == 201)
                    return try decode(RegionJSON.self, reply.body)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(regions.map(\.offset)) == Set((0..<16).map { UInt64($0) * MiB }))
    }

    @Test(.timeLimit(.minutes(10)))
    func sixtyFourClientsFillThePoolAndReleaseItAll() async throws {
        let live = try LiveServer()
        defer { live.stop() }
        let offsets = try await withThrowingTaskGroup(of: [UInt64].self) { group in
            for _ in 0..<64 {
                group.addTask {
                    var mine: [UInt64] = []
                    while true {
                        let reply = try await live.allocate(MiB)
                        if reply.status == 409 { return mine }
                        #expect(reply.status == 201)
                        guard reply.status == 201 else { return mine }
                        mine.append(try decode(RegionJSON.self, reply.body).offset)
                    }
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(offsets.count == 4096)
        #expect(Set(offsets) == Set((0..<4096).map { UInt64($0) * MiB }))
        let full = expectProblem(try await live.allocate(MiB), 409, "not_enough_space")
        #expect(full?.largestFree == 0)

        try await withThrowingTaskGroup(of: Void.self) { group in
            for client in 0..<64 {
                group.addTask {
                    for offset in offsets[client...].striding(by: 64) {
                        let reply = try await live.send("DELETE", "/regions/\(offset)")
                        #expect(reply.status == 200)
                    }
                }
            }
            try await group.waitForAll()
        }
        let pool = try decode(PoolJSON.self, try await live.send("GET", "/pool").body)
        #expect(pool == .empty)
        #expect(pool.classes[6].free == 1)
        #expect(pool.classes.allSatisfy { $0.split == 0 && $0.allocated == 0 })
    }

    @Test func aBodyOver64KiBWithContentLengthIs413() async throws {
        let live = try LiveServer()
        defer { live.stop() }
        // The server answers from the headers alone; the body is never sent.
        let connection = try RawClient(port: live.port, timeout: .seconds(30))
        connection.send("POST /regions HTTP/1.1\r\nHost: test\r\nContent-Length: 66561\r\n\r\n")
        _ = expectProblem(try connection.readReply(), 413, "payload_too_large")
        #expect(try decode(PoolJSON.self, try await live.send("GET", "/pool").body) == .empty)
    }

    @Test func aBodyOver64KiBSentByURLSessionIs413() async throws {
        let live = try LiveServer()
        defer { live.stop() }
        let body = Array(#"{"size":1048576,"label":"\#(String(repeating: "x", count: 66 * 1024))"}"#.utf8)
        _ = expectProblem(try await live.send("POST", "/regions", body: body), 413, "payload_too_large")
        #expect(try decode(PoolJSON.self, try await live.send("GET", "/pool").body) == .empty)
    }

    @Test func aChunkedBodyGrowingPast64KiBIs413() async throws {
        let live = try LiveServer()
        defer { live.stop() }
        let connection = try RawClient(port: live.port, timeout: .seconds(30))
        connection.send("POST /regions HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n")
        let chunk = String(repeating: " ", count: 4096)
        // 80 KiB in 4 KiB chunks, then the last chunk. Stop early if the answer
        // is already there, so the server never closes on unread bytes.
        var sent = 0
        while sent < 80 * 1024 && !connection.isReadable(within: 5) {
            connection.send("1000\r\n\(chunk)\r\n")
            sent += chunk.utf8.count
        }
        if !connection.isReadable(within: 0) { connection.send("0\r\n\r\n") }
        #expect(sent > 64 * 1024 || connection.isReadable(within: 0))
        _ = expectProblem(try connection.readReply(), 413, "payload_too_large")
        #expect(try decode(PoolJSON.self, try await live.send("GET", "/pool").body) == .empty)
    }

    @Test func aSmallChunkedBodyIsRead() async throws {
        let live = try LiveServer()
        defer { live.stop() }
        let connection = try RawClient(port: live.port, timeout: .seconds(30))
        connection.send(
            "POST /regions HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n{\"size\":\r\n8\r\n1048576}\r\n0\r\n\r\n")
        let reply = try connection.readReply()
        #expect(reply.status == 201)
        #expect(try decode(RegionJSON.self, reply.body).offset == 0)
    }

    @Test func keepAliveServesSeveralRequestsOnOneConnection() throws {
        let live = try LiveServer()
        defer { live.stop() }
        let connection = try RawClient(port: live.port, timeout: .seconds(30))
        let requests = [
            ("GET /livez HTTP/1.1\r\nHost: test\r\nConnection: keep-alive\r\n\r\n", 200),
            ("POST /regions HTTP/1.1\r\nHost: test\r\nConnection: keep-alive\r\nContent-Length: 16\r\n\r\n{\"size\":1048576}", 201),
            ("GET /regions/0 HTTP/1.1\r\nHost: test\r\nConnection: keep-alive\r\n\r\n", 200),
            ("GET /nope HTTP/1.1\r\nHost: test\r\nConnection: keep-alive\r\n\r\n", 404),
            ("DELETE /regions/0 HTTP/1.1\r\nHost: test\r\n\r\n", 200),
            ("GET /pool HTTP/1.1\r\nHost: test\r\n\r\n", 200),
        ]
        for (request, status) in requests {
            connection.send(request)
            let reply = try connection.readReply()
            #expect(reply.status == status, "\(request)")
            #expect(reply.header("Connection")?.lowercased() != "close")
        }
    }

    @Test func headIsAnsweredWithGetsStatusAndLengthAndNoBody() throws {
        let live = try LiveServer()
        defer { live.stop() }
        let connection = try RawClient(port: live.port, timeout: .seconds(30))
        for path in ["/livez", "/pool", "/openapi.yaml"] {
            connection.send(RawClient.request("GET", path))
            let get = try connection.readReply()
            connection.send(RawClient.request("HEAD", path))
            guard case .response(let head) = connection.nextResponse(toHead: true) else {
                Issue.record("no answer to HEAD \(path)")
                return
            }
            #expect(head.status == 200, "\(path)")
            #expect(head.header("Content-Length") == String(get.body.count), "\(path)")
            #expect(head.header("Content-Type") == get.header("Content-Type"), "\(path)")
            // Had a body followed the HEAD's header fields, this would read it as a status line.
            connection.send(RawClient.request("GET", "/livez"))
            #expect(try connection.readReply().text == #"{"status":"ok"}"#, "after HEAD \(path)")
        }
    }

    @Test func percentEscapesInTheOffsetAreDecodedBeforeParsing() async throws {
        let live = try LiveServer()
        defer { live.stop() }
        #expect(try await live.allocate(MiB).status == 201)
        #expect(try await live.allocate(MiB).status == 201)
        let connection = try RawClient(port: live.port, timeout: .seconds(30))
        for (path, status, code) in [
            ("/regions/%31048576", 200, nil), ("/regions/%20", 400, "invalid_offset"),
            ("/regions/%2B1", 400, "invalid_offset"), ("/regions/1%2F2", 404, "not_found"),
            ("/regions/1048577", 404, "not_allocated"),
        ] {
            connection.send("GET \(path) HTTP/1.1\r\nHost: test\r\n\r\n")
            let reply = try connection.readReply()
            if let code {
                _ = expectProblem(reply, status, code)
            } else {
                #expect(reply.status == status, "\(path)")
            }
        }
    }
}

extension ArraySlice {
    /// Every `step`-th element, starting with the first.
    func striding(by step: Int) -> [Element] {
        stride(from: startIndex, to: endIndex, by: step).map { self[$0] }
    }
}
