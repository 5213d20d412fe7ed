/// Leases: renewing one, and releasing regions whose lease has ended.
extension RegionService {
    /// Renews the lease of the region at `offset` for `ttl` seconds from now
    /// (its last length when `ttl` is nil); answers the region as renewed.
    public func renew(
        offset: UInt64, ttl: UInt32?, completion: @escaping @Sendable (Result<SavedRegion, RegionError>) -> Void
    ) {
        let (step, applied): (Step<SavedRegion>, [Change]) = queue.sync {
            guard loaded else { return (.answer(.failure(.loading)), []) }
            guard let region = saved[offset] else { return (.answer(.failure(.notAllocated)), []) }
            guard let seconds = ttl ?? region.lease?.seconds else { return (.answer(.failure(.notLeased)), []) }
            let lease = SavedRegion.Lease(seconds: seconds, expiresAt: clock.wallMilliseconds() + Int64(seconds) * 1000)
            var renewed = region
            renewed.lease = lease
            return commit([.renew(region, lease)], answering: renewed, completion)
        }
        applied.forEach(log)
        finish(step, completion)
    }

    /// Releases every region whose lease has ended on the monotonic clock,
    /// journaled like any release; regiond calls it every 100 ms. Returns the
    /// regions released (their journal writes may still be in flight; a
    /// failed one is undone and ends at a later call).
    @discardableResult
    public func expireDue() -> [SavedRegion] {
        let expired: [SavedRegion] = queue.sync {
            guard loaded, !deadlines.isEmpty else { return [] }
            let now = clock.monotonic()
            let due = deadlines.filter { $0.value <= now }.keys.sorted().compactMap { saved[$0] }
            // A release the journal refuses is undone at once; that lease ends at a later call.
            return due.filter { region in !commit([.release(region)], answering: region) { _ in }.1.isEmpty }
        }
        for region in expired {
            logger.info("expired", metadata: Self.metadata(region))
            onExpire(region)
        }
        return expired
    }
}
