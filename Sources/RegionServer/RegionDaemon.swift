internal import Dispatch
internal import Locking
public import Logging
public import MicroHTTP
public import RegionState

/// regiond as a library: the journal, the service, the routes, the HTTP
/// server, the ticks (leases end, a failed journal recovers) and an orderly
/// stop. The executable is its flags and this; tests start the same thing.
public final class RegionDaemon: @unchecked Sendable {
    // @unchecked: every stored property is a `let` of a Sendable type but
    // `timers`; DispatchSource timers are thread-safe objects that Dispatch
    // does not mark Sendable, and they are only resumed and cancelled.
    /// Everything a daemon is made from.
    public struct Configuration: Sendable {
        /// Where and how the HTTP server listens.
        public var server: HTTPServer.Configuration
        /// The state directory; nil keeps nothing on disk.
        public var stateDirectory: String?
        /// The bearer token every route but the probes requires, if any.
        public var token: String?
        /// The clocks leases are measured by.
        public var clock: LeaseClock
        /// How often ended leases are released: they end on time to within it.
        public var leaseTick: Duration
        /// How often a failed journal tries to start over.
        public var recoveryTick: Duration

        public init(
            server: HTTPServer.Configuration, stateDirectory: String?, token: String? = nil, clock: LeaseClock = .system,
            leaseTick: Duration = .milliseconds(100), recoveryTick: Duration = .seconds(1)
        ) {
            self.server = server
            self.stateDirectory = stateDirectory
            self.token = token
            self.clock = clock
            self.leaseTick = leaseTick
            self.recoveryTick = recoveryTick
        }
    }

    /// Why the daemon could not start, and the exit status each one means.
    public enum Failure: Error, CustomStringConvertible {
        /// The state directory cannot be used (another regiond holds it, or it cannot be made).
        case stateDirectory(JournalError)
        /// The address cannot be listened on.
        case listen(HTTPServer.StartError)
        /// The state does not load (damage that is not a torn tail).
        case load(JournalError)

        public var description: String {
            switch self {
            case .stateDirectory(let error): "cannot use the state directory: \(error)"
            case .listen(let error): "cannot listen: \(error)"
            case .load(let error): "cannot load the state: \(error)"
            }
        }
    }

    /// regiond's version: `regiond --version` and `regiond_build_info` in `/metrics`.
    public static let version = "0.2.0"

    public let service: RegionService
    public let metrics: RegionMetrics
    public let router: Router
    let journal: Journal?
    /// The HTTP server, for tests that wait on its activity.
    public let server: HTTPServer
    let logger: Logger
    let configuration: Configuration
    /// Where the ticks run; they do nothing until the state is loaded, and
    /// end at ``stop()``.
    private let ticks = DispatchQueue(label: "regiond.ticks")
    private let timers: [any DispatchSourceTimer]

    /// Opens (and locks) the state directory and makes everything; nothing
    /// listens before ``listen()``.
    public init(configuration: Configuration, logger: Logger) throws(Failure) {
        self.configuration = configuration
        self.logger = logger
        let metrics = RegionMetrics()
        self.metrics = metrics
        if let directory = configuration.stateDirectory {
            do throws(JournalError) {
                journal = try Journal(directory: directory, logger: logger, completionScope: HTTPServer.resumingTogether) {
                    metrics.recordFsync(duration: $0)
                }
            } catch {
                throw .stateDirectory(error)
            }
        } else {
            journal = nil
        }
        let service = RegionService(journal: journal, logger: logger, clock: configuration.clock) { _ in metrics.recordExpiry() }
        self.service = service
        let router = RegionAPI.router(service: service, metrics: metrics, logger: logger, token: configuration.token)
        self.router = router
        let refusals = Locked(ConnectionRefusalLog(interval: .seconds(10)))
        let limits = configuration.server
        server = HTTPServer(
            configuration: configuration.server, logger: logger,
            refuse: { refusal, request in
                let response = Problem.error(for: refusal).response
                // Counted and logged (sparingly) as a refused connection instead.
                if case .connectionLimit = refusal { return response }
                RegionAPI.observe(
                    request, route: router.template(matching: request.path) ?? "unmatched", response, duration: .zero,
                    metrics: metrics, logger: logger)
                return response
            },
            connectionRefused: { reason in
                metrics.recordConnectionRefused(reason)
                guard let counts = refusals.withLock({ $0.refused(reason, at: ContinuousClock.now) }) else { return }
                logger.warning(
                    "connections refused at the limit",
                    metadata: [
                        "perIP": "\(counts[.perIP] ?? 0)", "total": "\(counts[.total] ?? 0)",
                        "maxConnectionsPerIP": "\(limits.maxConnectionsPerIP)", "maxConnections": "\(limits.maxConnections)",
                    ])
            },
            handler: { request, respond in router.handle(request, respond: respond) })
        timers = [
            Self.timer(on: ticks, every: configuration.leaseTick) { service.expireDue() },
            Self.timer(on: ticks, every: configuration.recoveryTick) { service.recoverIfNeeded() },
        ]
        // Running at once: a tick before the state is loaded does nothing,
        // and a timer is never left suspended (releasing one is a crash).
        timers.forEach { $0.resume() }
    }

    /// Where the server listens: `http://HOST:PORT` or `unix:PATH`.
    public var address: String { server.address }

    /// Starts listening; until ``load()`` ends, region routes answer 503
    /// `state_unavailable` and `/readyz` 503 `not_ready`.
    public func listen() throws(Failure) {
        do throws(HTTPServer.StartError) {
            try server.start()
        } catch {
            throw .listen(error)
        }
    }

    /// Loads the state (a lease that ended while regiond was down ends at
    /// the next tick).
    public func load() throws(Failure) {
        let started = ContinuousClock.now
        do throws(JournalError) {
            try service.load()
        } catch {
            throw .load(error)
        }
        logger.info("ready", metadata: ["loadTime": "\(Self.milliseconds(ContinuousClock.now - started)) ms"])
    }

    /// Stops: requests in flight finish, the ticks end, the journal writes
    /// what is queued and closes.
    public func stop() {
        server.shutdown()
        for timer in timers {
            timer.setEventHandler {}
            timer.cancel()
        }
        // A tick running now finishes before the journal closes.
        ticks.sync {}
        journal?.close()
    }

    /// A timer (still suspended) that runs `tick` on `queue` every `period`.
    private static func timer(on queue: DispatchQueue, every period: Duration, _ tick: @escaping @Sendable () -> Void)
        -> any DispatchSourceTimer
    {
        let timer = DispatchSource.makeTimerSource(queue: queue)
        let nanoseconds = Int(period.components.seconds) * 1_000_000_000 + Int(period.components.attoseconds / 1_000_000_000)
        timer.schedule(deadline: .now(), repeating: .nanoseconds(nanoseconds))
        timer.setEventHandler(handler: tick)
        return timer
    }

    /// A duration in milliseconds, three decimals.
    static func milliseconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let microseconds = seconds * 1_000_000 + attoseconds / 1_000_000_000_000
        return "\(microseconds / 1000).\(String(1000 + microseconds % 1000).dropFirst())"
    }
}
