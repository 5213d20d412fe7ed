private import CMicroHTTPD
internal import Foundation
public import Logging
internal import Synchronization

/// The HTTP front end on libmicrohttpd: the only file that touches C.
///
/// Each request gets an ``Exchange`` stored in libmicrohttpd's per-request
/// slot. Its body is collected on the connection's thread; on the final
/// call the request goes to the handler. A response that is ready at once is
/// queued at once; otherwise the connection is suspended and resumed when
/// the handler answers (after the journal's fsync), so one polling thread
/// serves many requests waiting for the same group commit.
public final class HTTPServer: @unchecked Sendable {
    // @unchecked: `daemon`, `listenSocket` and `address` are set in start()
    // and read afterwards from the thread that calls shutdown(); callbacks
    // only read `handler`, `configuration` and the atomic counter.

    /// How and where the server listens.
    public struct Configuration: Sendable {
        /// Where to listen.
        public enum Endpoint: Sendable, Equatable {
            /// A TCP address; port 0 picks a free port.
            case tcp(host: String, port: Int)
            /// A Unix domain socket path (mode 0600).
            case unix(path: String)
        }

        public var endpoint: Endpoint
        /// libmicrohttpd polling threads.
        public var threads: Int
        /// Connections served at once; more wait in the backlog.
        public var maxConnections: Int
        /// Connections from one IP address at once; 0 means no limit.
        public var maxConnectionsPerIP: Int
        /// Seconds of inactivity after which a connection is closed (never 0).
        public var connectionTimeout: Int
        /// Largest request body read; larger ones get 413 unread.
        public var bodyLimit: Int

        /// Makes a configuration.
        public init(
            endpoint: Endpoint,
            threads: Int = 2,
            maxConnections: Int = 1000,
            maxConnectionsPerIP: Int = 0,
            connectionTimeout: Int = 30,
            bodyLimit: Int = 64 * 1024
        ) {
            self.endpoint = endpoint
            self.threads = threads
            self.maxConnections = maxConnections
            self.maxConnectionsPerIP = maxConnectionsPerIP
            self.connectionTimeout = connectionTimeout
            self.bodyLimit = bodyLimit
        }
    }

    /// Why the server could not start.
    public struct StartError: Error, CustomStringConvertible {
        public let description: String
    }

    private let configuration: Configuration
    private let handler: @Sendable (Request, @escaping @Sendable (Response) -> Void) -> Void
    private let logger: Logger
    private var daemon: OpaquePointer?
    private var listenSocket: Int32 = -1
    /// Requests that have started and not yet completed.
    private let inFlight = Atomic<Int>(0)

    /// Where the server listens, as printed: `http://HOST:PORT` or `unix:PATH`.
    public private(set) var address = ""

    /// Makes a server; nothing listens before ``start()``.
    public init(
        configuration: Configuration,
        logger: Logger,
        handler: @escaping @Sendable (Request, @escaping @Sendable (Response) -> Void) -> Void
    ) {
        self.configuration = configuration
        self.logger = logger
        self.handler = handler
    }

    /// Binds the socket and starts the polling threads.
    public func start() throws(StartError) {
        listenSocket = try openListenSocket()
        let context = Unmanaged.passUnretained(self).toOpaque()
        let flags = MHD_USE_EPOLL_INTERNAL_THREAD.rawValue | MHD_ALLOW_SUSPEND_RESUME.rawValue
        var options: [MHD_OptionItem] = [
            MHD_OptionItem(option: .LISTEN_SOCKET, value: Int(listenSocket), ptr_value: nil),
            MHD_OptionItem(option: .THREAD_POOL_SIZE, value: configuration.threads, ptr_value: nil),
            MHD_OptionItem(option: .CONNECTION_LIMIT, value: configuration.maxConnections, ptr_value: nil),
            // Always set: libmicrohttpd 0.9.75's epoll mode can otherwise pin a
            // connection a client cut off half-way until shutdown.
            MHD_OptionItem(
                option: .CONNECTION_TIMEOUT, value: max(1, configuration.connectionTimeout), ptr_value: nil),
            MHD_OptionItem(
                option: .NOTIFY_COMPLETED,
                value: unsafeBitCast(completedCallback, to: Int.self),
                ptr_value: context),
        ]
        if configuration.maxConnectionsPerIP > 0 {
            options.append(
                MHD_OptionItem(
                    option: .PER_IP_CONNECTION_LIMIT, value: configuration.maxConnectionsPerIP,
                    ptr_value: nil))
        }
        options.append(MHD_OptionItem(option: .END, value: 0, ptr_value: nil))
        daemon = regiond_start_daemon(flags, accessCallback, context, options)
        guard daemon != nil else {
            close(listenSocket)
            throw StartError(description: "libmicrohttpd could not start on \(address)")
        }
    }

