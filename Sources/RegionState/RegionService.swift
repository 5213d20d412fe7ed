internal import Dispatch
internal import Synchronization
public import Logging
public import MemoryPool

/// Owns the one ``PoolAllocator`` of the process and everything saved with
/// its regions (labels, idempotency keys, share keys and references,
/// leases), all touched only on one serial queue, and writes every change to
/// the ``Journal`` before it is answered.
///
/// A change is applied in memory and appended to the journal on the queue;
/// its answer waits until the journal's group commit has it on disk. If the
/// write fails, the change is undone (the journal fails pending records
/// newest first, so undos run in reverse order) and the caller gets
/// ``RegionError/unavailable``.
public final class RegionService: @unchecked Sendable {
    // @unchecked: every `var` below is read and written only on `queue`;
    // the `let`s are immutable.
    let queue = DispatchQueue(label: "regiond.pool")
    var pool = PoolAllocator()
    /// Every allocated region with its label, keys, references and lease, by offset.
    var saved: [UInt64: SavedRegion] = [:]
    /// Offsets of allocated regions by every idempotency key bound to them.
    var keys: [String: UInt64] = [:]
    /// Offsets of shared regions by share key.
    var shares: [String: UInt64] = [:]
    /// When each leased region expires, on the monotonic clock.
    var deadlines: [UInt64: ContinuousClock.Instant] = [:]
    /// False until the journal's state is loaded.
    var loaded: Bool
    /// Changes appended to the journal and not yet durable or undone. Atomic
    /// so that a durable change's completion need not enter the queue at all.
    let pending = Atomic<Int>(0)
    /// The sum of ``SavedRegion/wastedBytes`` over `saved`.
    var wastedBytes: UInt64 = 0
    /// The sequence number of the last change appended.
    var lastSequence: UInt64?
    let journal: Journal?
    let logger: Logger
    let clock: LeaseClock
    /// Sees every region released because its lease ended (for metrics).
    let onExpire: @Sendable (SavedRegion) -> Void

    /// What an allocation request got.
    public enum Allocation: Sendable, Equatable {
        /// A new region.
        case created(SavedRegion)
        /// The region an earlier request with the same idempotency key got.
        case replayed(SavedRegion)
        /// A shared region that already existed, with one more reference.
        case joined(SavedRegion)

        /// The region, whichever way it was got.
        public var region: SavedRegion {
            switch self {
            case .created(let region), .replayed(let region), .joined(let region): region
            }
        }
    }

    /// One allocation request: what `POST /regions` and each batch item ask.
    public struct Request: Sendable, Equatable {
        public var size: UInt64
        public var label: String?
        public var key: String?
        /// Share the region with every request that gives the same key and a size of the same class.
        public var share: String?
        /// A lease, in seconds: the region is released when it ends unless renewed.
        public var ttl: UInt32?

        public init(size: UInt64, label: String? = nil, key: String? = nil, share: String? = nil, ttl: UInt32? = nil) {
            self.size = size
            self.label = label
            self.key = key
            self.share = share
            self.ttl = ttl
        }
    }

    /// Makes a service. Without a journal it keeps nothing on disk and is
    /// ready at once; with one, it is ready after ``load()``.
    public init(
        journal: Journal?, logger: Logger, clock: LeaseClock = .system,
        onExpire: @escaping @Sendable (SavedRegion) -> Void = { _ in }
    ) {
        self.journal = journal
        self.logger = logger
        self.clock = clock
        self.onExpire = onExpire
        self.loaded = journal == nil
        saved.reserveCapacity(4096)
    }

    /// Loads the journal's state; until then every call fails with ``RegionError/loading``.
    /// Leases that ended while regiond was down end at the next ``expireDue()``.
    public func load() throws(JournalError) {
        guard let journal else { return }
        let (pool, saved) = try journal.load()
        queue.sync {
            self.pool = pool
            for region in saved.values { index(region) }
            self.loaded = true
        }
        logger.info("state loaded", metadata: ["regions": "\(saved.count)"])
    }

    /// Allocates a region, joins a shared one, or replays what an earlier
    /// request with the same key got. `completion` runs once the change is
    /// durable (or known not to be), never inside the pool's queue.
    public func allocate(
        _ request: Request, completion: @escaping @Sendable (Result<Allocation, RegionError>) -> Void
    ) {
        let (step, applied): (Step<Allocation>, [Change]) = queue.sync {
            guard loaded else { return (.answer(.failure(.loading)), []) }
            switch decide(request) {
            case .failure(let error):
                return (.answer(.failure(error)), [])
            case .success(.replay(let region)):
                // The first request may still be waiting for its fsync: so must the replay.
                return (lastSequence.map { .wait(for: $0, .replayed(region)) } ?? .answer(.success(.replayed(region))), [])
            case .success(.change(let change, let answer)):
                return commit([change], answering: answer, completion)
            }
        }
        applied.forEach(log)
        finish(step, completion)
    }

