import Foundation
import Locking
import Testing

@testable import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The built `regiond` executable, run as a child process.
final class RegiondProcess {
    let process = Process()
    let port: Int
    /// What regiond wrote to standard error (its log).
    let transcript = Transcript()
    /// Set by the termination handler.
    private let exited = Locked(false)

    /// `.build/debug/regiond` next to the test bundle, or `<repo>/.build/debug/regiond`.
    static var executable: URL? {
        let bundleDirectory = Bundle.main.bundleURL
        let candidates = [
            bundleDirectory.appendingPathComponent("regiond"),
            bundleDirectory.deletingLastPathComponent().appendingPathComponent("regiond"),
            repositoryRoot.appendingPathComponent(".build/debug/regiond"),
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    /// The port of the `listening on http://HOST:PORT` log line in `text`.
    static func port(in text: String) -> Int? {
        text.split(separator: "\n")
            .first { $0.contains("listening on http://") }
            .flatMap { Int($0.split(separator: ":").last ?? "") }
    }

    /// Starts `regiond --port 0 --log-level LEVEL` (plus `arguments`) in a
    /// temporary directory and waits for the `listening on` line on stderr.
    init(_ arguments: [String] = [], logLevel: String = "notice", environment: [String: String]? = nil) throws {
        guard let executable = Self.executable else {
            throw Failure(description: "regiond is not built: run `swift build` first (looked next to \(Bundle.main.bundleURL.path) and in \(repositoryRoot.path)/.build/debug)")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("regiond-test-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        process.executableURL = executable
        process.arguments = ["--port", "0", "--log-level", logLevel] + arguments
        process.currentDirectoryURL = directory
        if let environment { process.environment = environment }
        process.standardError = transcript.pipe()
        process.terminationHandler = { [exited] _ in
            exited.withLock { $0 = true }
            exited.wakeWaiters()
        }
        try process.run()
        // 60 s is the failure bound only: each log line wakes the wait.
        guard let port = transcript.wait(until: .now + .seconds(60), for: Self.port(in:)) else {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw Failure(description: "regiond printed no address: \(transcript.text)")
        }
        self.port = port
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    func signal(_ number: Int32) {
        kill(process.processIdentifier, number)
    }

    /// Waits for the process to exit (its termination handler wakes the
    /// wait); false if it did not within `seconds`, the failure bound.
    func waitForExit(seconds: Int = 60) -> Bool {
        exited.withLock(waitingUntil: { $0 }, deadline: .now + .seconds(seconds)) { $0 }
    }

    /// Waits for a log line containing `text`; false if none came within `seconds`.
    func waitForLog(_ text: String, seconds: Int = 30) -> Bool {
        transcript.wait(until: .now + .seconds(seconds)) { $0.contains(text) ? true : nil } ?? false
    }

    deinit {
        if process.isRunning {
            // Never leave a child behind: it holds the test runner's stderr open.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// Signals and child processes: one at a time.
@Suite(.serialized) struct ShutdownTests {
    @Test func theBuiltBinaryIsThere() {
        #expect(RegiondProcess.executable != nil, "regiond is not built next to the tests: run `swift build`")
    }

    @Test func sigtermFinishesTheRequestInFlightAndExitsZero() async throws {
        let regiond = try RegiondProcess(logLevel: "info")
        let connection = try RawClient(port: regiond.port, timeout: .seconds(30))
        let body = Array(#"{"size":    1048576}"#.utf8)
        #expect(body.count == 20)
        connection.send("POST /regions HTTP/1.1\r\nHost: test\r\nContent-Length: 20\r\nExpect: 100-continue\r\n\r\n")
        // The interim answer shows the server has taken the head: the request is in flight.
        #expect(try connection.readReply().status == 100)
        connection.send(Array(body[..<10]))
        regiond.signal(SIGTERM)
        // Its log says it is stopping, with the request still in flight.
        #expect(regiond.waitForLog("stopping"), "no stopping line: \(regiond.transcript.text)")
        #expect(regiond.process.isRunning, "regiond waits for the request in flight")
        connection.send(Array(body[10...]))
        let reply = try connection.readReply()
        #expect(reply.status == 201)
        #expect(reply.text == #"{"class":0,"id":1,"offset":0,"ref":1,"size":1048576}"#)
        #expect(regiond.waitForExit(), "regiond did not exit after SIGTERM")
        #expect(regiond.process.terminationReason == .exit)
        #expect(regiond.process.terminationStatus == 0)
        #expect(throws: RawClient.ConnectError.self) { try RawClient(port: regiond.port) }
    }

    @Test(arguments: [SIGTERM, SIGINT])
    func anIdleServerExitsZeroOnSignal(_ number: Int32) async throws {
        let regiond = try RegiondProcess()
        let probe = try RawClient(port: regiond.port, timeout: .seconds(30))
        probe.send("GET /livez HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        #expect(try probe.readReply().status == 200)
        regiond.signal(number)
        #expect(regiond.waitForExit(), "regiond did not exit after signal \(number)")
        #expect(regiond.process.terminationReason == .exit)
        #expect(regiond.process.terminationStatus == 0)
        #expect(throws: RawClient.ConnectError.self) { try RawClient(port: regiond.port) }
    }

    /// A supervisor may signal as soon as it reads the address: the handlers
    /// must be in place by then: the signals are blocked before any thread
    /// starts and taken with sigwait, so none is lost.
    @Test(arguments: [SIGTERM, SIGINT])
    func aSignalRightAfterTheListeningLineExitsZero(_ number: Int32) async throws {
        let regiond = try RegiondProcess()
        defer { regiond.signal(SIGKILL) }
        regiond.signal(number)
        let exited = regiond.waitForExit(seconds: 10)
        #expect(exited, "regiond did not exit after signal \(number)")
        if exited {
            #expect(regiond.process.terminationReason == .exit, "killed by the signal: no handler yet")
            #expect(regiond.process.terminationStatus == 0)
        }
    }
}
