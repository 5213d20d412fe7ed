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

    /// Both clocks, read once.
    public func now() -> Now {
        Now(wall: wallMilliseconds(), monotonic: monotonic())
    }

    /// A moment on both clocks.
    public struct Now: Sendable {
        /// Milliseconds since 1970.
        public var wall: Int64
        /// The same moment on the monotonic clock.
        public var monotonic: ContinuousClock.Instant

        public init(wall: Int64, monotonic: ContinuousClock.Instant) {
            self.wall = wall
            self.monotonic = monotonic
        }

        /// When a lease that ends at `expiresAt` (wall clock) ends on the
        /// monotonic clock: as many milliseconds from now as are left (none,
        /// if it has passed). Taken once, when a lease starts, is renewed or
        /// is loaded; a lease started now for `s` seconds ends exactly `s`
        /// seconds from now, whatever the wall clock does meanwhile.
        public func deadline(_ expiresAt: Int64) -> ContinuousClock.Instant {
            monotonic + .milliseconds(max(0, expiresAt - wall))
        }
    }
}
