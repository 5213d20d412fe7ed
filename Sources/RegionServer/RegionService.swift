internal import Dispatch
public import Logging
public import MemoryPool

/// Owns the one ``PoolAllocator`` of the process and everything saved with
/// its regions (labels, idempotency keys), all touched only on one serial
/// queue, and writes every change to the ``Journal`` before it is answered.
///
/// A change is applied in memory and appended to the journal on the queue;
/// its answer waits until the journal's group commit has it on disk. If the
/// write fails, the change is undone (the journal fails pending records
/// newest first, so undos run in reverse order) and the caller gets 503.
public final class RegionService: @unchecked Sendable {
    // @unchecked: `pool`, `saved`, `keys`, `loaded` and `pending` are read
    // and written only on `queue`; the rest is immutable.
    private let queue = DispatchQueue(label: "regiond.pool")
    private var pool = PoolAllocator()
    /// Every allocated region with its label and key, by offset.
    private var saved: [UInt64: SavedRegion] = [:]
    /// Offsets of allocated regions by idempotency key.
    private var keys: [String: UInt64] = [:]
    /// False until the journal's state is loaded.
    private var loaded: Bool
    /// Changes appended to the journal and not yet durable or undone.
    private var pending = 0
    /// The sequence number of the last change appended.
    private var lastSequence: UInt64?
    private let journal: Journal?
    private let logger: Logger

    /// What `allocate` did.
    enum Allocation: Sendable {
        /// A new region.
        case created(SavedRegion)
        /// The region an earlier request with the same idempotency key got.
        case replayed(SavedRegion)
    }

    /// Makes a service. Without a journal it keeps nothing on disk and is
    /// ready at once; with one, it is ready after ``load()``.
    public init(journal: Journal?, logger: Logger) {
        self.journal = journal
        self.logger = logger
        self.loaded = journal == nil
        saved.reserveCapacity(4096)
    }

    /// Loads the journal's state; until then region routes answer 503.
    public func load() throws(JournalError) {
        guard let journal else { return }
        let (pool, saved) = try journal.load()
        queue.sync {
            self.pool = pool
            self.saved = saved
            self.keys = Dictionary(
                saved.values.compactMap { region in region.idempotencyKey.map { ($0, region.offset) } },
                uniquingKeysWith: { first, _ in first })
            self.loaded = true
        }
        logger.info("state loaded", metadata: ["regions": "\(saved.count)"])
    }

    /// Allocates a region, or replays the one an earlier request with the same key got.
    func allocate(
        size: UInt64, label: String?, key: String?,
        completion: @escaping @Sendable (Result<Allocation, HTTPError>) -> Void
    ) {
        let (result, sequence): (Result<Allocation, HTTPError>, UInt64?) = queue.sync {
            guard loaded else { return (.failure(Self.loading), nil) }
            if let key, let offset = keys[key], let earlier = saved[offset] {
                guard earlier.requestedSize == size, earlier.label == label else {
                    return (
                        .failure(
                            HTTPError(
                                422, "idempotency_key_reused",
                                "Idempotency-Key \(key) was used for a request with another size or label")),
                        nil
                    )
                }
                // The first request may still be waiting for its fsync: so must the replay.
                return (.success(.replayed(earlier)), lastSequence)
            }
            let region: Region
            do throws(PoolError) {
                region = try pool.allocate(size: size)
            } catch {
                return (.failure(poolError(error)), nil)
            }
            let entry = SavedRegion(
                offset: region.offset, memoryClass: region.memoryClass, label: label, idempotencyKey: key,
                requestedSize: key == nil ? nil : size)
            apply(.allocate(entry))
            guard let sequence = journal.map({ append(.allocate(entry), $0) }) else {
                return (.success(.created(entry)), nil)
            }
            return sequence.map { (.success(.created(entry)), $0) } ?? (.failure(Self.unavailable), nil)
        }
        finish(result, after: sequence, completion: completion)
    }

    /// Releases the region at `offset`.
    func release(offset: UInt64, completion: @escaping @Sendable (Result<SavedRegion, HTTPError>) -> Void) {
        let (result, sequence): (Result<SavedRegion, HTTPError>, UInt64?) = queue.sync {
            guard loaded else { return (.failure(Self.loading), nil) }
            guard let entry = saved[offset], pool.region(at: offset) != nil else {
                return (.failure(poolError(.notAllocated)), nil)
            }
            apply(.release(entry))
            guard let sequence = journal.map({ append(.release(entry), $0) }) else {
                return (.success(entry), nil)
            }
            return sequence.map { (.success(entry), $0) } ?? (.failure(Self.unavailable), nil)
        }
        finish(result, after: sequence, completion: completion)
    }

    /// The allocated region at `offset`, if any.
    func region(at offset: UInt64) throws(HTTPError) -> SavedRegion? {
        try queue.sync { () -> Result<SavedRegion?, HTTPError> in
            loaded ? .success(saved[offset]) : .failure(Self.loading)
        }.get()
    }

