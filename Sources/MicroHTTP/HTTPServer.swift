private import CMicroHTTPD
internal import Foundation
internal import Locking
public import Logging

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
    // only read `handler`, `configuration`, `requests` and `limits` (each
    // behind its lock).

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
        /// Connections served at once. More are reported as
        /// ``ConnectionRefusal/total`` and their first request is refused
        /// (``Refusal/connectionLimit(_:)``), or, past ``refusedConnections``
        /// of them, they are closed unread.
        public var maxConnections: Int
        /// Connections from one IP address at once; 0 means no limit. More
        /// are refused like those over ``maxConnections``, as ``ConnectionRefusal/perIP``.
        public var maxConnectionsPerIP: Int
        /// Connections over a limit kept open at once to refuse their request.
        public static let refusedConnections = 16
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
    /// Renders what the server refuses by itself (the request as far as it was read).
    private let refuse: @Sendable (Refusal, Request) -> Response
    /// Told of every connection refused at a limit, on the polling thread.
    private let connectionRefused: @Sendable (ConnectionRefusal) -> Void
    /// The connections open now, counted here rather than by libmicrohttpd,
    /// whose own limits refuse without telling anyone; the polling threads share it.
    private let limits: Locked<ConnectionLimits>
    private let logger: Logger
    private var daemon: OpaquePointer?
    private var listenSocket: ListenSocket?
    /// The requests in flight; shutdown waits on it for them to drain.
    private let requests = Locked(Requests())

    /// Where the server listens, as printed: `http://HOST:PORT` or `unix:PATH`.
    public var address: String { listenSocket?.address ?? "" }

    /// What the server is busy with: open connections and requests in flight.
    public struct Activity: Sendable, Equatable {
        /// Connections accepted and not yet closed.
        public var connections: Int
        /// Requests that have started (their request line is in) and not yet completed.
        public var requests: Int

        /// Makes an activity (tests compare with one).
        public init(connections: Int, requests: Int) {
            self.connections = connections
            self.requests = requests
        }
    }

    /// What the server is busy with now.
    public var activity: Activity { requests.withLock { Activity(connections: $0.connections, requests: $0.inFlight) } }

    /// Waits until `condition` holds for the server's activity or `deadline`
    /// has passed; returns the activity last seen. Shutdown drains with it;
    /// tests use it to wait for a connection or request to come or go.
    @discardableResult
    public func waitForActivity(
        until deadline: ContinuousClock.Instant, where condition: (Activity) -> Bool
    ) -> Activity {
        requests.withLock(waitingUntil: { condition(Activity(connections: $0.connections, requests: $0.inFlight)) }, deadline: deadline) {
            Activity(connections: $0.connections, requests: $0.inFlight)
        }
    }

    /// Runs `body`, and resumes the connections of the answers it gives only
    /// when it returns, one after another: the polling threads then wake
    /// once for the lot instead of once per answer. For whoever answers many
    /// waiting requests at once (the journal's writer after a group commit).
    /// Only answers given on this thread are held back; nested calls join
    /// the outer batch.
    public static func resumingTogether(_ body: () -> Void) {
        if ResumeBatch.current != nil { return body() }
        let batch = ResumeBatch()
        ResumeBatch.current = batch
        body()
        ResumeBatch.current = nil
        for exchange in batch.exchanges { exchange.resumeAnswered() }
    }

    /// Makes a server; nothing listens before ``start()``.
    public init(
        configuration: Configuration,
        logger: Logger,
        refuse: @escaping @Sendable (Refusal, Request) -> Response = { refusal, _ in Refusal.bare(refusal) },
        connectionRefused: @escaping @Sendable (ConnectionRefusal) -> Void = { _ in },
        handler: @escaping @Sendable (Request, @escaping @Sendable (Response) -> Void) -> Void
    ) {
        self.configuration = configuration
        self.logger = logger
        self.refuse = refuse
        self.connectionRefused = connectionRefused
        limits = Locked(
            ConnectionLimits(
                maxTotal: configuration.maxConnections, maxPerAddress: configuration.maxConnectionsPerIP,
                maxRefused: Configuration.refusedConnections))
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
            // The limits are kept here (see `accept` and `connectionEvent`),
            // which can answer and report what they refuse. libmicrohttpd's
            // own limit, above them, only bounds races between polling
            // threads (it would leave connections in the backlog, unseen).
            MHD_OptionItem(
                option: .CONNECTION_LIMIT,
                value: configuration.maxConnections + Configuration.refusedConnections + configuration.threads,
                ptr_value: nil),
            MHD_OptionItem(
                option: .NOTIFY_CONNECTION, value: unsafeBitCast(connectionCallback, to: Int.self), ptr_value: context),
            // Always set: libmicrohttpd 0.9.75's epoll mode can otherwise pin a
            // connection a client cut off half-way until shutdown.
            MHD_OptionItem(
                option: .CONNECTION_TIMEOUT, value: max(1, configuration.connectionTimeout), ptr_value: nil),
            MHD_OptionItem(
                option: .NOTIFY_COMPLETED,
                value: unsafeBitCast(completedCallback, to: Int.self),
                ptr_value: context),
            // Called first for every request, with the target as sent: the
            // exchange keeps it, so a `%00` cannot cut the path short.
            MHD_OptionItem(option: .URI_LOG_CALLBACK, value: unsafeBitCast(uriCallback, to: Int.self), ptr_value: context),
        ]
        options.append(MHD_OptionItem(option: .END, value: 0, ptr_value: nil))
        daemon = regiond_start_daemon(flags, acceptCallback, context, accessCallback, context, options)
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
        for _ in 0..<10 {
            let waiting = requests.withLock { requests in
                defer { requests.suspended = [:] }
                return Array(requests.suspended.values)
            }
            if waiting.isEmpty { break }
            logger.warning("answering requests still waiting with 503", metadata: ["requests": "\(waiting.count)"])
            for exchange in waiting { exchange.complete(refuse(.shuttingDown, exchange.request)) }
            waitForRequests(until: ContinuousClock.now + .milliseconds(500))
        }
        let left = activity.requests
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

    /// Waits until no request is in flight (`completed` wakes it) or `deadline` has passed.
    private func waitForRequests(until deadline: ContinuousClock.Instant) {
        waitForActivity(until: deadline) { $0.requests == 0 }
    }

    /// What the polling threads and shutdown share about connections and
    /// requests. Every change wakes the waiters: a broadcast nobody waits
    /// for costs an atomic load.
    private struct Requests {
        /// Connections accepted and not yet closed.
        var connections = 0
        /// Requests that have started and not yet completed.
        var inFlight = 0
        /// Exchanges whose connection is suspended, waiting for the handler's
        /// answer; shutdown answers them before it stops libmicrohttpd.
        var suspended: [ObjectIdentifier: Exchange] = [:]
    }

    // MARK: - Requests

    /// Per-request state, kept in libmicrohttpd's request slot from the first
    /// call to the completion callback.
    fileprivate final class Exchange: @unchecked Sendable {
        // @unchecked: `body` and `tooLarge` are touched only on the
        // connection's polling thread; `phase` lives behind its lock.
        enum Phase {
            case reading
            case waiting
            case suspended
            /// Answered while suspended inside ``HTTPServer/resumingTogether(_:)``:
            /// still suspended until the batch ends and resumes it.
            case answered(Response)
            case ready(Response)
            /// Answered, or the connection is gone: later answers are ignored.
            case done
        }

        /// The request target exactly as sent, before libmicrohttpd decodes
        /// it into a C string that would end at a `%00`.
        let target: [UInt8]
        /// The header fields, read once on the first call.
        var headers: [(name: String, value: String)] = []
        /// The method, read on the first call.
        var method = ""
        /// False until the access handler has seen the headers.
        var started = false
        var body: [UInt8] = []
        /// The body grew past the limit: the rest is dropped, the answer is 413.
        var tooLarge = false
        private let phase = Locked(Phase.reading)
        /// The connection; set on the first call of the access handler.
        var connection: OpaquePointer?

        init(target: [UInt8]) {
            self.target = target
        }

        /// The request as far as it was read, without its body: what a refusal sees.
        var request: Request {
            Request(target: target, method: method, headers: headers, body: [])
        }

        /// Runs `body` with the phase, holding the lock.
        func withPhase<T: Sendable>(_ body: (inout Phase) -> T) -> T {
            phase.withLock { body(&$0) }
        }

        /// Called by the handler (or by shutdown), on any thread; the first answer wins.
        func complete(_ response: Response) {
            withPhase { phase in
                switch phase {
                case .reading, .waiting:
                    phase = .ready(response)
                case .suspended:
                    if let batch = ResumeBatch.current {
                        // Resumed with the rest of the batch, by `resumeAnswered`.
                        phase = .answered(response)
                        batch.exchanges.append(self)
                        return
                    }
                    phase = .ready(response)
                    // Resumed holding the lock: `completed` marks the exchange
                    // done under the same lock before libmicrohttpd frees the
                    // connection, so it is still alive here. Safe because
                    // MHD_resume_connection only flags the connection under
                    // libmicrohttpd's cleanup mutex and wakes its polling
                    // thread; it calls none of our callbacks, and libmicrohttpd
                    // holds no lock of its own while calling them, so no
                    // lock-order cycle with `phase` can form.
                    if let connection { MHD_resume_connection(connection) }
                case .answered(let answer):
                    // The first answer wins; but shutdown must not wait for
                    // the batch: resume now (it would resume nothing later).
                    phase = .ready(answer)
                    if let connection { MHD_resume_connection(connection) }
                case .ready, .done:
                    break
                }
            }
        }

        /// Resumes the connection of an answer held back by a batch, unless
        /// shutdown resumed it or the connection is gone meanwhile.
        func resumeAnswered() {
            withPhase { phase in
                guard case .answered(let answer) = phase else { return }
                phase = .ready(answer)
                // Holding the lock, as in `complete`.
                if let connection { MHD_resume_connection(connection) }
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

    /// One call of libmicrohttpd's access handler; see the type's comment.
    fileprivate func access(
        _ connection: OpaquePointer,
        url: UnsafePointer<CChar>,
        method: UnsafePointer<CChar>,
        upload: UnsafePointer<CChar>?,
        uploadSize: UnsafeMutablePointer<Int>,
        slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    ) -> MHD_Result {
        if slot.pointee == nil {
            // Not made by the URI callback (libmicrohttpd always calls it first):
            // fall back on the decoded URL.
            slot.pointee = begin(target: Array(String(cString: url).utf8))
        }
        let exchange = Unmanaged<Exchange>.fromOpaque(slot.pointee!).takeUnretainedValue()
        if !exchange.started {
            // First call: only the headers are in. Refuse what cannot be read
            // unambiguously, or a declared oversized body, now: a response
            // queued on the first call closes the connection unread.
            exchange.started = true
            exchange.connection = connection
            exchange.method = String(cString: method)
            let fields = HeaderFields.read(connection)
            exchange.headers = fields.headers
            if let over = Self.overLimit(regiond_socket_context(connection)) {
                exchange.withPhase { $0 = .done }
                return queue(refuse(.connectionLimit(over), exchange.request), on: connection)
            }
            switch fields.framing {
            case .invalid(let detail):
                exchange.withPhase { $0 = .done }
                return queue(refuse(.ambiguousFraming(detail), exchange.request), on: connection)
            case .length(let declared) where declared > configuration.bodyLimit:
                exchange.withPhase { $0 = .done }
                return queue(refuse(.bodyTooLarge(limit: configuration.bodyLimit), exchange.request), on: connection)
            case .length, .chunked, .none:
                return .YES
            }
        }
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
            return queue(refuse(.bodyTooLarge(limit: configuration.bodyLimit), exchange.request), on: connection)
        }
        // Resumed after the handler answered.
        if let ready = exchange.takeAnswer() {
            return queue(ready, on: connection)
        }
        // The final call: the whole request is in.
        exchange.withPhase { $0 = .waiting }
        let request = Request(target: exchange.target, method: exchange.method, headers: exchange.headers, body: exchange.body)
        exchange.body = []
        handler(request) { response in exchange.complete(response) }
        if let answered = exchange.takeAnswer() {
            return queue(answered, on: connection)
        }
        let suspend = exchange.withPhase { phase in
            guard case .waiting = phase else { return false }
            phase = .suspended
            // Suspended holding the lock, so that `complete` cannot see
            // `.suspended` and resume before the suspend (a resume first
            // would be lost and the request would hang). Safe for the same
            // reason as the resume in `complete`: libmicrohttpd only moves
            // the connection to its suspended list and calls none of ours.
            MHD_suspend_connection(connection)
            return true
        }
        if suspend {
            requests.withLock { $0.suspended[ObjectIdentifier(exchange)] = exchange }
            return .YES
        }
        // Answered between the two looks.
        return exchange.takeAnswer().map { queue($0, on: connection) } ?? .YES
    }

    /// A new request: its exchange, retained in the request slot until `completed`.
    fileprivate func begin(target: [UInt8]) -> UnsafeMutableRawPointer {
        requests.withLock { $0.inFlight += 1 }
        requests.wakeWaiters()
        return Unmanaged.passRetained(Exchange(target: target)).toOpaque()
    }

    fileprivate func completed(_ slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>) {
        guard let raw = slot.pointee else { return }
        let exchange = Unmanaged<Exchange>.fromOpaque(raw).takeRetainedValue()
        slot.pointee = nil
        // The connection is gone: a late answer must not resume it.
        exchange.withPhase { $0 = .done }
        requests.withLock { requests in
            requests.suspended[ObjectIdentifier(exchange)] = nil
            requests.inFlight -= 1
        }
        requests.wakeWaiters()
    }

    /// A connection was accepted (`opened`) or closed.
    fileprivate func connection(opened: Bool) {
        requests.withLock { $0.connections += opened ? 1 : -1 }
        requests.wakeWaiters()
    }

    // MARK: - Connections

    /// A new connection from `address`, before libmicrohttpd makes it one:
    /// over a limit with no room to answer it, it is closed unread (.NO).
    fileprivate func accept(from address: UnsafePointer<sockaddr>?) -> MHD_Result {
        let key = Self.addressKey(address)
        guard let over = limits.withLock({ $0.drop(from: key) }) else { return .YES }
        connectionRefused(over)
        return .NO
    }

    /// A connection started or closed: counted, or uncounted. One over a
    /// limit is tagged in its socket context, so its first request is refused.
    fileprivate func connectionEvent(
        _ connection: OpaquePointer, context: UnsafeMutablePointer<UnsafeMutableRawPointer?>, closed: Bool
    ) {
        let key = Self.addressKey(regiond_client_address(connection))
        // The activity last: whoever waits for the server to be idle then
        // finds the limits counting no more connections either.
        defer { self.connection(opened: !closed) }
        if closed {
            let wasRefused = Self.overLimit(context.pointee) != nil
            limits.withLock { $0.close(from: key, refused: wasRefused) }
        } else if let over = limits.withLock({ $0.open(from: key) }) {
            // Not a pointer: a tag naming the limit, never dereferenced.
            context.pointee = UnsafeMutableRawPointer(bitPattern: 1 + ConnectionRefusal.allCases.firstIndex(of: over)!)
            connectionRefused(over)
        }
    }

    /// The limit a socket context's tag names, if it has one.
    private static func overLimit(_ tag: UnsafeMutableRawPointer?) -> ConnectionRefusal? {
        guard let tag else { return nil }
        let index = Int(bitPattern: tag) - 1
        return ConnectionRefusal.allCases.indices.contains(index) ? ConnectionRefusal.allCases[index] : nil
    }

    /// The IPv4 or IPv6 address as bytes; nil for other families (a Unix socket).
    private static func addressKey(_ address: UnsafePointer<sockaddr>?) -> [UInt8]? {
        guard let address else { return nil }
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
            return address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { withUnsafeBytes(of: $0.pointee.sin_addr, Array.init) }
        case AF_INET6:
            return address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { withUnsafeBytes(of: $0.pointee.sin6_addr, Array.init) }
        default:
            return nil
        }
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

extension Substring {
    /// Without the spaces and tabs around it (HTTP's optional whitespace).
    fileprivate var trimmingOptionalWhitespace: Substring {
        let isOWS: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !isOWS($0) }), let last = lastIndex(where: { !isOWS($0) }) else { return "" }
        return self[first...last]
    }
}

