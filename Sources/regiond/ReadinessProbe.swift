import Glibc

/// Asks a regiond `GET /readyz` over a plain socket (the runtime image has
/// no curl) and says whether it answered 200.
struct ReadinessProbe {
    /// Where regiond listens.
    enum Target: Equatable, CustomStringConvertible {
        case tcp(host: String, port: Int)
        case unix(path: String)

        var description: String {
            switch self {
            case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            case .unix(let path): "unix:\(path)"
            }
        }
    }

    /// Why regiond is not ready, in one line.
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    let target: Target
    /// For the whole exchange: connecting, sending, reading the status line.
    let timeout: Duration

    /// Returns when `/readyz` answers 200; throws why not otherwise.
    func check() throws(Failure) {
        let descriptor = try connect()
        defer { close(descriptor) }
        let deadline = ContinuousClock.now + timeout
        let request = Array("GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8)
        var sent = 0
        while sent < request.count {
            try bound(descriptor, SO_SNDTIMEO, by: deadline)
            let count = request.withUnsafeBytes { send(descriptor, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw failure("cannot send to \(target)") }
            sent += count
        }
        // The status line is all we need: "HTTP/1.1 200 OK".
        var received: [UInt8] = []
        while !received.contains(UInt8(ascii: "\n")) && received.count < 1024 {
            try bound(descriptor, SO_RCVTIMEO, by: deadline)
            var chunk = [UInt8](repeating: 0, count: 1024)
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { throw timedOut() }
            guard count > 0 else {
                if count < 0 { throw failure("cannot read from \(target)") }
                break
            }
            received += chunk[..<count]
        }
        let line = String(decoding: received.prefix { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        let fields = line.split(separator: " ", maxSplits: 2)
        guard fields.count >= 2, fields[0].hasPrefix("HTTP/") else {
            throw Failure(description: "\(target) answered no HTTP status line" + (line.isEmpty ? "" : ": \(line)"))
        }
        guard fields[1] == "200" else { throw Failure(description: "GET /readyz on \(target) answered \(line.dropFirst(fields[0].count + 1))") }
    }

    /// A connected stream socket; SO_SNDTIMEO bounds connect(2) too.
    private func connect() throws(Failure) -> Int32 {
        let deadline = ContinuousClock.now + timeout
        switch target {
        case .unix(let path):
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8) + [0]
            guard bytes.count <= MemoryLayout.size(ofValue: address.sun_path) else {
                throw Failure(description: "the socket path is too long: \(path)")
            }
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
            return try withUnsafeBytes(of: &address) { raw throws(Failure) in
                try connect(family: AF_UNIX, raw, deadline: deadline)
            }
        case .tcp(let host, let port):
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            hints.ai_flags = AI_NUMERICSERV
            var found: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(host, String(port), &hints, &found)
            guard status == 0, let first = found else {
                throw Failure(description: "cannot resolve \(host): \(String(cString: gai_strerror(status)))")
            }
            defer { freeaddrinfo(found) }
            let raw = UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen))
            return try connect(family: first.pointee.ai_family, raw, deadline: deadline)
        }
    }

    private func connect(family: Int32, _ address: UnsafeRawBufferPointer, deadline: ContinuousClock.Instant) throws(Failure) -> Int32 {
        let descriptor = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw failure("socket") }
        do throws(Failure) {
            try bound(descriptor, SO_SNDTIMEO, by: deadline)
            let pointer = address.baseAddress!.assumingMemoryBound(to: sockaddr.self)
            guard Glibc.connect(descriptor, pointer, socklen_t(address.count)) == 0 else {
                // EINPROGRESS after SO_SNDTIMEO: the listener's backlog is full or the host does not answer.
                throw errno == EINPROGRESS ? timedOut() : failure("cannot connect to \(target)")
            }
        } catch {
            close(descriptor)
            throw error
        }
        return descriptor
    }

    /// Sets the socket's send or receive timeout to what is left before `deadline`.
    private func bound(_ descriptor: Int32, _ option: Int32, by deadline: ContinuousClock.Instant) throws(Failure) {
        let left = deadline - ContinuousClock.now
        guard left > .zero else { throw timedOut() }
        let (seconds, attoseconds) = left.components
        // Zero would mean "no timeout": at least one microsecond.
        var time = timeval(tv_sec: Int(seconds), tv_usec: max(1, Int(attoseconds / 1_000_000_000_000)))
        setsockopt(descriptor, SOL_SOCKET, option, &time, socklen_t(MemoryLayout<timeval>.size))
    }

    private func timedOut() -> Failure {
        Failure(description: "no answer from \(target) within \(timeout)")
    }

    /// `what` and the text of `errno`.
    private func failure(_ what: String) -> Failure {
        Failure(description: "\(what): \(String(cString: strerror(errno)))")
    }
}
