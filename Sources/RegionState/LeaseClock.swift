internal import Glibc

/// The two clocks leases need: the wall clock, which an expiry is stored in
/// so that it survives a restart, and the monotonic clock, which decides
/// when a lease ends while regiond runs, so that a clock stepped backwards
/// never ends one early (nor a step forwards: a lease lasts its full length).
/// Tests pass clocks they move by hand.
public struct LeaseClock: Sendable {
    /// Milliseconds since 1970, from the wall clock.
    public var wallMilliseconds: @Sendable () -> Int64
    /// Now, on the monotonic clock.
    public var monotonic: @Sendable () -> ContinuousClock.Instant

    public init(
        wallMilliseconds: @escaping @Sendable () -> Int64, monotonic: @escaping @Sendable () -> ContinuousClock.Instant
    ) {
        self.wallMilliseconds = wallMilliseconds
        self.monotonic = monotonic
    }

    /// The system's clocks.
    public static let system = LeaseClock(
        wallMilliseconds: {
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
        },
        monotonic: { ContinuousClock.now })

    /// When `lease` ends on the monotonic clock: as many milliseconds from
    /// now as the wall clock says are left (none, if it has passed).
    func deadline(_ lease: SavedRegion.Lease) -> ContinuousClock.Instant {
        monotonic() + .milliseconds(max(0, lease.expiresAt - wallMilliseconds()))
    }
}
