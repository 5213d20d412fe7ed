internal import Glibc

/// The socket a server listens on, TCP or Unix, opened by us (not by
/// libmicrohttpd) so that port 0, Unix sockets and shutdown(2) work the same way.
struct ListenSocket {
    /// The listening descriptor.
    let descriptor: Int32
    /// Where it listens, as printed: `http://HOST:PORT` or `unix:PATH`.
    let address: String

    /// Binds and listens on `endpoint`.
    static func open(_ endpoint: HTTPServer.Configuration.Endpoint) throws(HTTPServer.StartError) -> ListenSocket {
        switch endpoint {
        case .tcp(let host, let port):
            return try openTCP(host: host, port: port)
        case .unix(let path):
            return try openUnix(path: path)
        }
    }

    private static func openTCP(host: String, port: Int) throws(HTTPServer.StartError) -> ListenSocket {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &found)
        guard status == 0, let info = found else {
            throw HTTPServer.StartError(description: "cannot resolve \(host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(found) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HTTPServer.StartError(description: "socket: \(Self.errorText())") }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0, listen(fd, 1024) == 0 else {
            let text = Self.errorText()
            close(fd)
            throw HTTPServer.StartError(description: "cannot listen on \(host):\(port): \(text)")
        }
        var bound = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &length) }
        }
        let boundPort: UInt16 =
            switch Int32(bound.ss_family) {
            case AF_INET6: withUnsafePointer(to: &bound) {
                    $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
                }
            default: withUnsafePointer(to: &bound) {
                    $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
                }
            }
        let address = host.contains(":") ? "http://[\(host)]:\(boundPort)" : "http://\(host):\(boundPort)"
        return ListenSocket(descriptor: fd, address: address)
    }

    private static func openUnix(path: String) throws(HTTPServer.StartError) -> ListenSocket {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard path.utf8.count < capacity else {
            throw HTTPServer.StartError(description: "unix socket path is longer than \(capacity - 1) bytes: \(path)")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        let length = socklen_t(MemoryLayout<sockaddr_un>.size)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HTTPServer.StartError(description: "socket: \(Self.errorText())") }
        let connectToIt = { (fd: Int32) -> Int32 in
            withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) } }
        }
        var info = stat()
        if lstat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFSOCK else {
                close(fd)
                throw HTTPServer.StartError(description: "\(path) exists and is not a socket; not replacing it")
            }
            // Replace a stale socket only when nothing answers on it.
            let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            let answered = connectToIt(probe) == 0
            close(probe)
            guard !answered else {
                close(fd)
                throw HTTPServer.StartError(description: "another server answers on \(path)")
            }
            unlink(path)
        }
        // The socket file takes its mode from the umask at bind time: 0600.
        let previous = umask(0o177)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        umask(previous)
        guard bound == 0, listen(fd, 1024) == 0 else {
            let text = Self.errorText()
            close(fd)
            throw HTTPServer.StartError(description: "cannot listen on \(path): \(text)")
        }
        return ListenSocket(descriptor: fd, address: "unix:\(path)")
    }

    private static func errorText() -> String {
        String(cString: strerror(errno))
    }
}
