import Dispatch
import Foundation
import Glibc
import Logging
import MicroHTTP
@testable import RegionServer
import RegionState
@testable import TestSupport
import Locking
import Testing

/// Clients that misbehave on purpose, over raw sockets, against a live
/// server on port 0 with a 2 s connection timeout. Every case ends the same
/// way: others are still served, `/pool` and `/regions` read as before, and
/// shutdown does not wait on anything the hostile client left behind.
///
/// Serialized: the cases raise the process's file limit and measure time.
@Suite(.serialized) struct HostileClientTests {
    static let json = #"{"size": 1048576}"#

    // MARK: Slow clients

    /// Which part of a request the slow client trickles.
    enum Trickle: String, CaseIterable, Sendable {
        case headers
        case body
    }

    @Test(arguments: Trickle.allCases)
    func aClientSendingOneBytePerSecondDoesNotDelayTwentyOthers(trickle: Trickle) throws {
        let fixture = try HostileFixture()
        let before = try fixture.state()
        let request = RawClient.request("POST", "/regions", body: Self.json)
        let split = trickle == .headers ? 0 : request.utf8.count - Self.json.utf8.count
        let prefix = Array(request.utf8.prefix(split))
        let trickled = Array(request.utf8.dropFirst(split).prefix(6))
        let port = fixture.port
        let slowClientStayedConnected = Locked<Bool?>(nil)
        let finished = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            defer { finished.signal() }
            guard let slow = try? RawClient(port: port) else { return }
            var sent = slow.send(prefix)
            for byte in trickled {
                sent = sent && slow.send([byte])
                // The pace is the case itself (a byte a second), not a wait for the server.
                Thread.sleep(forTimeInterval: 1)
            }
            // Cut off well before the request is complete.
            slow.close()
            slowClientStayedConnected.withLock { $0 = sent }
        }

        for index in 0..<20 {
            let started = ContinuousClock.now
            let outcome = try RawClient.exchange(port: port, "GET", index.isMultiple(of: 2) ? "/pool" : "/regions")
            let took = ContinuousClock.now - started
            #expect(outcome.status == 200)
            #expect(took < .seconds(2), "request \(index) took \(took) next to the slow client")
            // Spreads the twenty over the slow client's six seconds (the case, not a wait).
            Thread.sleep(forTimeInterval: 0.25)
        }

