import Foundation
import MicroHTTP
import Testing

@testable import RegionServer
@testable import TestSupport

/// Requests a hostile client crafts to be read two ways (RFC 9112 §6) or
/// cut short by a C string, on raw sockets against the region API: each is
/// refused or answered with exactly one reading, and the state is untouched.
@Suite struct FramingTests {
    /// A live server with one 1 MiB region at offset 0, and how to read its state.
    struct Fixture {
        let live: LiveServer

        init() throws {
            live = try LiveServer()
            let created = try RawClient.exchange(port: live.port, "POST", "/regions", body: #"{"size": 1048576}"#)
            #expect(created.status == 201)
        }

        /// `GET /regions` and `GET /pool`, as text.
        func state() throws -> [String] {
            try ["/regions", "/pool"].map { path in
                guard case .response(let response) = try RawClient.exchange(port: live.port, "GET", path) else {
                    Issue.record("GET \(path) got no answer")
                    return ""
                }
                return response.text
            }
        }

        /// Sends raw bytes on a new connection; the first answer, and whether the server then closed.
        func send(_ text: String) throws -> (outcome: RawOutcome, closed: Bool) {
            let client = try RawClient(port: live.port, timeout: .seconds(3))
            defer { client.close() }
            client.send(text)
            let outcome = client.nextResponse()
            return (outcome, client.waitForClose())
        }
    }

    @Test(arguments: [
        ("DELETE", "/regions/0%00"), ("GET", "/regions/0%00"), ("DELETE", "/regions/0%00junk"),
        ("GET", "/regions/0%2500"), ("DELETE", "/regions/%000"),
    ])
    func aNULInTheOffsetIsInvalidOffsetAndChangesNothing(method: String, path: String) throws {
        let fixture = try Fixture()
        defer { fixture.live.stop() }
        let before = try fixture.state()
        let outcome = try RawClient.exchange(port: fixture.live.port, method, path)
        guard case .response(let response) = outcome else {
            Issue.record("no answer: \(outcome)")
            return
        }
        _ = expectProblem(response, 400, "invalid_offset")
        #expect(try fixture.state() == before)
    }

    @Test func aNULInAQueryValueDoesNotCutItShort() throws {
        let fixture = try Fixture()
        defer { fixture.live.stop() }
        _ = try RawClient.exchange(port: fixture.live.port, "POST", "/regions", body: #"{"size": 1048576, "label": "a"}"#)
        guard case .response(let response) = try RawClient.exchange(port: fixture.live.port, "GET", "/regions?label=a%00b")
        else {
            Issue.record("no answer")
            return
        }
        #expect(response.status == 200)
        #expect(response.text == #"{"regions":[]}"#)
    }

    /// How regiond answers each framing trick: 400 and a close, or the one
    /// reading RFC 9112 allows. None of them allocates twice or reads a
    /// body two ways.
    enum Trick: String, CaseIterable, Sendable {
        case twoDifferentContentLengths
        case aListOfDifferentContentLengths
        case twoEqualContentLengths
        case aListOfEqualContentLengths
        case contentLengthAndTransferEncoding
        case aSignedContentLength
        case obsFoldInAHeader
        case aBareLFLineEnd
        case aBareCRInAValue
        case aSpaceInAHeaderName
        case aSpaceBeforeTheColon

        var request: String {
            let body = #"{"size":1048576}"#
            let start = "POST /regions HTTP/1.1\r\nHost: x\r\n"
            return switch self {
            case .twoDifferentContentLengths: start + "Content-Length: 16\r\nContent-Length: 17\r\n\r\n" + body + " "
            case .aListOfDifferentContentLengths: start + "Content-Length: 16, 17\r\n\r\n" + body + " "
            case .twoEqualContentLengths: start + "Content-Length: 16\r\nContent-Length: 16\r\n\r\n" + body
            case .aListOfEqualContentLengths: start + "Content-Length: 16, 16\r\n\r\n" + body
            case .contentLengthAndTransferEncoding:
                start + "Content-Length: 16\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n" + body + "\r\n0\r\n\r\n"
            case .aSignedContentLength: start + "Content-Length: +16\r\n\r\n" + body
            case .obsFoldInAHeader: start + "X-Note: one\r\n two\r\nContent-Length: 16\r\n\r\n" + body
            case .aBareLFLineEnd: "POST /regions HTTP/1.1\nHost: x\nContent-Length: 16\n\n" + body
            case .aBareCRInAValue: start + "X-Note: a\rb\r\nContent-Length: 16\r\n\r\n" + body
            case .aSpaceInAHeaderName: start + "Content Length: 16\r\n\r\n" + body
            case .aSpaceBeforeTheColon: start + "Content-Length : 16\r\n\r\n" + body
            }
        }

        /// What regiond answers: a status, and whether it must close the connection after it.
        var expected: (status: Int?, closes: Bool) {
            switch self {
            case .twoDifferentContentLengths, .aListOfDifferentContentLengths, .contentLengthAndTransferEncoding,
                .aSignedContentLength, .aSpaceBeforeTheColon, .aSpaceInAHeaderName, .aBareCRInAValue,
                .aListOfEqualContentLengths:
                (400, true)
            case .twoEqualContentLengths, .obsFoldInAHeader, .aBareLFLineEnd:
                // One reading only: equal values are one value (RFC 9112 §6.3);
                // libmicrohttpd joins a folded line and accepts bare LF line ends.
                (201, false)
            }
        }
    }

    @Test(arguments: Trick.allCases)
    func aFramingTrickGetsItsOneAnswer(trick: Trick) throws {
        let fixture = try Fixture()
        defer { fixture.live.stop() }
        let before = try fixture.state()
        let (outcome, closed) = try fixture.send(trick.request)
        #expect(outcome.status == trick.expected.status, "\(trick): \(outcome)")
        if trick.expected.closes { #expect(closed, "\(trick) must close the connection") }
        let regions = try fixture.state()[0]
        if outcome.status == 201 {
            // Exactly one allocation: the region at 0 and one more.
            #expect(regions.components(separatedBy: "\"offset\"").count - 1 == 2, "\(regions)")
        } else {
            #expect(try fixture.state() == before)
        }
    }
}
