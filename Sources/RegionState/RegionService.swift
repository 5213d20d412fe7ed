internal import Dispatch
internal import Synchronization
public import Logging
public import MemoryPool

/// Keeps the one ``RegionBook`` of the process behind a serial queue, and
/// does its I/O: every change the book decides is applied at once and
/// appended to the ``Journal``, and its answer waits until the journal's
/// group commit has it on disk. If the write fails, the change is undone
/// (the journal fails pending records newest first, so undos run in reverse
/// order) and the caller gets ``RegionError/unavailable``.
///
/// No answer reveals what a crash can undo: a read or a refusal computed
/// while changes are pending waits until the changes it saw are durable.
/// When nothing is pending (an atomic count), it answers at once.
public final class RegionService: @unchecked Sendable {
    // @unchecked: every `var` below is read and written only on `queue`;
    // the `let`s are immutable or atomic.
    let queue = DispatchQueue(label: "regiond.pool")
    /// The state: written only by ``RegionBook/apply(_:now:)``, on `queue`.
    var book = RegionBook()
    /// False until the journal's state is loaded.
    var loaded: Bool
    /// Changes appended to the journal and not yet durable or undone. Atomic
    /// so that a durable change's completion need not enter the queue at all.
    let pending = Atomic<Int>(0)
    /// The sequence number of the last change appended.
    var lastSequence: UInt64?
    let journal: Journal?
    let logger: Logger
    let clock: LeaseClock
    /// Sees every region released because its lease ended, once the release is durable (for metrics).
    let onExpire: @Sendable (SavedRegion) -> Void

    /// One allocation request.
    public typealias Request = RegionBook.Request

    /// What an allocation request got: the region and the reference it holds.
    public enum Allocation: Sendable, Equatable {
        /// A new region; its first reference has the region's id.
        case created(SavedRegion, ref: UInt64)
        /// The region and reference an earlier request with the same idempotency key got.
        case replayed(SavedRegion, ref: UInt64)
        /// A shared region that already existed, with one more reference.
        case joined(SavedRegion, ref: UInt64)

        /// The region, whichever way it was got.
        public var region: SavedRegion {
            switch self {
            case .created(let region, _), .replayed(let region, _), .joined(let region, _): region
            }
        }

        /// The reference the request holds.
        public var ref: UInt64 {
            switch self {
            case .created(_, let ref), .replayed(_, let ref), .joined(_, let ref): ref
            }
        }
    }

    /// What dropping a reference did.
    public struct Release: Sendable, Equatable {
        /// The region afterwards: `refs` is what is left, 0 when it was released.
        public var region: SavedRegion
        /// The reference dropped.
        public var ref: UInt64

        /// Whether the region was released (its last reference dropped).
        public var released: Bool { region.refs == 0 }
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
    }

    /// Loads the journal's state; until then every call fails with ``RegionError/loading``.
    /// Leases that ended while regiond was down end at the next ``expireDue()``.
    public func load() throws(JournalError) {
        guard let journal else { return }
        let loadedBook = try journal.load(now: clock.now())
        queue.sync {
            book = loadedBook
            loaded = true
        }
        logger.info("state loaded", metadata: ["regions": "\(loadedBook.regions.count)"])
    }

    // MARK: - Changes

    /// Allocates a region, joins a shared one, or replays what an earlier
    /// request with the same key got. `completion` runs once the change is
    /// durable (or known not to be), never inside the pool's queue.
    public func allocate(
        _ request: Request, completion: @escaping @Sendable (Result<Allocation, RegionError>) -> Void
    ) {
        let (step, applied): (Step<Allocation>, [Applied]) = queue.sync {
            guard loaded else { return (.answer(.failure(.loading)), []) }
            let now = clock.now()
            switch book.decide(request, now: now) {
            case .failure(let error):
                return (settled(.failure(error)), [])
            case .success(.replay(let region, let ref)):
                // The first request may still be waiting for its fsync: so must the replay.
                return (settled(.success(.replayed(region, ref: ref))), [])
            case .success(.allocate(let record)):
                let applied = apply([record], now: now)
                return commit(applied, answering: .created(book.regions[record.offset]!, ref: record.reference!), completion)
            case .success(.join(let record)):
                let applied = apply([record], now: now)
                return commit(applied, answering: .joined(book.regions[record.offset]!, ref: record.reference!), completion)
            }
        }
        applied.forEach(log)
        finish(step, completion)
    }

    /// Drops the reference `ref` (the newest, without one) on the region at
    /// `offset`, which must be the allocation `id` when it is given; the last
    /// reference releases the region.
    public func release(
        offset: UInt64, id: UInt64? = nil, ref: UInt64? = nil,
        completion: @escaping @Sendable (Result<Release, RegionError>) -> Void
    ) {
        let (step, applied): (Step<Release>, [Applied]) = queue.sync {
            guard loaded else { return (.answer(.failure(.loading)), []) }
            switch book.decideRelease(offset: offset, id: id, ref: ref) {
            case .failure(let error):
                return (settled(.failure(error)), [])
            case .success(let record):
                var region = book.regions[offset]!
                let dropped = ref ?? book.newestReference(at: offset)!.id
                let applied = apply([record], now: clock.now())
                region.refs = book.regions[offset]?.refs ?? 0
                return commit(applied, answering: Release(region: region, ref: dropped), completion)
            }
        }
        applied.forEach(log)
        finish(step, completion)
    }

