internal import CoreMetrics
internal import Locking
internal import MemoryPool
public import MicroHTTP
internal import Prometheus
internal import RegionState

/// The Prometheus metrics of one server, made through swift-metrics with the
/// swift-prometheus backend on a registry of its own (no process-global
/// bootstrap, so tests can make as many as they like).
///
/// Label values come from small fixed sets only: routes as templates, never
/// raw offsets.
public final class RegionMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    /// The labels of one request counter.
    private struct RequestKey: Hashable {
        let route: String
        let method: String
        let status: Int
    }

    /// Request counters and duration timers, made once per label set.
    private let requestMetrics = Locked<[RequestKey: (counter: CoreMetrics.Counter, timer: CoreMetrics.Timer)]>([:])
    private let allocations: CoreMetrics.Counter
    private let failures = Locked<[String: CoreMetrics.Counter]>([:])
    private let expirations: CoreMetrics.Counter
    private let fsyncs: CoreMetrics.Counter
    private let fsyncDuration: CoreMetrics.Timer
    /// Connections refused at a limit, by reason; all there (at 0) from the start.
    private let refusedConnections: [ConnectionRefusal: CoreMetrics.Counter]

    /// Methods that get their own label value; anything else counts as `other`.
    private static let methods: Set<String> = ["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"]

    /// Makes the metrics, empty.
    public init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        let fast: [Duration] = [
            .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
            .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(100),
            .seconds(1),
        ]
        factory.durationHistogramBuckets = [
            "regiond_http_request_duration_seconds": fast,
            "regiond_journal_fsync_duration_seconds": fast,
        ]
        self.factory = factory
        allocations = CoreMetrics.Counter(label: "regiond_allocations_total", factory: factory)
        expirations = CoreMetrics.Counter(label: "regiond_lease_expirations_total", factory: factory)
        fsyncs = CoreMetrics.Counter(label: "regiond_journal_fsyncs_total", factory: factory)
        fsyncDuration = CoreMetrics.Timer(label: "regiond_journal_fsync_duration_seconds", factory: factory)
        CoreMetrics.Gauge(label: "regiond_build_info", dimensions: [("version", RegionDaemon.version)], factory: factory)
            .record(1)
        refusedConnections = Dictionary(
            uniqueKeysWithValues: ConnectionRefusal.allCases.map {
                ($0, CoreMetrics.Counter(label: "regiond_connections_refused_total", dimensions: [("reason", $0.rawValue)], factory: factory))
            })
    }

    /// Counts one answered request and records how long it took.
    func recordRequest(route: String, method: String, status: Int, duration: Duration) {
        let method = Self.methods.contains(method) ? method : "other"
        let key = RequestKey(route: route, method: method, status: status)
        let (counter, timer) = requestMetrics.withLock { metrics in
            if let found = metrics[key] { return found }
            let made = (
                CoreMetrics.Counter(
                    label: "regiond_http_requests_total",
                    dimensions: [("route", route), ("method", method), ("status", String(status))],
                    factory: factory),
                CoreMetrics.Timer(
                    label: "regiond_http_request_duration_seconds", dimensions: [("route", route)],
                    factory: factory)
            )
            metrics[key] = made
            return made
        }
        counter.increment()
        timer.recordNanoseconds(duration.nanoseconds)
    }

    /// Counts a successful allocation.
    func recordAllocation() {
        allocations.increment()
    }

    /// Counts a failed allocation by its problem code.
    func recordAllocationFailure(reason: String) {
        let counter = failures.withLock { failures in
            if let found = failures[reason] { return found }
            let made = CoreMetrics.Counter(
                label: "regiond_allocation_failures_total", dimensions: [("reason", reason)], factory: factory)
            failures[reason] = made
            return made
        }
        counter.increment()
    }

    /// Counts a connection refused at a limit, before any request on it was read.
    public func recordConnectionRefused(_ reason: ConnectionRefusal) {
        refusedConnections[reason]?.increment()
    }

    /// Counts a region released because its lease ended.
    public func recordExpiry() {
        expirations.increment()
    }

    /// Records one journal fsync.
    public func recordFsync(duration: Duration) {
        fsyncs.increment()
        fsyncDuration.recordNanoseconds(duration.nanoseconds)
    }

    /// The exposition in Prometheus text format, with the pool gauges set from `figures`.
    func exposition(_ figures: (pool: PoolAllocator, wastedBytes: UInt64)) -> [UInt8] {
        let pool = figures.pool
        CoreMetrics.Gauge(label: "regiond_pool_wasted_bytes", factory: factory).record(figures.wastedBytes)
        CoreMetrics.Gauge(label: "regiond_pool_used_bytes", factory: factory).record(pool.usedBytes)
        CoreMetrics.Gauge(label: "regiond_pool_free_bytes", factory: factory).record(pool.freeBytes)
        CoreMetrics.Gauge(label: "regiond_pool_regions", factory: factory).record(pool.regionCount)
        CoreMetrics.Gauge(label: "regiond_pool_largest_free_bytes", factory: factory).record(pool.largestFree)
        for counts in pool.classCounts {
            CoreMetrics.Gauge(
                label: "regiond_pool_free_regions", dimensions: [("class", String(counts.memoryClass.rawValue))],
                factory: factory
            ).record(counts.free)
            CoreMetrics.Gauge(
                label: "regiond_pool_unusable_index", dimensions: [("class", String(counts.memoryClass.rawValue))],
                factory: factory
            ).record(pool.unusableIndex(for: counts.memoryClass))
        }
        return registry.emitToBuffer()
    }
}

extension Duration {
    /// The whole nanoseconds of the duration, clamped to what an `Int64` holds
    /// (about 292 years either way).
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return seconds < 0 ? .min : .max }
        let (total, carry) = scaled.addingReportingOverflow(attoseconds / 1_000_000_000)
        guard !carry else { return seconds < 0 ? .min : .max }
        return total
    }
}
