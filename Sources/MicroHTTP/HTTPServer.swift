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
    private var listenSocket: ListenSocket?
    /// Requests that have started and not yet completed.
    private let inFlight = Atomic<Int>(0)
    /// Exchanges whose connection is suspended, waiting for the handler's
    /// answer; shutdown answers them before it stops libmicrohttpd.
    private let suspended = Suspended()

    /// Where the server listens, as printed: `http://HOST:PORT` or `unix:PATH`.
    public var address: String { listenSocket?.address ?? "" }

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
        let listenSocket = try ListenSocket.open(configuration.endpoint)
        self.listenSocket = listenSocket
        let context = Unmanaged.passUnretained(self).toOpaque()
        let flags = MHD_USE_EPOLL_INTERNAL_THREAD.rawValue | MHD_ALLOW_SUSPEND_RESUME.rawValue
        var options: [MHD_OptionItem] = [
            MHD_OptionItem(option: .LISTEN_SOCKET, value: Int(listenSocket.descriptor), ptr_value: nil),
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
            close(listenSocket.descriptor)
            throw StartError(description: "libmicrohttpd could not start on \(listenSocket.address)")
        }
    }

    /// Stops accepting, lets requests in flight finish (up to `drainTimeout`),
    /// answers 503 to any request still waiting for its handler, then stops
    /// the polling threads and closes the socket.
    public func shutdown(drainTimeout: Duration = .seconds(10)) {
        guard let daemon, let listenSocket else { return }
        // After quiesce new connections would wait in the backlog; shutting
        // the socket down makes them fail at once instead.
        _ = MHD_quiesce_daemon(daemon)
        Glibc.shutdown(listenSocket.descriptor, Int32(SHUT_RDWR))
        waitForRequests(until: ContinuousClock.now + drainTimeout)
        // libmicrohttpd will not stop cleanly while connections are suspended,
        // and a handler answering later must not resume a freed connection:
        // answer every waiting request now (a late answer is then ignored).
        let unavailable = HTTPError(
            503, "shutting_down", "the server stopped before this request was answered; it may or may not have taken effect"
        ).response
        for _ in 0..<10 {
            let waiting = suspended.takeAll()
            if waiting.isEmpty { break }
            logger.warning("answering requests still waiting with 503", metadata: ["requests": "\(waiting.count)"])
            for exchange in waiting { exchange.complete(unavailable) }
            waitForRequests(until: ContinuousClock.now + .milliseconds(500))
        }
        let left = inFlight.load(ordering: .acquiring)
        if left > 0 {
            logger.warning("stopping with requests still in flight", metadata: ["requests": "\(left)"])
        }
        MHD_stop_daemon(daemon)
        self.daemon = nil
        close(listenSocket.descriptor)
        if case .unix(let path) = configuration.endpoint {
            unlink(path)
        }
    }

    /// Sleeps until no request is in flight or `deadline` has passed.
    private func waitForRequests(until deadline: ContinuousClock.Instant) {
        while inFlight.load(ordering: .acquiring) > 0 && ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.005)
        }
    }

    // MARK: - Requests

    /// Per-request state, kept in libmicrohttpd's request slot from the first
    /// call to the completion callback.
    fileprivate final class Exchange: @unchecked Sendable {
        // @unchecked: `body` and `tooLarge` are touched only on the
        // connection's polling thread; `phase` only while holding `lock`.
        enum Phase {
            case reading
            case waiting
            case suspended
            case ready(Response)
            /// Answered, or the connection is gone: later answers are ignored.
            case done
        }

        let connection: OpaquePointer
        var body: [UInt8] = []
        /// The body grew past the limit: the rest is dropped, the answer is 413.
        var tooLarge = false
        private let lock = NSLock()
        private var phase = Phase.reading

        init(connection: OpaquePointer) {
            self.connection = connection
        }

        /// Runs `body` with the phase, holding the lock.
        func withPhase<T>(_ body: (inout Phase) -> T) -> T {
            lock.lock()
            defer { lock.unlock() }
            return body(&phase)
        }

        /// Called by the handler (or by shutdown), on any thread; the first answer wins.
        func complete(_ response: Response) {
            withPhase { phase in
                switch phase {
                case .reading, .waiting:
                    phase = .ready(response)
                case .suspended:
                    phase = .ready(response)
                    MHD_resume_connection(connection)
                case .ready, .done:
                    break
                }
            }
        }

        /// The answer, if there is one to send now; the exchange is then done.
        func takeAnswer() -> Response? {
            withPhase { phase in
                guard case .ready(let response) = phase else { return nil }
                phase = .done
                return response
            }
        }
    }

    /// The exchanges whose connection is suspended.
    private final class Suspended: @unchecked Sendable {
        // @unchecked: `exchanges` is only touched while holding `lock`.
        private let lock = NSLock()
        private var exchanges: [ObjectIdentifier: Exchange] = [:]

        func insert(_ exchange: Exchange) {
            lock.withLock { exchanges[ObjectIdentifier(exchange)] = exchange }
        }

        func remove(_ exchange: Exchange) {
            lock.withLock { _ = exchanges.removeValue(forKey: ObjectIdentifier(exchange)) }
        }

        func takeAll() -> [Exchange] {
            lock.withLock {
                defer { exchanges = [:] }
                return Array(exchanges.values)
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
            exchange.withPhase { $0 = .done }
            return queue(tooLarge(), on: connection)
        }
        // Resumed after the handler answered.
        if let ready = exchange.takeAnswer() {
            return queue(ready, on: connection)
        }
        // The final call: the whole request is in.
        exchange.withPhase { $0 = .waiting }
        let request = makeRequest(connection, url: url, method: method, body: exchange.body)
        exchange.body = []
        handler(request) { response in exchange.complete(response) }
        if let answered = exchange.takeAnswer() {
            return queue(answered, on: connection)
        }
        let suspend = exchange.withPhase { phase in
            guard case .waiting = phase else { return false }
            phase = .suspended
            MHD_suspend_connection(connection)
            return true
        }
        if suspend {
            suspended.insert(exchange)
            return .YES
        }
        // Answered between the two looks.
        return exchange.takeAnswer().map { queue($0, on: connection) } ?? .YES
    }

    fileprivate func completed(_ slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>) {
        guard let raw = slot.pointee else { return }
        let exchange = Unmanaged<Exchange>.fromOpaque(raw).takeRetainedValue()
        slot.pointee = nil
        // The connection is gone: a late answer must not resume it.
        exchange.withPhase { $0 = .done }
        suspended.remove(exchange)
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