    /// Releases by label, all or nothing, as one journal batch: every region
    /// labelled `label`, and every reference labelled `label` on the others
    /// (see ``RegionBook/decideRelease(label:)``). Answers each region
    /// changed, in offset order, with the references left (0 when released).
    public func release(
        label: String, completion: @escaping @Sendable (Result<[SavedRegion], RegionError>) -> Void
    ) {
        let (step, applied): (Step<[SavedRegion]>, [Applied]) = queue.sync {
            guard loaded else { return (.answer(.failure(.loading)), []) }
            let records = book.decideRelease(label: label)
            guard !records.isEmpty else { return (settled(.success([])), []) }
            let offsets = Array(Set(records.map(\.offset))).sorted()
            var before = offsets.map { book.regions[$0]! }
            let applied = apply(records, now: clock.now())
            for index in before.indices { before[index].refs = book.regions[before[index].offset]?.refs ?? 0 }
            return commit(applied, answering: before, completion)
        }
        applied.forEach(log)
        finish(step, completion)
    }

    // MARK: - Reads

    /// Runs `body` on the book and answers what it returns; when changes are
    /// pending, once the changes it saw are durable.
    public func read<Value: Sendable>(
        _ body: @escaping (RegionBook) -> Result<Value, RegionError>,
        completion: @escaping @Sendable (Result<Value, RegionError>) -> Void
    ) {
        let step: Step<Value> = queue.sync {
            guard loaded else { return .answer(.failure(.loading)) }
            return settled(body(book))
        }
        finish(step, completion)
    }

    /// The region at `offset` (when it is the allocation `id` and holds `ref`, if given).
    public func region(
        at offset: UInt64, id: UInt64? = nil, ref: UInt64? = nil,
        completion: @escaping @Sendable (Result<SavedRegion, RegionError>) -> Void
    ) {
        read({ book in book.region(at: offset, id: id, ref: ref).map { .success($0) } ?? .failure(.notAllocated) }, completion: completion)
    }

    /// Allocated regions in offset order, only those labelled `label` when it is given.
    public func regions(label: String? = nil, completion: @escaping @Sendable (Result<[SavedRegion], RegionError>) -> Void) {
        read({ .success($0.regions(label: label)) }, completion: completion)
    }

    /// The pool and the bytes live regions lose to rounding up to their class,
    /// taken at the same moment.
    public func poolFigures(completion: @escaping @Sendable (Result<(pool: PoolAllocator, wastedBytes: UInt64), RegionError>) -> Void) {
        read({ .success(($0.pool, $0.wastedBytes)) }, completion: completion)
    }

    /// The pool as it is now, durable or not (for tests and benchmarks).
    public var poolSnapshot: PoolAllocator {
        queue.sync { book.pool }
    }

    /// The book as it is now, durable or not (for tests).
    public var bookSnapshot: RegionBook {
        queue.sync { book }
    }

    /// Whether the state is loaded and the journal takes changes.
    public var isReady: Bool {
        queue.sync { loaded } && journal?.isHealthy != false
    }