    /// Allocates a region (the old form of ``allocate(_:completion:)``).
    public func allocate(
        size: UInt64, label: String?, key: String?,
        completion: @escaping @Sendable (Result<Allocation, RegionError>) -> Void
    ) {
        allocate(Request(size: size, label: label, key: key), completion: completion)
    }

    /// What a release did.
    public enum Release: Sendable, Equatable {
        /// The region was released (its last reference dropped).
        case released(SavedRegion)
        /// One reference was dropped; the region, with the ones left, stays.
        case dropped(SavedRegion)
    }

    /// Drops a reference on the region at `offset`: the last one releases it.
    public func release(offset: UInt64, completion: @escaping @Sendable (Result<Release, RegionError>) -> Void) {
        let (step, applied): (Step<Release>, [Change]) = queue.sync {
            guard loaded else { return (.answer(.failure(.loading)), []) }
            guard let region = saved[offset], pool.region(at: offset) != nil else {
                return (.answer(.failure(.notAllocated)), [])
            }
            if region.sharers.isEmpty {
                return commit([.release(region)], answering: .released(region), completion)
            }
            var after = region
            after.sharers.removeLast()
            return commit([.dropReference(region)], answering: .dropped(after), completion)
        }
        applied.forEach(log)
        finish(step, completion)
    }

    /// The allocated region at `offset`, if any.
    public func region(at offset: UInt64) throws(RegionError) -> SavedRegion? {
        try queue.sync { () -> Result<SavedRegion?, RegionError> in
            loaded ? .success(saved[offset]) : .failure(.loading)
        }.get()
    }

    /// Allocated regions in offset order, only those labelled `label` when it is given.
    public func regions(label: String? = nil) throws(RegionError) -> [SavedRegion] {
        try queue.sync { () -> Result<[SavedRegion], RegionError> in
            guard loaded else { return .failure(.loading) }
            return .success(
                pool.regions.compactMap { region in
                    let entry = saved[region.offset]!  // every allocated region is saved
                    return label == nil || entry.label == label ? entry : nil
                })
        }.get()
    }

    /// A consistent copy of the pool, for statistics.
    public var poolSnapshot: PoolAllocator {
        queue.sync { pool }
    }

    /// The pool and, taken at the same moment, the bytes live regions lose to
    /// rounding up to their class (class size minus the size asked for;
    /// nothing for regions saved before sizes were kept).
    public var poolFigures: (pool: PoolAllocator, wastedBytes: UInt64) {
        queue.sync { (pool, wastedBytes) }
    }

    /// Whether the state is loaded and the journal takes changes.
    public var isReady: Bool {
        queue.sync { loaded } && journal?.isHealthy != false
    }

