internal import MicroHTTP

/// Which refused connections get a log line: the first at once, then at most
/// one line per `interval` with the count since the line before, so a flood
/// of refused connections writes a few lines, not one each. (Counts left
/// when refusals stop are logged with the next one; the metric has them all.)
struct ConnectionRefusalLog {
    /// The least time between two lines.
    let interval: Duration
    private var lastLine: ContinuousClock.Instant?
    /// Refusals since the last line, by reason.
    private var unlogged: [ConnectionRefusal: Int] = [:]

    init(interval: Duration) {
        self.interval = interval
    }

    /// Counts a refusal at `now`; returns the counts to log now (this one
    /// included), or nil when the line waits.
    mutating func refused(_ reason: ConnectionRefusal, at now: ContinuousClock.Instant) -> [ConnectionRefusal: Int]? {
        unlogged[reason, default: 0] += 1
        if let lastLine, now - lastLine < interval { return nil }
        lastLine = now
        defer { unlogged = [:] }
        return unlogged
    }
}
