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
    public enum Allocation: Sendable {
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

    /// Allocates a region, or replays the one an earlier request with the same
    /// key got. `completion` runs once the change is durable (or known not to
    /// be), never inside the pool's queue.
    public func allocate(
        size: UInt64, label: String?, key: String?,
        completion: @escaping @Sendable (Result<Allocation, RegionError>) -> Void
    ) {
        let (step, applied): (Step<Allocation>, Change?) = queue.sync {
            guard loaded else { return (.answer(.failure(.loading)), nil) }
            if let key, let offset = keys[key], let earlier = saved[offset] {
                guard earlier.requestedSize == size, earlier.label == label else {
                    return (.answer(.failure(.keyReused(key: key))), nil)
                }
                // The first request may still be waiting for its fsync: so must the replay.
                return (lastSequence.map { .wait(for: $0, .replayed(earlier)) } ?? .answer(.success(.replayed(earlier))), nil)
            }
            let region: Region
            do throws(PoolError) {
                region = try pool.allocate(size: size)
            } catch {
                return (.answer(.failure(regionError(error))), nil)
            }
            let entry = SavedRegion(
                offset: region.offset, memoryClass: region.memoryClass, label: label, idempotencyKey: key,
                requestedSize: key == nil ? nil : size)
            return commit(.allocate(entry), answering: .created(entry), completion)
        }
        applied.map(log)
        finish(step, completion)
    }

    /// Releases the region at `offset`; `completion` runs as for ``allocate(size:label:key:completion:)``.
    public func release(offset: UInt64, completion: @escaping @Sendable (Result<SavedRegion, RegionError>) -> Void) {
        let (step, applied): (Step<SavedRegion>, Change?) = queue.sync {
            guard loaded else { return (.answer(.failure(.loading)), nil) }
            guard let entry = saved[offset], pool.region(at: offset) != nil else {
                return (.answer(.failure(.notAllocated)), nil)
            }
            return commit(.release(entry), answering: entry, completion)
        }
        applied.map(log)
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

    /// Whether the state is loaded and the journal takes changes.
    public var isReady: Bool {
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
        case .release(let region):
            _ = try? pool.release(offset: region.offset)
            saved[region.offset] = nil
            if let key = region.idempotencyKey { keys[key] = nil }
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

    /// What a change's caller gets from inside the queue: an answer now, or
    /// one once the journal has the record with a sequence number on disk.
    private enum Step<Value: Sendable> {
        case answer(Result<Value, RegionError>)
        case wait(for: UInt64, Value)
        /// The journal will call the completion itself.
        case journaled
    }

    /// Makes an applied change durable: appends it to the journal with a
    /// completion that undoes it if the write fails, then answers. Without a
    /// journal the answer is immediate; when the journal refuses the record,
    /// the change is undone at once and the answer is 503.
    private func commit<Value: Sendable>(
        _ change: Change, answering value: Value,
        _ completion: @escaping @Sendable (Result<Value, RegionError>) -> Void
    ) -> (Step<Value>, Change?) {
        apply(change)
        guard let journal else { return (.answer(.success(value)), change) }
        do throws(JournalError) {
            // Runs on the journal's completion queue, outside this queue, in
            // the order the writer decided: on failure newest first, so each
            // undo finds the state its change left.
            lastSequence = try journal.append(change.record) { [self] durable in
                queue.sync {
                    pending -= 1
                    if case .failure = durable { undo(change) }
                }
                completion(durable.map { value }.mapError { _ in .unavailable })
            }
            pending += 1
            if journal.needsCompaction { journal.compact(liveRegions: Array(saved.values)) }
            return (.journaled, change)
        } catch {
            undo(change)
            logger.error("journal refused a change", metadata: ["error": "\(error)"])
            return (.answer(.failure(.unavailable)), nil)
        }
    }

    /// Delivers what the queue decided, outside the queue.
    private func finish<Value: Sendable>(
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
    private func log(_ change: Change) {
        switch change {
        case .allocate(let region): logger.info("allocated", metadata: Self.metadata(region))
        case .release(let region): logger.info("released", metadata: Self.metadata(region))
        }
    }

    private static func metadata(_ region: SavedRegion) -> Logger.Metadata {
        [
            "offset": "\(region.offset)", "class": "\(region.memoryClass)", "label": "\(region.label ?? "")",
            "key": "\(region.idempotencyKey ?? "")",
        ]
    }

    private func regionError(_ error: PoolError) -> RegionError {
        switch error {
        case .invalidMemoryClass: .invalidMemoryClass
        case .notEnoughSpace: .notEnoughSpace(largestFree: pool.largestFree)
        case .notAllocated: .notAllocated
        }
    }
}