/// The exchanges answered inside one ``HTTPServer/resumingTogether(_:)``,
/// kept in a thread-specific slot of the thread that runs it.
private final class ResumeBatch {
    var exchanges: [HTTPServer.Exchange] = []

    /// The slot's key, made once.
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "pthread_key_create failed")
        return key
    }()

    /// The batch open on this thread, if any (held by `resumingTogether`).
    static var current: ResumeBatch? {
        get { pthread_getspecific(key).map { Unmanaged<ResumeBatch>.fromOpaque($0).takeUnretainedValue() } }
        set { pthread_setspecific(key, newValue.map { Unmanaged.passUnretained($0).toOpaque() }) }
    }
}

/// The header fields of a request, read once with their lengths, and what
/// they say about how the body is framed (RFC 9112 §6).
private struct HeaderFields {
    /// How the body is delimited, or why it cannot be told.
    enum Framing {
        case none
        case length(UInt64)
        case chunked
        case invalid(String)
    }

    var headers: [(name: String, value: String)] = []
    var contentLengths: [Substring] = []
    var transferEncoding = false
    var invalid: String?

    var framing: Framing {
        if let invalid { return .invalid(invalid) }
        if transferEncoding {
            // RFC 9112 §6.1: a sender must not send both; a server may treat
            // it as an error and must then close. Either length could be meant.
            return contentLengths.isEmpty
                ? .chunked : .invalid("Content-Length and Transfer-Encoding together frame the body two ways")
        }
        guard let first = contentLengths.first?.trimmingOptionalWhitespace else { return .none }
        // RFC 9112 §6.3: equal repeated values may be taken as one; different ones are a framing error.
        guard contentLengths.allSatisfy({ $0.trimmingOptionalWhitespace == first }), first.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let length = UInt64(first)
        else {
            return .invalid("Content-Length must be one decimal number; this request gives \(contentLengths.count) values")
        }
        return .length(length)
    }

