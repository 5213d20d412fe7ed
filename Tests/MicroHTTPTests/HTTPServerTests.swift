import Dispatch
import Foundation
import MicroHTTP
import Locking
import Testing

@testable import TestSupport

/// The HTTP layer alone, over real sockets, with routes that know nothing of regions.
@Suite struct HTTPServerTests {
    @Test func aRouteAnswersOverASocketAndKeepsTheConnectionAlive() throws {
        let (server, port) = try startServer(ToyRoutes())
        defer { server.shutdown() }
        let client = try RawClient(port: port)
        defer { client.close() }
        for body in ["one", "two"] {
            client.send(RawClient.request("POST", "/echo", body: body))
            let outcome = client.nextResponse()
            guard case .response(let response) = outcome else {
                Issue.record("no response: \(outcome)")
                return
            }
            #expect(response.status == 200)
            #expect(response.text == body)
        }
    }

    @Test func unknownRoutesAndMethodsAreProblems() throws {
        let (server, port) = try startServer(ToyRoutes())
        defer { server.shutdown() }
        guard case .response(let missing) = try RawClient.exchange(port: port, "GET", "/nowhere"),
            case .response(let wrongMethod) = try RawClient.exchange(port: port, "DELETE", "/ping")
        else {
            Issue.record("no response")
            return
        }
        #expect(missing.status == 404)
        #expect(missing.text == #"noRoute(path: "/nowhere")"#, "the application renders the refusal")
        #expect(wrongMethod.status == 405)
        #expect(wrongMethod.header("Allow") == "GET, HEAD")
    }

    /// A connection over a limit is reported when it starts and its request
    /// refused (503, then closed); past the ones kept open for that, the
    /// next is closed unread. The held connections, once closed, are uncounted.
    @Test(arguments: [(ConnectionRefusal.perIP, 1000, 2), (.total, 2, 0)])
    func aConnectionOverALimitIsRefusedAndReported(reason: ConnectionRefusal, maxConnections: Int, perIP: Int) throws {
        let reports = DispatchSemaphore(value: 0)
        let reported = Locked<[ConnectionRefusal]>([])
        let router = ToyRoutes().router
        let server = HTTPServer(
            configuration: .init(
                endpoint: .tcp(host: "127.0.0.1", port: 0), maxConnections: maxConnections, maxConnectionsPerIP: perIP,
                connectionTimeout: 5),
            logger: quietLogger, refuse: { refusal, _ in render(refusal) },
            connectionRefused: { reason in
                reported.withLock { $0.append(reason) }
                reports.signal()
            }
        ) { request, respond in router.handle(request, respond: respond) }
        try server.start()
        defer { server.shutdown() }
        let port = try #require(Int(server.address.split(separator: ":").last ?? ""))
        let held = try (0..<2).map { _ in try RawClient(port: port) }
        for client in held {
            client.send(RawClient.request("GET", "/ping"))
            #expect(client.nextResponse().status == 200)
        }
        let third = try RawClient(port: port)
        third.send(RawClient.request("GET", "/ping"))
        guard case .response(let refused) = third.nextResponse() else { Issue.record("no 503"); return }
        #expect(refused.status == 503)
        #expect(refused.text == "connectionLimit(MicroHTTP.ConnectionRefusal.\(reason))")
        #expect(third.waitForClose())
        #expect(reports.wait(timeout: .now() + 5) == .success)
        // Fill the room kept for refusals with silent connections, each
        // counted (reported) before the next; the one after is dropped unread.
        let silent = try (0..<HTTPServer.Configuration.refusedConnections).map { _ in
            let client = try RawClient(port: port)
            #expect(reports.wait(timeout: .now() + 5) == .success)
            return client
        }
        let dropped = try RawClient(port: port)
        dropped.send(RawClient.request("GET", "/ping"))
        #expect(dropped.nextResponse().closedWithoutData)
        #expect(reported.withLock { $0 } == Array(repeating: reason, count: HTTPServer.Configuration.refusedConnections + 2))
        silent.forEach { $0.close() }
        // The server sees the held connections close a little after the
        // client does: the deadline only bounds a failure.
        held.forEach { $0.close() }
        let deadline = ContinuousClock.now + .seconds(5)
        var served = false
        while !served && ContinuousClock.now < deadline {
            let client = try RawClient(port: port)
            client.send(RawClient.request("GET", "/ping"))
            served = client.nextResponse().status == 200
            client.close()
        }
        #expect(served, "the closed connections were never uncounted")
    }

    @Test func aBodyOverTheLimitIs413AndNeverReachesTheRoute() throws {
        let (server, port) = try startServer(ToyRoutes())
        defer { server.shutdown() }
        let outcome = try RawClient.exchange(port: port, "POST", "/echo", body: String(repeating: "x", count: 70_000))
        #expect(outcome.status == 413)
    }

    /// libmicrohttpd aborts the process when stopped with a suspended
    /// connection, and a late answer would resume a freed one: shutdown must
    /// answer every waiting request itself and ignore later answers.
    @Test func shutdownAnswers503ToARequestStillWaitingAndIgnoresTheLateAnswer() throws {
        let routes = ToyRoutes()
        let (server, port) = try startServer(routes)
        let client = try RawClient(port: port, timeout: .seconds(10))
        defer { client.close() }
        client.send(RawClient.request("GET", "/held"))
        #expect(routes.waitForHeld(1) == 1)
        let started = ContinuousClock.now
        server.shutdown(drainTimeout: .milliseconds(200))
        #expect(ContinuousClock.now - started < .seconds(5))
        let outcome = client.nextResponse()
        guard case .response(let response) = outcome else {
            Issue.record("no answer before the server stopped: \(outcome)")
            return
        }
        #expect(response.status == 503)
        #expect(response.text == "shuttingDown", "the application renders the refusal")
        // The handler answers after all: nothing happens, nothing crashes.
        routes.answerHeld(Response(status: 200, body: Array("late".utf8)))
    }

    @Test func aRequestAnsweredWithinTheDrainTimeGetsItsAnswer() throws {
        let routes = ToyRoutes()
        let (server, port) = try startServer(routes)
        let client = try RawClient(port: port, timeout: .seconds(10))
        defer { client.close() }
        client.send(RawClient.request("GET", "/held"))
        #expect(routes.waitForHeld(1) == 1)
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) {
            routes.answerHeld(Response(status: 200, body: Array("in time".utf8)))
        }
        server.shutdown(drainTimeout: .seconds(5))
        guard case .response(let response) = client.nextResponse() else {
            Issue.record("no answer")
            return
        }
        #expect(response.status == 200)
        #expect(response.text == "in time")
    }

    /// Answers given inside `resumingTogether` are held back (their
    /// connections stay suspended, so none can complete) and all go out
    /// once it returns.
    @Test func answersGivenTogetherGoOutWhenTheBatchEnds() throws {
        let routes = ToyRoutes()
        let (server, port) = try startServer(routes)
        defer { server.shutdown() }
        let clients = try (0..<3).map { _ in try RawClient(port: port, timeout: .seconds(10)) }
        defer { clients.forEach { $0.close() } }
        for client in clients { client.send(RawClient.request("GET", "/held")) }
        #expect(routes.waitForHeld(3) == 3)
        HTTPServer.resumingTogether {
            routes.answerHeld(Response(status: 200, body: Array("together".utf8)))
            #expect(server.activity.requests == 3, "no connection resumed inside the batch")
        }
        for client in clients {
            guard case .response(let response) = client.nextResponse() else {
                Issue.record("no answer")
                return
            }
            #expect(response.status == 200)
            #expect(response.text == "together")
        }
    }
}
