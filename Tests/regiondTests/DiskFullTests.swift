import Foundation
import Locking
import Testing

@testable import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Journal writes that really fail, without root: regiond runs under a
/// file-size limit (RLIMIT_FSIZE) with SIGXFSZ ignored, so once its journal
/// would pass the limit write(2) fails with EFBIG. The variant with a full
/// tmpfs, which needs root, is scripts/disk-full-test.sh.
@Suite(.serialized) struct DiskFullTests {
    /// dash's `ulimit -f` counts 512-byte blocks (bash's counts KiB): 32 is
    /// 16 KiB. A snapshot of the dozen regions the clients keep (~220 bytes
    /// each) fits; 100 allocate records (~230 bytes each) do not.
    static let limitBlocks = 32
    static let clients = 4
    /// Regions each client keeps; it releases its oldest beyond that, so
    /// every recovery's snapshot stays far below the limit.
    static let keptPerClient = 3

    /// Four clients allocate and release until the journal passes the limit.
    /// Each batch that fails holds several clients' changes, undone newest
    /// first: in another order a release's undo would find its place taken,
    /// and the listing would lose an acknowledged region or keep a refused one.
    @Test func failedJournalWritesAreRefusedUndoneAndRecoveredFrom() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("regiond-diskfull-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        var regiond = try StatefulRegiond(stateDirectory: directory, fileSizeLimitBlocks: Self.limitBlocks)
        #expect(regiond.fileSizeLimit == Self.limitBlocks * 512, "ulimit -f did not set the limit this test assumes")
        // 30 s: under the whole suite on two cores a first fsync can be slow.
        try #require(await regiond.waitUntilReady(), "not ready after start: \(regiond.logTail)")

        let ledger = Ledger()
        let port = regiond.port
        await Self.onThreads(Self.clients) { number in Self.runClient(number, port: port, ledger: ledger) }
        let told = ledger.state.withLock { $0 }
        // Plain values: a failed #expect prints every value in its expression.
        let (problems, refused, sawNotReady) = (told.problems, told.refused, told.sawNotReady)
        #expect(problems.isEmpty)
        #expect(refused > 0, "no change was answered 503 state_unavailable in \(told.attempts) requests")
        #expect(sawNotReady, "/readyz never answered 503 right after a 503 state_unavailable")
        var acknowledged = told.acknowledged
        try Self.expectListed(acknowledged, port: port, "after the failures")

        // Recovery by itself: a fresh snapshot and journal, both far below the limit.
        #expect(await regiond.waitUntilReady(), "/readyz not 200 within 30 s: \(regiond.logTail)")
        let answer = try Self.request(port: port, "POST", "/regions", body: Self.allocation(Self.label("after-recovery")))
        #expect(answer.status == 201, "allocation after recovery: \(answer.text)")
        if answer.status == 201 { acknowledged.insert(try JSONDecoder().decode(Region.self, from: Data(answer.body))) }
        try Self.expectListed(acknowledged, port: port, "after recovery")

        // What was acknowledged is on disk, and nothing refused is.
        regiond.kill()
        regiond = try StatefulRegiond(stateDirectory: directory, fileSizeLimitBlocks: nil)
        try #require(await regiond.waitUntilReady(), "not ready after the restart: \(regiond.logTail)")
        try Self.expectListed(acknowledged, port: regiond.port, "after kill -9 and a restart")
    }

    /// One client: allocates, releases its oldest region beyond `keptPerClient`,
    /// and asks /readyz after every refusal, until the ledger has seen enough.
    static func runClient(_ number: Int, port: Int, ledger: Ledger) {
        var own: [Region] = []  // acknowledged and not released, oldest first
        var attempt = 0
        while !ledger.isDone {
            attempt += 1
            let wanted = label("client\(number)-\(attempt)")
            switch change(port: port, "POST", "/regions", body: allocation(wanted), acknowledgedBy: 201, ledger: ledger) {
            case .acknowledged(let response):
                guard let region = try? JSONDecoder().decode(Region.self, from: Data(response.body)), region.label == wanted
                else { return ledger.note("201 with an unexpected body: \(response.text)") }
                ledger.state.withLock { _ = $0.acknowledged.insert(region) }
                own.append(region)
            case .refused, .wrong:
                break
            }
            guard own.count > keptPerClient else { continue }
            // A refused release is retried next time: the region is still this client's.
            if case .acknowledged = change(port: port, "DELETE", "/regions/\(own[0].offset)", acknowledgedBy: 200, ledger: ledger) {
                let released = own.removeFirst()
                ledger.state.withLock { _ = $0.acknowledged.remove(released) }
            }
        }
    }