    static func read(_ connection: OpaquePointer) -> HeaderFields {
        var fields = HeaderFields()
        // One allocation for the usual handful of fields, instead of a growing array.
        fields.headers.reserveCapacity(8)
        // The iterator runs within this call: the fields can live on the stack.
        withUnsafeMutablePointer(to: &fields) { pointer in
            _ = MHD_get_connection_values_n(connection, .HEADER_KIND, collectHeader, pointer)
        }
        return fields
    }
}

// Non-capturing closures, so they convert to C function pointers; the
// server and the request state arrive through the context pointers.

private let accessCallback: MHD_AccessHandlerCallback = {
    context, connection, url, method, _, upload, uploadSize, slot in
    guard let context, let connection, let url, let method, let uploadSize, let slot else { return .NO }
    let server = Unmanaged<HTTPServer>.fromOpaque(context).takeUnretainedValue()
    return server.access(connection, url: url, method: method, upload: upload, uploadSize: uploadSize, slot: slot)
}

private let acceptCallback: MHD_AcceptPolicyCallback = { context, address, _ in
    guard let context else { return .NO }
    return Unmanaged<HTTPServer>.fromOpaque(context).takeUnretainedValue().accept(from: address)
}

private let connectionCallback: MHD_NotifyConnectionCallback = { context, connection, socketContext, event in
    guard let context, let connection, let socketContext else { return }
    Unmanaged<HTTPServer>.fromOpaque(context).takeUnretainedValue().connectionEvent(
        connection, context: socketContext, closed: event == .CONNECTION_NOTIFY_CLOSED)
}