    /// Allocated regions in offset order, only those labelled `label` when it is given.
    func regions(label: String? = nil) throws(HTTPError) -> [SavedRegion] {
        try queue.sync { () -> Result<[SavedRegion], HTTPError> in
            guard loaded else { return .failure(Self.loading) }
            return .success(
                pool.regions.compactMap { region in
                    let entry = saved[region.offset]!  // every allocated region is saved
                    return label == nil || entry.label == label ? entry : nil
                })
        }.get()
    }

    /// A consistent copy of the pool, for statistics.
    var poolSnapshot: PoolAllocator {
        queue.sync { pool }
    }

    /// Whether the state is loaded and the journal takes changes.
    var isReady: Bool {
        queue.sync { loaded } && journal?.isHealthy != false
    }

    /// After a journal failure, once every failed change is undone, starts
    /// the journal over from the state in memory. Called now and then.
    public func recoverIfNeeded() {
        guard let journal, !journal.isHealthy else { return }
        let live: [SavedRegion]? = queue.sync { loaded && pending == 0 ? Array(saved.values) : nil }
        guard let live else { return }
        do throws(JournalError) {
            // No change can slip in between: appends fail while the journal is unhealthy.
            try journal.recover(liveRegions: live)
            logger.notice("journal recovered", metadata: ["regions": "\(live.count)"])
        } catch {
            logger.error("journal still failing", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Changes

    /// One change, as applied to the state and undone after a failed write.
    private enum Change {
        case allocate(SavedRegion)
        case release(SavedRegion)

        var record: JournalRecord {
            switch self {
            case .allocate(let region): .allocate(region)
            case .release(let region): .release(offset: region.offset)
            }
        }
    }

    /// Applies a change the pool has already checked (allocate) or will accept (release).
    private func apply(_ change: Change) {
        switch change {
        case .allocate(let region):
            saved[region.offset] = region
            if let key = region.idempotencyKey { keys[key] = region.offset }
            logger.info("allocated", metadata: Self.metadata(region))
        case .release(let region):
            _ = try? pool.release(offset: region.offset)
            saved[region.offset] = nil
            if let key = region.idempotencyKey { keys[key] = nil }
            logger.info("released", metadata: Self.metadata(region))
        }
    }

    /// Reverses an applied change: the pool, the saved regions and the keys.
    private func undo(_ change: Change) {
        switch change {
        case .allocate(let region):
            _ = try? pool.release(offset: region.offset)
            saved[region.offset] = nil
            if let key = region.idempotencyKey { keys[key] = nil }
        case .release(let region):
            // Every later change was undone first, so the region's place is free.
            _ = try? pool.restore(offset: region.offset, memoryClass: region.memoryClass)
            saved[region.offset] = region
            if let key = region.idempotencyKey { keys[key] = region.offset }
        }
        logger.warning("undone after a journal failure", metadata: ["change": "\(change.record)"])
    }

    /// Appends an applied change to the journal; on failure undoes it and returns nil.
    private func append(_ change: Change, _ journal: Journal) -> UInt64? {
        do throws(JournalError) {
            let sequence = try journal.append(change.record)
            pending += 1
            lastSequence = sequence
            if journal.needsCompaction { journal.compact(liveRegions: Array(saved.values)) }
            journal.whenDurable(sequence) { [self] result in
                queue.sync {
                    pending -= 1
                    if case .failure = result { undo(change) }
                }
            }
            return sequence
        } catch {
            undo(change)
            logger.error("journal refused a change", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// Answers once the change with `sequence` is durable, or with 503 if it never will be.
    private func finish<T: Sendable>(
        _ result: Result<T, HTTPError>, after sequence: UInt64?,
        completion: @escaping @Sendable (Result<T, HTTPError>) -> Void
    ) {
        guard let sequence, let journal, case .success = result else {
            completion(result)
            return
        }
        journal.whenDurable(sequence) { durable in
            completion(durable.mapError { _ in Self.unavailable }.flatMap { result })
        }
    }

    private static let loading = HTTPError(503, "state_unavailable", "the state is still loading")
    private static let unavailable = HTTPError(
        503, "state_unavailable", "the change could not be written to the journal; it was not made")

    private static func metadata(_ region: SavedRegion) -> Logger.Metadata {
        [
            "offset": "\(region.offset)", "class": "\(region.memoryClass)", "label": "\(region.label ?? "")",
            "key": "\(region.idempotencyKey ?? "")",
        ]
    }

    private func poolError(_ error: PoolError) -> HTTPError {
        switch error {
        case .invalidMemoryClass:
            HTTPError(400, "invalid_memory_class", "\(error): the size must be from 1 byte to 4 GiB")
        case .notEnoughSpace:
            HTTPError(409, "not_enough_space", "\(error)", largestFree: pool.largestFree)
        case .notAllocated:
            HTTPError(404, "not_allocated", "\(error)")
        }
    }
}