    /// What a change got.
    enum Verdict {
        case acknowledged(RawResponse)
        case refused
        case wrong
    }

    /// Sends one change and records in the ledger what it got; after a
    /// refusal it asks /readyz at once, while the journal is likely still failing.
    static func change(
        port: Int, _ method: String, _ path: String, body: String? = nil, acknowledgedBy status: Int, ledger: Ledger
    ) -> Verdict {
        ledger.state.withLock { $0.attempts += 1 }
        let response: RawResponse
        do {
            response = try request(port: port, method, path, body: body)
        } catch {
            ledger.note("\(method) \(path): \(error)")
            return .wrong
        }
        if response.status == status { return .acknowledged(response) }
        guard response.status == 503, (try? JSONDecoder().decode(Problem.self, from: Data(response.body)))?.code == "state_unavailable"
        else {
            ledger.note("\(method) \(path) answered \(response.status): \(response.text)")
            return .wrong
        }
        ledger.state.withLock { $0.refused += 1 }
        switch (try? request(port: port, "GET", "/readyz"))?.status {
        case 503: ledger.state.withLock { $0.sawNotReady = true }
        case 200: break  // the once-a-second recovery came first
        case let other: ledger.note("GET /readyz after a refusal answered \(other.map(String.init) ?? "nothing")")
        }
        return .refused
    }

    /// One request on a new connection, with its whole response.
    static func request(port: Int, _ method: String, _ path: String, body: String? = nil) throws -> RawResponse {
        let outcome = try RawClient.exchange(port: port, method, path, body: body)
        guard case .response(let response) = outcome else { throw Unanswered(description: "no answer: \(outcome)") }
        return response
    }

    /// A request that got no whole response.
    struct Unanswered: Error, CustomStringConvertible {
        let description: String
    }

    /// Checks that `GET /regions` lists exactly the acknowledged regions.
    static func expectListed(
        _ acknowledged: Set<Region>, port: Int, _ when: String, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let response = try request(port: port, "GET", "/regions")
        try #require(response.status == 200, "GET /regions \(when): \(response.text)", sourceLocation: sourceLocation)
        let listed = Set(try JSONDecoder().decode(Listing.self, from: Data(response.body)).regions)
        let (missing, unacknowledged) = (acknowledged.subtracting(listed), listed.subtracting(acknowledged))
        #expect(
            missing.isEmpty && unacknowledged.isEmpty,
            "\(when): acknowledged but not listed \(missing); listed but not acknowledged \(unacknowledged)",
            sourceLocation: sourceLocation)
    }

    /// A 200-byte label that starts with `name`: long labels fill the journal fast.
    static func label(_ name: String) -> String {
        name + String(repeating: "x", count: 200 - name.utf8.count)
    }

    /// The body of a 1 MiB allocation with `label` (letters, digits and dashes: no escaping).
    static func allocation(_ label: String) -> String {
        #"{"size":1048576,"label":"\#(label)"}"#
    }
}

extension DiskFullTests {
    /// A region as the wire shows it, without its size and class.
    struct Region: Hashable, Decodable, CustomStringConvertible {
        var offset: UInt64
        var label: String?

        var description: String { "\(offset) \(label?.prefix(16) ?? "-")" }
    }

    /// The body of `GET /regions`.
    struct Listing: Decodable {
        var regions: [Region]
    }

    /// The part of an RFC 9457 problem the clients look at.
    struct Problem: Decodable {
        var code: String
    }

    /// What the clients were told, shared by their threads.
    final class Ledger: Sendable {
        struct State {
            /// Allocations answered 201, less releases answered 200.
            var acknowledged: Set<Region> = []
            var attempts = 0
            /// Changes answered 503 state_unavailable.
            var refused = 0
            /// Whether /readyz answered 503 right after a refusal.
            var sawNotReady = false
            /// Answers no client may get: other statuses, no answer at all.
            var problems: [String] = []
        }

        let state = Locked(State())

