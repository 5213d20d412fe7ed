/// Leases: renewing one, and releasing regions whose lease has ended.
extension RegionService {
    /// Renews the lease of the region at `offset` (which must be the
    /// allocation `id` and hold `ref`, when given) for `ttl` seconds from now,
    /// or its last length when `ttl` is nil; answers the region as renewed.
    /// A region without a lease is refused (``RegionError/notLeased``).
    public func renew(
        offset: UInt64, id: UInt64? = nil, ref: UInt64? = nil, ttl: UInt32?,
        completion: @escaping @Sendable (Result<SavedRegion, RegionError>) -> Void
    ) {
        let (step, applied): (Step<SavedRegion>, [Applied]) = queue.sync {
            guard loaded else { return (.answer(.failure(.loading)), []) }
            let now = clock.now()
            switch book.decideRenew(offset: offset, id: id, ref: ref, ttl: ttl, now: now) {
            case .failure(let error):
                return (settled(.failure(error)), [])
            case .success(let record):
                let applied = apply([record], now: now)
                return commit(applied, answering: book.regions[offset]!, completion)
            }
        }
        applied.forEach(log)
        finish(step, completion)
    }

    /// Releases every region whose lease has ended on the monotonic clock,
    /// journaled like any release; the daemon calls it every 100 ms. Returns
    /// the regions released (their journal writes may still be in flight; a
    /// failed one is undone and ends at a later call). ``onExpire`` sees each
    /// once its release is durable.
    @discardableResult
    public func expireDue() -> [SavedRegion] {
        let (expired, applied): ([SavedRegion], [Applied]) = queue.sync {
            guard loaded, book.hasLeases else { return ([], []) }
            let records = book.decideExpiry(at: clock.monotonic())
            guard !records.isEmpty else { return ([], []) }
            let regions = records.map { book.regions[$0.offset]! }
            let applied = apply(records, now: clock.now())
            let onExpire = self.onExpire
            // One group: a refused one is undone at once and ends at a later call.
            let (_, committed) = commit(applied, answering: regions) { result in
                if case .success(let regions) = result { regions.forEach(onExpire) }
            }
            return committed.isEmpty ? ([], []) : (regions, committed)
        }
        if journal == nil { expired.forEach(onExpire) }
        for change in applied { logExpiry(change) }
        return expired
    }

    private func logExpiry(_ applied: Applied) {
        if case .allocate(let entry) = applied.undo.record {
            logger.info("expired", metadata: Self.metadata(entry.region))
        }
    }
}