    /// Stops accepting, lets requests in flight finish (up to `drainTimeout`),
    /// then stops the polling threads and closes the socket.
    public func shutdown(drainTimeout: Duration = .seconds(10)) {
        guard let daemon else { return }
        // After quiesce new connections would wait in the backlog; shutting
        // the socket down makes them fail at once instead.
        _ = MHD_quiesce_daemon(daemon)
        Glibc.shutdown(listenSocket, Int32(SHUT_RDWR))
        let deadline = ContinuousClock.now + drainTimeout
        while inFlight.load(ordering: .acquiring) > 0 && ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.005)
        }
        let left = inFlight.load(ordering: .acquiring)
        if left > 0 {
            logger.warning("stopping with requests still in flight", metadata: ["requests": "\(left)"])
        }
        MHD_stop_daemon(daemon)
        self.daemon = nil
        close(listenSocket)
        if case .unix(let path) = configuration.endpoint {
            unlink(path)
        }
    }

    // MARK: - Requests

    /// Per-request state, kept in libmicrohttpd's request slot from the first
    /// call to the completion callback.
    fileprivate final class Exchange: @unchecked Sendable {
        // @unchecked: everything but `phase` is touched only on the
        // connection's polling thread; `phase` is guarded by its mutex.
        enum Phase {
            case reading
            case waiting
            case suspended
            case ready(Response)
            case sent
        }

        let connection: OpaquePointer
        var body: [UInt8] = []
        /// The body grew past the limit: the rest is dropped, the answer is 413.
        var tooLarge = false
        let phase = Locked<Phase>(.reading)

        init(connection: OpaquePointer) {
            self.connection = connection
        }

        /// Called by the handler, on any thread, exactly once.
        func complete(_ response: Response) {
            phase.withLock { phase in
                if case .suspended = phase {
                    phase = .ready(response)
                    MHD_resume_connection(connection)
                } else {
                    phase = .ready(response)
                }
            }
        }
    }

    /// One call of libmicrohttpd's access handler; see the type's comment.
    fileprivate func access(
        _ connection: OpaquePointer,
        url: UnsafePointer<CChar>,
        method: UnsafePointer<CChar>,
        upload: UnsafePointer<CChar>?,
        uploadSize: UnsafeMutablePointer<Int>,
        slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    ) -> MHD_Result {
        guard let raw = slot.pointee else {
            // First call: only the headers are in. Refuse a declared oversized
            // body now, so it is never read.
            let exchange = Exchange(connection: connection)
            slot.pointee = Unmanaged.passRetained(exchange).toOpaque()
            inFlight.add(1, ordering: .relaxed)
            if let length = MHD_lookup_connection_value(connection, .HEADER_KIND, "Content-Length"),
                let declared = UInt64(String(cString: length)), declared > configuration.bodyLimit
            {
                return queue(tooLarge(), on: connection)
            }
            return .YES
        }
        let exchange = Unmanaged<Exchange>.fromOpaque(raw).takeUnretainedValue()
        if uploadSize.pointee > 0 {
            let count = uploadSize.pointee
            uploadSize.pointee = 0
            guard !exchange.tooLarge else { return .YES }
            guard exchange.body.count + count <= configuration.bodyLimit else {
                // A chunked body that grew past the limit. libmicrohttpd
                // 0.9.75 queues no response while a body is coming in
                // (MHD_queue_response says NO and the connection is closed
                // unanswered), so drop the rest as it arrives and answer 413
                // on the final call.
                exchange.tooLarge = true
                exchange.body = []
                return .YES
            }
            upload.map { exchange.body.append(contentsOf: UnsafeRawBufferPointer(start: $0, count: count)) }
            return .YES
        }
        if exchange.tooLarge {
            exchange.phase.withLock { $0 = .sent }
            return queue(tooLarge(), on: connection)
        }
        let ready: Response? = exchange.phase.withLock { phase in
            if case .ready(let response) = phase {
                phase = .sent
                return response
            }
            return nil
        }
        if let ready {
            return queue(ready, on: connection)
        }
        // The final call: the whole request is in.
        exchange.phase.withLock { $0 = .waiting }
        let request = makeRequest(connection, url: url, method: method, body: exchange.body)
        exchange.body = []
        handler(request) { response in exchange.complete(response) }
        let answered: Response? = exchange.phase.withLock { phase in
            switch phase {
            case .ready(let response):
                phase = .sent
                return response
            default:
                phase = .suspended
                MHD_suspend_connection(connection)
                return nil
            }
        }
        guard let answered else { return .YES }
        return queue(answered, on: connection)
    }

    fileprivate func completed(_ slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>) {
        guard let raw = slot.pointee else { return }
        Unmanaged<Exchange>.fromOpaque(raw).release()
        slot.pointee = nil
        inFlight.subtract(1, ordering: .releasing)
    }

    private func tooLarge() -> Response {
        HTTPError(413, "payload_too_large", "the body is larger than \(configuration.bodyLimit) bytes").response
    }

    private func makeRequest(
        _ connection: OpaquePointer, url: UnsafePointer<CChar>, method: UnsafePointer<CChar>, body: [UInt8]
    ) -> Request {
        let collected = Unmanaged.passRetained(Collected())
        defer { collected.release() }
        let context = collected.toOpaque()
        _ = MHD_get_connection_values(connection, .HEADER_KIND, collectValue, context)
        _ = MHD_get_connection_values(connection, .GET_ARGUMENT_KIND, collectValue, context)
        let values = collected.takeUnretainedValue()
        return Request(
            method: String(cString: method),
            path: String(cString: url),
            query: values.query,
            headers: values.headers,
            body: body
        )
    }

    private func queue(_ response: Response, on connection: OpaquePointer) -> MHD_Result {
        let created = response.body.withUnsafeBytes { bytes in
            MHD_create_response_from_buffer(
                bytes.count, UnsafeMutableRawPointer(mutating: bytes.baseAddress), .RESPMEM_MUST_COPY)
        }
        guard let created else { return .NO }
        for (name, value) in response.headers {
            _ = MHD_add_response_header(created, name, value)
        }
        let result = MHD_queue_response(connection, UInt32(response.status), created)
        MHD_destroy_response(created)
        return result
    }

    // MARK: - Socket

    private func openListenSocket() throws(StartError) -> Int32 {
        switch configuration.endpoint {
        case .tcp(let host, let port):
            return try openTCPSocket(host: host, port: port)
        case .unix(let path):
            return try openUnixSocket(path: path)
        }
    }

    private func openTCPSocket(host: String, port: Int) throws(StartError) -> Int32 {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &found)
        guard status == 0, let info = found else {
            throw StartError(description: "cannot resolve \(host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(found) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw StartError(description: "socket: \(Self.errorText())") }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0, listen(fd, 1024) == 0 else {
            let text = Self.errorText()
            close(fd)
            throw StartError(description: "cannot listen on \(host):\(port): \(text)")
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
        address = host.contains(":") ? "http://[\(host)]:\(boundPort)" : "http://\(host):\(boundPort)"
        return fd
    }

    private func openUnixSocket(path: String) throws(StartError) -> Int32 {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard path.utf8.count < capacity else {
            throw StartError(description: "unix socket path is longer than \(capacity - 1) bytes: \(path)")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        let length = socklen_t(MemoryLayout<sockaddr_un>.size)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw StartError(description: "socket: \(Self.errorText())") }
        let connectToIt = { (fd: Int32) -> Int32 in
            withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) } }
        }
        var info = stat()
        if lstat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFSOCK else {
                close(fd)
                throw StartError(description: "\(path) exists and is not a socket; not replacing it")
            }
            // Replace a stale socket only when nothing answers on it.
            let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            let answered = connectToIt(probe) == 0
            close(probe)
            guard !answered else {
                close(fd)
                throw StartError(description: "another server answers on \(path)")
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
            throw StartError(description: "cannot listen on \(path): \(text)")
        }
        address = "unix:\(path)"
        return fd
    }

    private static func errorText() -> String {
        String(cString: strerror(errno))
    }
}

