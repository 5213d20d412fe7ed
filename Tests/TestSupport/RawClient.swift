import Foundation
import Glibc

/// One HTTP/1.1 response as it came off the wire.
struct RawResponse: Sendable, Equatable {
    let status: Int
    let headers: [String: String]
    let body: [UInt8]

    /// The body as UTF-8 text.
    var text: String { String(decoding: body, as: UTF8.self) }

    /// The value of header `name`, whatever its case.
    func header(_ name: String) -> String? { headers[name.lowercased()] }
}

/// What reading the next response found.
enum RawOutcome: Sendable, Equatable {
    /// A whole response.
    case response(RawResponse)
    /// The server closed (or reset) the connection; `leftover` is whatever
    /// came before that and was no whole response.
    case closed(leftover: [UInt8])
    /// Nothing more arrived within the timeout.
    case timedOut(leftover: [UInt8])

    /// The response's status, or nil when none came.
    var status: Int? {
        if case .response(let response) = self { response.status } else { nil }
    }

    /// True when the connection ended without one more byte.
    var closedWithoutData: Bool { self == .closed(leftover: []) }
}

/// A blocking TCP client on raw POSIX sockets, for requests no HTTP library
/// would send: torn, trickled, pipelined, oversized. Every send and receive
/// gives up after `timeout`, so a hung server fails a test instead of hanging it.
final class RawClient {
    struct ConnectError: Error, CustomStringConvertible {
        let description: String
    }

    private var descriptor: Int32
    /// Bytes received and not yet returned as a response.
    private var buffer: [UInt8] = []
    private var sawEnd = false

    /// Connects to 127.0.0.1:`port`.
    init(port: Int, timeout: Duration = .seconds(5)) throws(ConnectError) {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw ConnectError(description: "socket: \(String(cString: strerror(errno)))") }
        var time = timeval(
            tv_sec: Int(timeout.components.seconds),
            tv_usec: Int(timeout.components.attoseconds / 1_000_000_000_000))
        // SO_SNDTIMEO also bounds connect() when the backlog is full.
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        var on: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            let text = String(cString: strerror(errno))
            Glibc.close(descriptor)
            descriptor = -1
            throw ConnectError(description: "connect to port \(port): \(text)")
        }
    }

    deinit { close() }

    /// Sends all of `bytes`; false when the server closed or reset the
    /// connection first (MSG_NOSIGNAL: no SIGPIPE for the test process).
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let count = bytes.withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL))
            }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return false }
            sent += count
        }
        return true
    }

    /// Sends `text` as UTF-8.
    @discardableResult
    func send(_ text: String) -> Bool {
        send(Array(text.utf8))
    }

    /// Reads the next response: status line, headers, and a body of
    /// `Content-Length` bytes (or up to the close when there is none); the
    /// answer to a HEAD (`toHead`) ends with its header fields.
    func nextResponse(toHead: Bool = false) -> RawOutcome {
        while true {
            if let (head, bodyStart) = headEnd(), let parsed = parseHead(head) {
                // An interim response (100 Continue) and the answer to a HEAD have no body.
                if toHead || (100..<200).contains(parsed.status) {
                    buffer.removeFirst(bodyStart)
                    return .response(RawResponse(status: parsed.status, headers: parsed.headers, body: []))
                }
                if let length = parsed.headers["content-length"].flatMap(Int.init) {
                    if buffer.count - bodyStart >= length {
                        let body = Array(buffer[bodyStart..<bodyStart + length])
                        buffer.removeFirst(bodyStart + length)
                        return .response(RawResponse(status: parsed.status, headers: parsed.headers, body: body))
                    }
                } else if sawEnd {
                    let body = Array(buffer[bodyStart...])
                    buffer = []
                    return .response(RawResponse(status: parsed.status, headers: parsed.headers, body: body))
                }
            }
            if sawEnd { return takeLeftover { .closed(leftover: $0) } }
            if !receive() { return takeLeftover { .timedOut(leftover: $0) } }
        }
    }

    /// Why `readReply` found no response.
    struct ReadError: Error, CustomStringConvertible {
        let description: String
    }

    /// The next response, or an error when the connection closed or timed out first.
    func readReply() throws(ReadError) -> RawResponse {
        switch nextResponse() {
        case .response(let response): return response
        case .closed(let leftover): throw ReadError(description: "closed after \(leftover.count) bytes")
        case .timedOut(let leftover): throw ReadError(description: "timed out after \(leftover.count) bytes")
        }
    }

    /// Whether a response (or the end of the stream) can be read within `milliseconds`.
    func isReadable(within milliseconds: Int32) -> Bool {
        if !buffer.isEmpty || sawEnd { return true }
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, milliseconds) > 0
    }

    /// Reads until the server closes the connection or the timeout passes;
    /// true when it closed.
    func waitForClose() -> Bool {
        while !sawEnd {
            if !receive() { return false }
        }
        return true
    }

    /// Closes the socket (again is fine).
    func close() {
        if descriptor >= 0 {
            Glibc.close(descriptor)
            descriptor = -1
        }
    }

    /// Closes with an RST instead of a FIN (SO_LINGER 0), as a crashed client would.
    func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close()
    }

    /// One recv into the buffer; false on timeout. EOF and errors set `sawEnd`.
    private func receive() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                buffer.append(contentsOf: chunk[..<count])
                return true
            }
            if count < 0 && errno == EINTR { continue }
            if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return false }
            sawEnd = true  // 0: orderly close; otherwise ECONNRESET and the like
            return true
        }
    }

    private func takeLeftover(_ make: ([UInt8]) -> RawOutcome) -> RawOutcome {
        let leftover = buffer
        buffer = []
        return make(leftover)
    }

    /// The header block and where the body starts, once `\r\n\r\n` is in.
    private func headEnd() -> (ArraySlice<UInt8>, Int)? {
        guard buffer.count >= 4 else { return nil }
        for index in 0...(buffer.count - 4)
        where buffer[index] == 13 && buffer[index + 1] == 10 && buffer[index + 2] == 13 && buffer[index + 3] == 10 {
            return (buffer[..<index], index + 4)
        }
        return nil
    }

    private func parseHead(_ head: ArraySlice<UInt8>) -> (status: Int, headers: [String: String])? {
        let lines = String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n")
        let statusLine = lines[0].split(separator: " ")
        guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/1."), let status = Int(statusLine[1]) else {
            return nil
        }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return (status, headers)
    }
}

extension RawClient {
    /// The bytes of one request with `Host` and, for a body, `Content-Length`.
    static func request(
        _ method: String, _ path: String, body: String? = nil, headers: [String] = []
    ) -> String {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for header in headers { text += header + "\r\n" }
        if let body { text += "Content-Length: \(body.utf8.count)\r\nContent-Type: application/json\r\n" }
        return text + "\r\n" + (body ?? "")
    }

    /// Sends one request on a new connection and reads its response.
    static func exchange(
        port: Int, _ method: String, _ path: String, body: String? = nil, headers: [String] = []
    ) throws(ConnectError) -> RawOutcome {
        let client = try RawClient(port: port)
        client.send(request(method, path, body: body, headers: headers + ["Connection: close"]))
        let outcome = client.nextResponse()
        // Wait for the server's close too, so its connection count is down again.
        _ = client.waitForClose()
        return outcome
    }
}