private let completedCallback: MHD_RequestCompletedCallback = { context, _, slot, _ in
    guard let context, let slot else { return }
    Unmanaged<HTTPServer>.fromOpaque(context).takeUnretainedValue().completed(slot)
}

private let uriCallback: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?, OpaquePointer?) -> UnsafeMutableRawPointer? = {
    context, uri, _ in
    guard let context else { return nil }
    let target = uri.map { Array(UnsafeRawBufferPointer(start: $0, count: strlen($0))) } ?? []
    return Unmanaged<HTTPServer>.fromOpaque(context).takeUnretainedValue().begin(target: target)
}

private let collectHeader: MHD_KeyValueIteratorN = { context, _, key, keySize, value, valueSize in
    guard let context, let key else { return .YES }
    let fields = context.assumingMemoryBound(to: HeaderFields.self)
    let name = UnsafeRawBufferPointer(start: key, count: keySize)
    let text = value.map { UnsafeRawBufferPointer(start: $0, count: valueSize) } ?? UnsafeRawBufferPointer(start: nil, count: 0)
    // A NUL inside a name or value would cut the C string libmicrohttpd and
    // others read short: refuse instead of guessing.
    if name.contains(0) || text.contains(0) || strlen(key) != keySize {
        fields.pointee.invalid = "a header field contains a NUL byte"
        return .YES
    }
    // RFC 9112 §5.1 and §2.2: whitespace in or after a field name, or a bare
    // CR, must be refused; a lenient reading is how one request is read as two.
    if name.contains(where: { $0 == 0x20 || $0 == 0x09 }) || text.contains(0x0D) || text.contains(0x0A) {
        fields.pointee.invalid = "a header field name contains whitespace or a value contains a bare CR or LF"
        return .YES
    }
    let header = (name: String(decoding: name, as: UTF8.self), value: String(decoding: text, as: UTF8.self))
    fields.pointee.headers.append(header)
    if header.name.caseInsensitiveEquals("Content-Length") {
        fields.pointee.contentLengths += header.value.split(separator: ",", omittingEmptySubsequences: false)
    } else if header.name.caseInsensitiveEquals("Transfer-Encoding") {
        fields.pointee.transferEncoding = true
    }
    return .YES
}