/// Header fields and query arguments gathered by ``collectValue``.
private final class Collected {
    var headers: [(name: String, value: String)] = []
    var query: [String: String] = [:]
}

// Non-capturing closures, so they convert to C function pointers; the
// server and the request state arrive through the context pointers.

private let accessCallback: MHD_AccessHandlerCallback = {
    context, connection, url, method, _, upload, uploadSize, slot in
    guard let context, let connection, let url, let method, let uploadSize, let slot else { return .NO }
    let server = Unmanaged<HTTPServer>.fromOpaque(context).takeUnretainedValue()
    return server.access(connection, url: url, method: method, upload: upload, uploadSize: uploadSize, slot: slot)
}

private let completedCallback: MHD_RequestCompletedCallback = { context, _, slot, _ in
    guard let context, let slot else { return }
    Unmanaged<HTTPServer>.fromOpaque(context).takeUnretainedValue().completed(slot)
}

private let collectValue: MHD_KeyValueIterator = { context, kind, key, value in
    guard let context, let key else { return .YES }
    let collected = Unmanaged<Collected>.fromOpaque(context).takeUnretainedValue()
    let name = String(cString: key)
    let text = value.map { String(cString: $0) } ?? ""
    if kind == .GET_ARGUMENT_KIND {
        if collected.query[name] == nil { collected.query[name] = text }
    } else {
        collected.headers.append((name, text))
    }
    return .YES
}