    /// After a journal failure, once every failed change is undone, starts
    /// the journal over from the state in memory. Called now and then.
    public func recoverIfNeeded() {
        guard let journal, !journal.isHealthy else { return }
        let image: RegionBook.Image? = queue.sync { loaded && pending.load(ordering: .acquiring) == 0 ? book.image : nil }
        guard let image else { return }
        do throws(JournalError) {
            // No change can slip in between: appends fail while the journal is unhealthy.
            try journal.recover(image: image)
        } catch {
            logger.error("journal still failing", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Applying and committing

    /// A record applied to the book, and what undoes it.
    struct Applied {
        var record: JournalRecord
        var undo: (record: JournalRecord, now: LeaseClock.Now)
    }

    /// Applies records the book decided, in order. They always apply: a
    /// failure here is a bug in the book, and going on would let memory and
    /// the journal disagree.
    func apply(_ records: [JournalRecord], now: LeaseClock.Now) -> [Applied] {
        records.map { record in
            do throws(RegionBook.Inapplicable) {
                let undo = try book.apply(record, now: now)
                return Applied(record: record, undo: undo)
            } catch {
                preconditionFailure("a decided record does not apply: \(error)")
            }
        }
    }

    /// Reverses applied changes, newest first. Logs a warning unless
    /// `quietly` (a batch that did not fit: nothing was journaled).
    func undo(_ applied: [Applied], quietly: Bool = false) {
        for change in applied.reversed() {
            do throws(RegionBook.Inapplicable) {
                try book.apply(change.undo.record, now: change.undo.now)
            } catch {
                preconditionFailure("an undo does not apply: \(error)")
            }
            if !quietly {
                logger.warning("undone after a journal failure", metadata: ["change": "\(change.record)"])
            }
        }
    }

    /// What a caller gets from inside the queue: an answer now, or one once
    /// the journal has the record with a sequence number on disk.
    enum Step<Value: Sendable> {
        case answer(Result<Value, RegionError>)
        case wait(for: UInt64, Result<Value, RegionError>)
        /// The journal will call the completion itself.
        case journaled
    }

    /// An answer computed from the book as it is: at once when nothing is
    /// pending, else after the last change appended (which it may have
    /// seen) is durable. Runs on the queue.
    func settled<Value: Sendable>(_ result: Result<Value, RegionError>) -> Step<Value> {
        guard pending.load(ordering: .acquiring) > 0, let lastSequence else { return .answer(result) }
        return .wait(for: lastSequence, result)
    }

    /// Makes applied changes durable as one group: the journal appends their
    /// records together (one write, one batch) with a completion that undoes
    /// them all, newest first, if the write fails, then answers. Without a
    /// journal the answer is immediate; when the journal refuses the records,
    /// the changes are undone at once and the answer is
    /// ``RegionError/unavailable``. Returns the changes made, for the log.
    func commit<Value: Sendable>(
        _ applied: [Applied], answering value: Value,
        _ completion: @escaping @Sendable (Result<Value, RegionError>) -> Void
    ) -> (Step<Value>, [Applied]) {
        guard let journal, !applied.isEmpty else { return (settled(.success(value)), applied) }
        // Counted before the append, so its completion can never come first.
        pending.add(1, ordering: .relaxed)
        do throws(JournalError) {
            // Runs on the journal's writer thread, outside this queue, in
            // the order the writer decided: on failure newest first, so each
            // undo finds the state its change left.
            lastSequence = try journal.append(applied.map(\.record)) { [self] durable in
                if case .failure = durable {
                    queue.sync { undo(applied) }
                }
                // After the undo: recovery waits until nothing is left to undo.
                pending.subtract(1, ordering: .releasing)
                completion(durable.map { value }.mapError { _ in .unavailable })
            }
            if journal.needsCompaction { journal.compact(image: book.image) }
            return (.journaled, applied)
        } catch {
            pending.subtract(1, ordering: .relaxed)
            undo(applied, quietly: true)
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
        case .wait(let sequence, let result):
            guard let journal else { return completion(result) }
            journal.whenDurable(sequence) { durable in
                switch durable {
                case .success: completion(result)
                case .failure: completion(.failure(.unavailable))
                }
            }
        case .journaled:
            break
        }
    }

    /// The info line of a change, written after the pool's queue is released:
    /// nothing but the book runs inside it.
    func log(_ applied: Applied) {
        switch (applied.record, applied.undo.record) {
        case (.allocate(let entry), _):
            var metadata = Self.metadata(entry.region)
            if let key = entry.references.first?.key { metadata["key"] = .string(key) }
            logger.info("allocated", metadata: metadata)
        case (.release, .allocate(let entry)):
            logger.info("released", metadata: Self.metadata(entry.region))
        case (.addReference(let offset, let id, let reference), _):
            var metadata: Logger.Metadata = [
                "offset": .string(String(offset)), "id": .string(String(id ?? 0)), "ref": .string(String(reference.id)),
            ]
            if let key = reference.key { metadata["key"] = .string(key) }
            if let label = reference.label { metadata["label"] = .string(label) }
            logger.info("shared", metadata: metadata)
        case (.dropReference(let offset, let id, let ref), _):
            logger.info(
                "unshared",
                metadata: ["offset": .string(String(offset)), "id": .string(String(id ?? 0)), "ref": .string(String(ref ?? 0))])
        case (.renew(let offset, let id, let lease), _):
            logger.info(
                "renewed",
                metadata: [
                    "offset": .string(String(offset)), "id": .string(String(id ?? 0)), "expiresAt": .string(lease.expiresAtText),
                ])
        case (.release, _):
            break  // the undo of a release is always the allocate of what it released
        }
    }

    static func metadata(_ region: SavedRegion) -> Logger.Metadata {
        // Plain strings, no interpolation: this runs for every change.
        var metadata: Logger.Metadata = [
            "offset": .string(String(region.offset)), "class": .string(String(region.memoryClass.rawValue)),
            "id": .string(String(region.id)),
        ]
        if let label = region.label { metadata["label"] = .string(label) }
        if let share = region.share { metadata["share"] = .string(share) }
        return metadata
    }
}

extension JournalRecord {
    /// The offset of the region the record acts on.
    public var offset: UInt64 {
        switch self {
        case .allocate(let entry): entry.region.offset
        case .release(let offset, _), .addReference(let offset, _, _), .dropReference(let offset, _, _),
            .renew(let offset, _, _):
            offset
        }
    }

    /// The reference a record takes: an allocate's first, an added one.
    var reference: UInt64? {
        switch self {
        case .allocate(let entry): entry.references.first?.id
        case .addReference(_, _, let reference): reference.id
        case .release, .dropReference, .renew: nil
        }
    }
}