    /// After a journal failure, once every failed change is undone, starts
    /// the journal over from the state in memory. Called now and then.
    public func recoverIfNeeded() {
        guard let journal, !journal.isHealthy else { return }
        let live: [SavedRegion]? = queue.sync { loaded && pending.load(ordering: .acquiring) == 0 ? Array(saved.values) : nil }
        guard let live else { return }
        do throws(JournalError) {
            // No change can slip in between: appends fail while the journal is unhealthy.
            try journal.recover(liveRegions: live)
            logger.notice("journal recovered", metadata: ["regions": "\(live.count)"])
        } catch {
            logger.error("journal still failing", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Deciding

    /// What a request amounts to, decided on the queue against the current state.
    enum Decision {
        /// An earlier request with the same key got this region: answer it again.
        case replay(SavedRegion)
        /// A change to make, and the answer once it is durable.
        case change(Change, Allocation)
    }

    /// Decides `request` without changing anything (the pool's allocation
    /// aside, which the change then owns). Runs on the queue.
    func decide(_ request: Request) -> Result<Decision, RegionError> {
        if let key = request.key, let offset = keys[key], let region = saved[offset] {
            return replay(request, key: key, of: region)
        }
        if let share = request.share, let offset = shares[share], let region = saved[offset] {
            let memoryClass = memoryClass(for: request.size)
            guard memoryClass.isValid else { return .failure(.invalidMemoryClass) }
            guard memoryClass == region.memoryClass else {
                return .failure(.shareConflict(share: share, memoryClass: region.memoryClass))
            }
            let sharer = SavedRegion.Sharer(idempotencyKey: request.key, requestedSize: request.size, label: request.label)
            var joined = region
            joined.sharers.append(sharer)
            return .success(.change(.addReference(sharer, to: region), .joined(joined)))
        }
        let allocated: Region
        do throws(PoolError) {
            allocated = try pool.allocate(size: request.size)
        } catch {
            return .failure(regionError(error))
        }
        let region = SavedRegion(
            offset: allocated.offset, memoryClass: allocated.memoryClass, label: request.label,
            idempotencyKey: request.key, requestedSize: request.size, share: request.share,
            lease: request.ttl.map { SavedRegion.Lease(seconds: $0, expiresAt: clock.wallMilliseconds() + Int64($0) * 1000) })
        return .success(.change(.allocate(region), .created(region)))
    }

    /// A request whose key is bound to `region`: the same request again is a
    /// replay, anything else reuses the key.
    private func replay(_ request: Request, key: String, of region: SavedRegion) -> Result<Decision, RegionError> {
        let same: Bool
        if region.idempotencyKey == key {
            same = region.requestedSize == request.size && region.label == request.label && region.share == request.share
                && region.lease?.seconds == request.ttl
        } else if let sharer = region.sharers.first(where: { $0.idempotencyKey == key }) {
            same = sharer.requestedSize == request.size && sharer.label == request.label && region.share == request.share
        } else {
            same = false
        }
        return same ? .success(.replay(region)) : .failure(.keyReused(key: key))
    }

    // MARK: - Changes

    /// One change, as applied to the state and undone after a failed write.
    enum Change {
        case allocate(SavedRegion)
        case release(SavedRegion)
        /// A sharer joins the shared region (as it was before).
        case addReference(SavedRegion.Sharer, to: SavedRegion)
        /// The newest sharer leaves the shared region (as it was before).
        case dropReference(SavedRegion)
        /// The region (as it was before) gets a new lease.
        case renew(SavedRegion, SavedRegion.Lease)

        var record: JournalRecord {
            switch self {
            case .allocate(let region): .allocate(region)
            case .release(let region): .release(offset: region.offset)
            case .addReference(let sharer, let region): .addReference(offset: region.offset, sharer)
            case .dropReference(let region): .dropReference(offset: region.offset)
            case .renew(let region, let lease): .renew(offset: region.offset, lease)
            }
        }
    }

    /// Adds a region to the lookup tables (not the pool).
    func index(_ region: SavedRegion) {
        saved[region.offset] = region
        wastedBytes += region.wastedBytes
        if let key = region.idempotencyKey { keys[key] = region.offset }
        for case let key? in region.sharers.map(\.idempotencyKey) { keys[key] = region.offset }
        if let share = region.share { shares[share] = region.offset }
        if let lease = region.lease { deadlines[region.offset] = clock.deadline(lease) }
    }

    /// Removes a region from the lookup tables (not the pool).
    func unindex(_ region: SavedRegion) {
        saved[region.offset] = nil
        wastedBytes -= region.wastedBytes
        if let key = region.idempotencyKey { keys[key] = nil }
        for case let key? in region.sharers.map(\.idempotencyKey) { keys[key] = nil }
        if let share = region.share { shares[share] = nil }
        deadlines[region.offset] = nil
    }

    /// Applies a change the pool has already checked (allocate) or will accept (the rest).
    func apply(_ change: Change) {
        switch change {
        case .allocate(let region):
            index(region)
        case .release(let region):
            _ = try? pool.release(offset: region.offset)
            unindex(region)
        case .addReference(let sharer, let region):
            unindex(region)
            var joined = region
            joined.sharers.append(sharer)
            index(joined)
        case .dropReference(let region):
            unindex(region)
            var left = region
            left.sharers.removeLast()
            index(left)
        case .renew(let region, let lease):
            unindex(region)
            var renewed = region
            renewed.lease = lease
            index(renewed)
        }
    }

    /// Reverses an applied change: the pool and every table. Logs a warning
    /// unless `quietly` (a batch that did not fit, nothing journaled).
    func undo(_ change: Change, quietly: Bool = false) {
        switch change {
        case .allocate(let region):
            _ = try? pool.release(offset: region.offset)
            unindex(region)
        case .release(let region):
            // Every later change was undone first, so the region's place is free.
            _ = try? pool.restore(offset: region.offset, memoryClass: region.memoryClass)
            index(region)
        case .addReference(_, let region), .dropReference(let region), .renew(let region, _):
            // The region as it was before: every later change was undone first.
            if let now = saved[region.offset] { unindex(now) }
            index(region)
        }
        if !quietly {
            logger.warning("undone after a journal failure", metadata: ["change": "\(change.record)"])
        }
    }

    /// What a change's caller gets from inside the queue: an answer now, or
    /// one once the journal has the record with a sequence number on disk.
    enum Step<Value: Sendable> {
        case answer(Result<Value, RegionError>)
        case wait(for: UInt64, Value)
        /// The journal will call the completion itself.
        case journaled
    }

    /// Applies changes (in order, unless `applied`) and makes them durable as one group: the
    /// journal appends their records together (one write, one batch) with a
    /// completion that undoes them all, newest first, if the write fails,
    /// then answers. Without a journal the answer is immediate; when the
    /// journal refuses the records, the changes are undone at once and the
    /// answer is ``RegionError/unavailable``. Returns the changes applied, for the log.
    func commit<Value: Sendable>(
        _ changes: [Change], applied: Bool = false, answering value: Value,
        _ completion: @escaping @Sendable (Result<Value, RegionError>) -> Void
    ) -> (Step<Value>, [Change]) {
        if !applied { changes.forEach(apply) }
        guard let journal, !changes.isEmpty else { return (.answer(.success(value)), changes) }
        // Counted before the append, so its completion can never come first.
        pending.add(1, ordering: .relaxed)
        do throws(JournalError) {
            // Runs on the journal's completion queue, outside this queue, in
            // the order the writer decided: on failure newest first, so each
            // undo finds the state its change left.
            lastSequence = try journal.append(changes.map(\.record)) { [self] durable in
                if case .failure = durable {
                    queue.sync { changes.reversed().forEach { undo($0) } }
                }
                // After the undo: recovery waits until nothing is left to undo.
                pending.subtract(1, ordering: .releasing)
                completion(durable.map { value }.mapError { _ in .unavailable })
            }
            if journal.needsCompaction { journal.compact(liveRegions: Array(saved.values)) }
            return (.journaled, changes)
        } catch {
            pending.subtract(1, ordering: .relaxed)
            changes.reversed().forEach { undo($0) }
            logger.error("journal refused a change", metadata: ["error": "\(error)"])
            return (.answer(.failure(.unavailable)), [])
        }
    }

    /// Delivers what the queue decided, outside the queue.
    func finish<Value: Sendable>(
        _ step: Step<Value>, _ completion: @escaping @Sendable (Result<Value, RegionError>) -> Void
    ) {
        switch step {
        case .answer(let result):
            completion(result)
        case .wait(let sequence, let value):
            guard let journal else { return completion(.success(value)) }
            journal.whenDurable(sequence) { durable in
                completion(durable.map { value }.mapError { _ in .unavailable })
            }
        case .journaled:
            break
        }
    }

    /// The info line of a change, written after the pool's queue is released:
    /// nothing but the allocator and its bookkeeping runs inside it.
    func log(_ change: Change) {
        switch change {
        case .allocate(let region): logger.info("allocated", metadata: Self.metadata(region))
        case .release(let region): logger.info("released", metadata: Self.metadata(region))
        case .addReference(_, let region):
            logger.info("shared", metadata: Self.metadata(region).merging(["refs": "\(region.refs + 1)"]) { $1 })
        case .dropReference(let region):
            logger.info("unshared", metadata: Self.metadata(region).merging(["refs": "\(region.refs - 1)"]) { $1 })
        case .renew(let region, let lease):
            logger.info("renewed", metadata: Self.metadata(region).merging(["expiresAt": "\(lease.expiresAt)"]) { $1 })
        }
    }

    static func metadata(_ region: SavedRegion) -> Logger.Metadata {
        // Plain strings, no interpolation: this runs for every change.
        var metadata: Logger.Metadata = [
            "offset": .string(String(region.offset)), "class": .string(String(region.memoryClass.rawValue)),
            "label": .string(region.label ?? ""), "key": .string(region.idempotencyKey ?? ""),
        ]
        if let share = region.share { metadata["share"] = .string(share) }
        return metadata
    }

    func regionError(_ error: PoolError) -> RegionError {
        switch error {
        case .invalidMemoryClass: .invalidMemoryClass
        case .notEnoughSpace: .notEnoughSpace(largestFree: pool.largestFree)
        case .notAllocated: .notAllocated
        }
    }
}