        finished.wait()
        // The timeout counts inactivity only: a byte a second keeps it open.
        #expect(slowClientStayedConnected.withLock { $0 } == true)
        try fixture.finish(unchangedFrom: before)
    }

    // MARK: Oversized heads

    @Test func tenThousandHeadersGet431OrAClose() throws {
        let fixture = try HostileFixture()
        let before = try fixture.state()
        var text = "GET /pool HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for index in 0..<10_000 { text += "X-Filler-\(index): \(index)\r\n" }
        let client = try RawClient(port: fixture.port)
        client.send(text + "\r\n")  // may fail half-way: the server stops reading
        switch client.nextResponse() {
        case .response(let response): #expect(response.status == 431)
        case .closed: break
        case .timedOut: Issue.record("no answer and no close after 10,000 headers")
        }
        client.close()
        try fixture.finish(unchangedFrom: before)
    }

    @Test func aHundredKilobyteURLGets414() throws {
        let fixture = try HostileFixture()
        let before = try fixture.state()
        let client = try RawClient(port: fixture.port)
        client.send(RawClient.request("GET", "/regions/" + String(repeating: "7", count: 100_000)))
        #expect(client.nextResponse().status == 414)
        client.close()
        try fixture.finish(unchangedFrom: before)
    }

    // MARK: Content-Length that lies

    @Test func aBodyShorterThanItsContentLengthThenACloseMakesNoRequest() throws {
        let fixture = try HostileFixture()
        let before = try fixture.state()
        let client = try RawClient(port: fixture.port)
        let head = "POST /regions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        client.send(head + "Content-Length: 64\r\n\r\n" + Self.json)
        // The server has the request (its head is in), then drops it with the connection.
        let taken = fixture.daemon.server.waitForActivity(until: .now + .seconds(10)) { $0.requests == 1 }
        #expect(taken.requests == 1, "the server never took the request's head")
        client.close()
        fixture.waitUntilIdle()
        try fixture.finish(unchangedFrom: before)
    }

    @Test func aBodyShorterThanItsContentLengthIsClosedAfterTheTimeoutWithoutAnAnswer() throws {
        let fixture = try HostileFixture()
        let before = try fixture.state()
        let client = try RawClient(port: fixture.port, timeout: .seconds(8))
        let head = "POST /regions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        client.send(head + "Content-Length: 64\r\n\r\n" + Self.json)
        let started = ContinuousClock.now
        #expect(client.nextResponse().closedWithoutData)
        #expect(ContinuousClock.now - started < .seconds(6))
        try fixture.finish(unchangedFrom: before)
    }

    @Test func bytesPastTheContentLengthAreTheNextRequest() throws {
        let fixture = try HostileFixture()
        let before = try fixture.state()
        let client = try RawClient(port: fixture.port)
        client.send(RawClient.request("POST", "/regions", body: Self.json) + "\u{1}\u{2}garbage\r\n\r\n")
        let first = client.nextResponse()
        #expect(first.status == 201)
        switch client.nextResponse() {
        case .response(let response): #expect(response.status == 400)
        case .closed: break
        case .timedOut: Issue.record("no answer and no close after the garbage")
        }
        client.close()
        if case .response(let created) = first {
            try fixture.release(created)
        }
        try fixture.finish(unchangedFrom: before)
    }

    // MARK: Chunked bodies

    /// Chunked bodies libmicrohttpd must refuse.
    enum BadChunks: String, CaseIterable, Sendable {
        case invalidHexSize
        case missingCRLFAfterTheData
        case chunkLargerThanDeclared

        var body: String {
            let json = HostileClientTests.json
            let size = String(json.utf8.count, radix: 16)
            return switch self {
            case .invalidHexSize: "zz\r\n\(json)\r\n0\r\n\r\n"
            case .missingCRLFAfterTheData: "\(size)\r\n\(json)0\r\n\r\n"
            case .chunkLargerThanDeclared: "5\r\n\(json)\r\n0\r\n\r\n"
            }
        }
    }

    @Test(arguments: BadChunks.allCases)
    func aBadChunkedBodyGets400OrAClose(chunks: BadChunks) throws {
        let fixture = try HostileFixture()
        let before = try fixture.state()
        let client = try RawClient(port: fixture.port)
        client.send(
            "POST /regions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + "Transfer-Encoding: chunked\r\n\r\n" + chunks.body)
        switch client.nextResponse() {
        case .response(let response): #expect(response.status == 400, "\(response.text)")
        case .closed: break
        case .timedOut: Issue.record("no answer and no close after \(chunks)")
        }
        client.close()
        try fixture.finish(unchangedFrom: before)
    }

    @Test func aWellFormedChunkedBodyAllocates() throws {
        let fixture = try HostileFixture()
        let before = try fixture.state()
        let client = try RawClient(port: fixture.port)
        let json = Array(Self.json.utf8)
        client.send(
            "POST /regions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + "Transfer-Encoding: chunked\r\n\r\n"
                + "3\r\n\(String(decoding: json[..<3], as: UTF8.self))\r\n"
                + "\(String(json.count - 3, radix: 16))\r\n\(String(decoding: json[3...], as: UTF8.self))\r\n0\r\n\r\n")
        let outcome = client.nextResponse()
        #expect(outcome.status == 201)
        if case .response(let created) = outcome { try fixture.release(created) }
        try fixture.finish(unchangedFrom: before)
    }

    // MARK: Torn requests

    @Test func fiftyRequestsCutOffHalfWayDoNotHoldUpShutdown() throws {
        let fixture = try HostileFixture()
        let before = try fixture.state()
        let request = RawClient.request("POST", "/regions", body: Self.json)
        let headerLength = request.utf8.count - Self.json.utf8.count
        for index in 0..<50 {
            let client = try RawClient(port: fixture.port)
            // Even: cut inside the headers; odd: inside the body.
            let cut = index.isMultiple(of: 2) ? headerLength / 2 : headerLength + 5
            client.send(Array(request.utf8.prefix(cut)))
            if index % 4 < 2 { client.close() } else { client.reset() }
        }
        // Every torn connection is gone (closed by the server or timed out), none left in flight.
        fixture.waitUntilIdle()
        try fixture.finish(unchangedFrom: before)
    }

    // MARK: Many connections

    @Test(arguments: [2000, 200])
    func aThousandConnectionsAtOnceAreServedOrCleanlyRefused(maxConnections: Int) throws {
        try raiseFileLimit(to: 8192)
        let fixture = try HostileFixture(maxConnections: maxConnections)
        let before = try fixture.state()
        var clients: [RawClient?] = []
        var refused = 0
        for _ in 0..<1000 {
            do {
                clients.append(try RawClient(port: fixture.port))
            } catch {
                clients.append(nil)
                refused += 1
            }
        }
        for client in clients { client?.send(RawClient.request("GET", "/livez")) }
        var ok = 0
        var closed = 0
        for client in clients.compactMap(\.self) {
            switch client.nextResponse() {
            case .response(let response) where response.status == 503:
                // Over the limit, and answered so.
                _ = expectProblem(response, 503, "too_many_connections")
                closed += 1
            case .response(let response):
                #expect(response.status == 200)
                ok += 1
            case .closed(let leftover):
                #expect(leftover.isEmpty)
                closed += 1
            case .timedOut:
                Issue.record("a connection got no answer and no close")
            }
            client.close()
        }
        #expect(ok + closed + refused == 1000)
        #expect(ok > 0)
        try fixture.finish(unchangedFrom: before)
    }

    @Test func theFifthConnectionFromOneAddressIsAnswered503() throws {
        let fixture = try HostileFixture(maxConnectionsPerIP: 4)
        let before = try fixture.state()
        fixture.waitUntilIdle()  // the state() connections count against the limit until the server drops them
        let held = try (0..<4).map { _ in try RawClient(port: fixture.port) }
        for client in held {
            client.send(RawClient.request("GET", "/livez"))
            #expect(client.nextResponse().status == 200)
        }
        let fifth = try RawClient(port: fixture.port)
        fifth.send(RawClient.request("GET", "/livez"))
        guard case .response(let refused) = fifth.nextResponse() else { Issue.record("no 503"); return }
        _ = expectProblem(refused, 503, "too_many_connections")
        #expect(fifth.waitForClose())
        held.forEach { $0.close() }
        fixture.waitUntilIdle()
        try fixture.finish(unchangedFrom: before)
    }

    // MARK: Pipelining

    @Test func pipelinedRequestsOnOneConnectionAreAnsweredInOrder() throws {
        let fixture = try HostileFixture()
        let before = try fixture.state()
        let seeded = fixture.seeded[0]
        let requests = [
            RawClient.request("GET", "/regions/\(seeded)"),
            RawClient.request("GET", "/livez"),
            RawClient.request("GET", "/regions/12345"),
            RawClient.request("POST", "/regions", body: #"{"size": 4194304, "label": "pipelined"}"#),
            RawClient.request("GET", "/regions?label=pipelined"),
            RawClient.request("GET", "/nowhere"),
            RawClient.request("GET", "/pool"),
        ]
        let client = try RawClient(port: fixture.port)
        client.send(requests.joined())
        let responses = requests.indices.compactMap { _ -> RawResponse? in
            if case .response(let response) = client.nextResponse() { response } else { nil }
        }
        try #require(responses.count == requests.count)
        #expect(responses.map(\.status) == [200, 200, 404, 201, 200, 404, 200])
        #expect(responses[0].text.contains(#""offset":\#(seeded)"#))
        #expect(responses[1].text.contains(#""status":"ok""#))
        #expect(responses[2].text.contains("not_allocated"))
        #expect(responses[4].text.contains(#""label":"pipelined""#))
        #expect(responses[5].text.contains("not_found"))
        #expect(responses[6].text.contains(#""regionCount":3"#))
        client.close()
        try fixture.release(responses[3])
        try fixture.finish(unchangedFrom: before)
    }
}

// MARK: - Fixture

/// A live server for one hostile case: port 0, a 2 s connection timeout,
/// two regions allocated up front so "unchanged" means something.
private final class HostileFixture {
    /// `GET /pool` and `GET /regions` bodies.
    struct State: Equatable {
        let pool: String
        let regions: String
    }

    let daemon: RegionDaemon
    let port: Int
    /// Offsets of the regions allocated up front.
    private(set) var seeded: [UInt64] = []

    init(maxConnections: Int = 2000, maxConnectionsPerIP: Int = 0) throws {
        var logger = Logger(label: "regiond.hostile.test")
        logger.logLevel = .critical
        let server = HTTPServer.Configuration(
            endpoint: .tcp(host: "127.0.0.1", port: 0), threads: 2, maxConnections: maxConnections,
            maxConnectionsPerIP: maxConnectionsPerIP, connectionTimeout: 2)
        daemon = try RegionDaemon(configuration: .init(server: server, stateDirectory: nil), logger: logger)
        try daemon.listen()
        try daemon.load()
        port = try #require(daemon.address.split(separator: ":").last.flatMap { Int($0) })
        for body in [#"{"size": 1048576, "label": "seed"}"#, #"{"size": 16777216}"#] {
            let outcome = try RawClient.exchange(port: port, "POST", "/regions", body: body)
            guard case .response(let response) = outcome, response.status == 201 else {
                throw FixtureError(description: "seeding failed: \(outcome)")
            }
            seeded.append(try Self.offset(of: response))
        }
    }

    deinit {
        daemon.stop()
    }

    /// What `GET /pool` and `GET /regions` say now.
    func state() throws -> State {
        State(pool: try body("/pool"), regions: try body("/regions"))
    }

    /// Waits until the server has no connection open and no request in
    /// flight (each close wakes the wait); 10 s is only the failure bound.
    func waitUntilIdle(sourceLocation: SourceLocation = #_sourceLocation) {
        let idle = HTTPServer.Activity(connections: 0, requests: 0)
        let seen = daemon.server.waitForActivity(until: .now + .seconds(10)) { $0 == idle }
        #expect(seen == idle, "still busy: \(seen)", sourceLocation: sourceLocation)
    }

    /// Releases the region a 201 `response` created.
    func release(_ response: RawResponse) throws {
        let offset = try Self.offset(of: response)
        #expect(try RawClient.exchange(port: port, "DELETE", "/regions/\(offset)").status == 200)
    }

    /// The checks every case ends with: others are served, the state is as
    /// `before`, and shutdown returns well within its drain timeout.
    func finish(unchangedFrom before: State, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let created = try RawClient.exchange(port: port, "POST", "/regions", body: #"{"size": 1048576}"#)
        #expect(created.status == 201, "a normal allocation after the hostile client", sourceLocation: sourceLocation)
        if case .response(let response) = created {
            let offset = try Self.offset(of: response)
            #expect(
                try RawClient.exchange(port: port, "GET", "/regions/\(offset)").status == 200,
                sourceLocation: sourceLocation)
            try release(response)
        }
        #expect(try RawClient.exchange(port: port, "GET", "/livez").status == 200, sourceLocation: sourceLocation)
        #expect(try state() == before, "GET /pool and /regions changed", sourceLocation: sourceLocation)

        let started = ContinuousClock.now
        daemon.stop()
        let took = ContinuousClock.now - started
        // The 2 s connection timeout must clean up whatever was left; 10 s
        // would mean a connection pinned the drain.
        #expect(took < .seconds(6), "shutdown took \(took)", sourceLocation: sourceLocation)
    }

    private func body(_ path: String) throws -> String {
        let outcome = try RawClient.exchange(port: port, "GET", path)
        guard case .response(let response) = outcome, response.status == 200 else {
            throw FixtureError(description: "GET \(path): \(outcome)")
        }
        return response.text
    }

    private static func offset(of response: RawResponse) throws -> UInt64 {
        struct Created: Decodable { let offset: UInt64 }
        return try JSONDecoder().decode(Created.self, from: Data(response.body)).offset
    }
}

private struct FixtureError: Error, CustomStringConvertible {
    let description: String
}

/// Raises the soft limit on open files to `wanted` (or the hard limit):
/// a thousand clients and their server ends need two thousand descriptors.
private func raiseFileLimit(to wanted: rlim_t) throws {
    var limit = rlimit()
    let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    guard getrlimit(resource, &limit) == 0 else { throw FixtureError(description: "getrlimit failed") }
    guard limit.rlim_cur < wanted else { return }
    limit.rlim_cur = min(wanted, limit.rlim_max)
    guard setrlimit(resource, &limit) == 0 else { throw FixtureError(description: "setrlimit failed") }
}