        /// Enough seen: a refusal and /readyz 503, a problem, or so many requests
        /// that the journal has passed its limit many times over.
        var isDone: Bool {
            state.withLock { ($0.refused > 0 && $0.sawNotReady) || !$0.problems.isEmpty || $0.attempts > 2_000 }
        }

        /// Records an answer no client may get.
        func note(_ problem: String) {
            state.withLock { $0.problems.append(problem) }
        }
    }

    /// Runs `body(0..<count)` on `count` threads of its own (not the test's
    /// executor, whose few threads the blocking sockets would hold) and returns
    /// when all are done.
    static func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) async {
        await withCheckedContinuation { continuation in
            let group = DispatchGroup()
            for number in 0..<count {
                group.enter()
                Thread {
                    body(number)
                    group.leave()
                }.start()
            }
            group.notify(queue: .global()) { continuation.resume() }
        }
    }
}

/// regiond with `--state-dir`, optionally under a file-size limit, its
/// output kept for failure messages; killed with SIGKILL when dropped.
final class StatefulRegiond {
    let process = Process()
    let port: Int
    private let transcript = Transcript()

    init(stateDirectory: URL, fileSizeLimitBlocks: Int?) throws {
        guard let executable = RegiondProcess.executable else {
            throw RegiondProcess.Failure(description: "regiond is not built: run `swift build` first")
        }
        let arguments = ["--port", "0", "--state-dir", stateDirectory.path, "--log-level", "notice"]
        if let fileSizeLimitBlocks {
            // An ignored signal stays ignored across exec: write(2) then fails
            // with EFBIG instead of SIGXFSZ killing regiond.
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", #"trap "" XFSZ; ulimit -f \#(fileSizeLimitBlocks); exec "$0" "$@""#, executable.path] + arguments
        } else {
            process.executableURL = executable
            process.arguments = arguments
        }
        // Pipes, not files: the limit would apply to a log file too.
        process.standardOutput = transcript.pipe()
        process.standardError = transcript.pipe()
        try process.run()
        // The listening line; 30 s is the failure bound only (a regiond that
        // exits early costs all of it, in a test that fails anyway).
        let port = transcript.wait(until: .now + .seconds(30)) { text in
            RegiondProcess.port(in: text)
        }
        guard let port else {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw RegiondProcess.Failure(description: "regiond printed no address: \(transcript.text)")
        }
        self.port = port
    }

    deinit { kill() }

    /// `kill -9`, and waits for the exit.
    func kill() {
        if process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// The file-size limit the kernel applies to regiond, in bytes (nil: unlimited).
    var fileSizeLimit: Int? {
        let limits = (try? String(contentsOfFile: "/proc/\(process.processIdentifier)/limits", encoding: .utf8)) ?? ""
        let line = limits.split(separator: "\n").first { $0.hasPrefix("Max file size") }
        return line?.split(separator: " ").dropFirst(3).first.flatMap { Int($0) }
    }

    /// The last lines regiond wrote, for failure messages.
    var logTail: String {
        transcript.text.split(separator: "\n").suffix(10).joined(separator: "\n")
    }

    /// Polls /readyz until it answers 200; false after `seconds`.
    func waitUntilReady(seconds: Double = 30) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if (try? DiskFullTests.request(port: port, "GET", "/readyz"))?.status == 200 { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }
}

/// Text a child process wrote, appended from the pipes' handler threads.
final class Transcript: Sendable {
    private let stored = Locked("")

    var text: String { stored.withLock { $0 } }

    func append(_ data: Data) {
        stored.withLock { $0 += String(decoding: data, as: UTF8.self) }
        stored.wakeWaiters()
    }

    /// A pipe whose every byte is appended here, read on Foundation's handler threads.
    func pipe() -> Pipe {
        let pipe = Pipe()
        pipe.fileHandleForReading.readabilityHandler = { [self] handle in
            let data = handle.availableData
            // At the end of the stream: stop, or the handler is called again and again.
            if data.isEmpty { handle.readabilityHandler = nil } else { append(data) }
        }
        return pipe
    }

    /// Waits until `found` returns a value for the text so far (each append
    /// wakes it) or `deadline` has passed.
    func wait<T>(until deadline: ContinuousClock.Instant, for found: (String) -> T?) -> T? {
        stored.withLock(waitingUntil: { found($0) != nil }, deadline: deadline) { found($0) }
    }
}
