public import MemoryPool

/// The rules of regiond in one value: the pool, every allocated region with
/// its references, the idempotency keys bound to references, the share keys,
/// the leases' deadlines and the bytes lost to rounding up.
///
/// Decide, then apply. The `decide…` methods read the book and return the
/// journal records a request amounts to (or why it is refused); ``apply(_:now:)``
/// is the one interpreter of a record, used for live changes and for
/// replaying the journal alike, and returns the record that undoes it. The
/// book does no I/O and knows no clock of its own: ``RegionService`` keeps
/// it behind its queue, writes the records to the journal and passes the time.
///
/// Identity: every region and every reference gets an id from one sequence
/// (`nextID`), never reused: the first reference of a region has the
/// region's id. Records of formats before ids carry none; replaying them
/// gives ids in order, the same ones each time.
public struct RegionBook: Sendable {
    /// The allocator: which offsets are taken.
    public private(set) var pool = PoolAllocator()
    /// Every allocated region, by offset.
    public private(set) var regions: [UInt64: SavedRegion] = [:]
    /// The references held on each region, by the region's offset.
    private var references: [UInt64: ReferenceSet] = [:]
    /// The reference each idempotency key is bound to, while it is held.
    private var keys: [String: Binding] = [:]
    /// The region of each share key, by offset.
    private var shares: [String: UInt64] = [:]
    /// When each leased region expires, on the monotonic clock, by offset.
    private var deadlines: [UInt64: ContinuousClock.Instant] = [:]
    /// The sum of ``SavedRegion/wastedBytes`` over every region.
    public private(set) var wastedBytes: UInt64 = 0
    /// The id the next region or reference gets.
    public private(set) var nextID: UInt64 = 1

    /// The most references one region holds: beyond, a join is refused.
    /// (hcsshim maps one VPMem device at most 1,024 times; this bounds the
    /// memory and journal one looping client can take.)
    public static let maximumReferences = 65_535

    /// Where a key is bound: the region's offset and the reference's id.
    struct Binding: Hashable, Sendable {
        var offset: UInt64
        var ref: UInt64
    }

    /// An empty book.
    public init() {}

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

    // MARK: - Reading

    /// The region at `offset` when it is the allocation `id` (any, without
    /// one) and holds the reference `ref` (any, without one).
    public func region(at offset: UInt64, id: UInt64? = nil, ref: UInt64? = nil) -> SavedRegion? {
        guard let region = regions[offset], id == nil || region.id == id else { return nil }
        if let ref, references[offset]?[ref] == nil { return nil }
        return region
    }

    /// Allocated regions in offset order, only those labelled `label` when it is given.
    public func regions(label: String? = nil) -> [SavedRegion] {
        pool.regions.compactMap { allocated in
            let region = regions[allocated.offset]!  // every allocated region is in the book
            return label == nil || region.label == label ? region : nil
        }
    }

    /// The reference `ref` on the region at `offset`, if it is held.
    public func reference(at offset: UInt64, ref: UInt64) -> Reference? {
        references[offset]?[ref]
    }

    /// The newest reference on the region at `offset`: the one a release
    /// without a reference id drops.
    public func newestReference(at offset: UInt64) -> Reference? {
        references[offset]?.newest
    }

    /// Every region with its references, in offset order, and the next id:
    /// what a snapshot holds.
    public var image: Image {
        Image(
            nextID: nextID,
            entries: regions.keys.sorted().map { RegionEntry(regions[$0]!, references: references[$0]?.oldestFirst ?? []) })
    }

    /// What a snapshot holds: enough to rebuild the book (deadlines come
    /// from the leases' expiry times, when loaded).
    public struct Image: Hashable, Sendable {
        public var nextID: UInt64
        public var entries: [RegionEntry]

        public init(nextID: UInt64, entries: [RegionEntry]) {
            self.nextID = nextID
            self.entries = entries
        }
    }

    /// The idempotency keys bound, with the region offset and reference id of
    /// each (for tests comparing a live book with a replayed one).
    public var boundKeys: [String: (offset: UInt64, ref: UInt64)] {
        keys.mapValues { ($0.offset, $0.ref) }
    }

    /// Offsets of leased regions whose lease has ended by `now`, in offset order.
    public func due(at now: ContinuousClock.Instant) -> [UInt64] {
        deadlines.filter { $0.value <= now }.keys.sorted()
    }

    /// Whether any region has a lease.
    public var hasLeases: Bool { !deadlines.isEmpty }

    // MARK: - Deciding

    /// What an allocation request amounts to.
    public enum Decision: Sendable, Equatable {
        /// An earlier request with the same key took this reference: answer it again.
        case replay(SavedRegion, ref: UInt64)
        /// A new region: apply the allocate record.
        case allocate(JournalRecord)
        /// One more reference on a shared region: apply the add-reference record.
        case join(JournalRecord)
    }

    /// Decides an allocation request against the book, changing nothing.
    public func decide(_ request: Request, now: LeaseClock.Now) -> Result<Decision, RegionError> {
        if let key = request.key, let binding = keys[key], let region = regions[binding.offset],
            let reference = references[binding.offset]?[binding.ref]
        {
            // The request that bound the key, not the region's current lease.
            let same = reference.requestedSize == request.size && reference.label == request.label
                && region.share == request.share && reference.ttl == request.ttl
            return same ? .success(.replay(region, ref: reference.id)) : .failure(.keyReused(key: key))
        }
        let memoryClass = memoryClass(for: request.size)
        guard memoryClass.isValid else { return .failure(.invalidMemoryClass) }
        let reference = Reference(
            id: nextID, key: request.key, requestedSize: request.size, label: request.label, ttl: request.ttl)
        if let share = request.share, let offset = shares[share], let region = regions[offset] {
            guard memoryClass == region.memoryClass else {
                return .failure(.shareConflict(share: share, memoryClass: region.memoryClass))
            }
            guard region.refs < Self.maximumReferences else { return .failure(.tooManyReferences(limit: Self.maximumReferences)) }
            return .success(.join(.addReference(offset: offset, id: region.id, reference)))
        }
        let placed: Region
        do throws(PoolError) {
            placed = try pool.placement(size: request.size)
        } catch {
            return .failure(error == .notEnoughSpace ? .notEnoughSpace(largestFree: pool.largestFree) : .invalidMemoryClass)
        }
        let region = SavedRegion(
            id: nextID, offset: placed.offset, memoryClass: placed.memoryClass, label: request.label,
            requestedSize: request.size, share: request.share,
            lease: request.ttl.map { SavedRegion.Lease(seconds: $0, expiresAt: now.wall + Int64($0) * 1000) })
        return .success(.allocate(.allocate(RegionEntry(region, references: [reference]))))
    }

    /// What dropping a reference amounts to: the reference `ref` (the newest
    /// without one) on the region at `offset`, which must be the allocation
    /// `id` when it is given. The last reference releases the region. A
    /// release of the allocation `id` that names no reference is refused
    /// while several are held: it releases the allocation or nothing, and
    /// never drops someone else's reference.
    public func decideRelease(offset: UInt64, id: UInt64? = nil, ref: UInt64? = nil) -> Result<JournalRecord, RegionError> {
        guard let region = region(at: offset, id: id, ref: ref), let held = references[offset] else {
            return .failure(.notAllocated)
        }
        guard held.count > 1 else { return .success(.release(offset: offset, id: region.id)) }
        if id != nil && ref == nil { return .failure(.referencesHeld(held.count)) }
        return .success(.dropReference(offset: offset, id: region.id, ref: ref ?? held.newest!.id))
    }

    /// What renewing the lease of the region at `offset` amounts to: `ttl`
    /// seconds from now, or its last length without one. A region without a
    /// lease is refused: a renewal never makes a permanent region expire.
    public func decideRenew(
        offset: UInt64, id: UInt64? = nil, ref: UInt64? = nil, ttl: UInt32?, now: LeaseClock.Now
    ) -> Result<JournalRecord, RegionError> {
        guard let region = region(at: offset, id: id, ref: ref) else { return .failure(.notAllocated) }
        guard let lease = region.lease else { return .failure(.notLeased) }
        let seconds = ttl ?? lease.seconds
        return .success(
            .renew(offset: offset, id: region.id, SavedRegion.Lease(seconds: seconds, expiresAt: now.wall + Int64(seconds) * 1000)))
    }

    /// What releasing by label amounts to, in offset order: every region
    /// labelled `label` is released whole; on the others, every reference
    /// labelled `label` is dropped (all of them: the region is released).
    public func decideRelease(label: String) -> [JournalRecord] {
        var records: [JournalRecord] = []
        for offset in regions.keys.sorted() {
            let region = regions[offset]!
            if region.label == label {
                records.append(.release(offset: offset, id: region.id))
                continue
            }
            let labelled = references[offset]!.byID.values.filter { $0.label == label }.map(\.id).sorted()
            if labelled.count == region.refs {
                records.append(.release(offset: offset, id: region.id))
            } else {
                records += labelled.map { .dropReference(offset: offset, id: region.id, ref: $0) }
            }
        }
        return records
    }

    /// Releases of the regions whose lease has ended by `now`, in offset order.
    public func decideExpiry(at now: ContinuousClock.Instant) -> [JournalRecord] {
        due(at: now).map { .release(offset: $0, id: regions[$0]!.id) }
    }

    // MARK: - Applying

    /// Raises the next id to `id` (a snapshot's, which remembers the ids of
    /// regions released before it).
    mutating func advanceNextID(to id: UInt64) {
        nextID = max(nextID, id)
    }

    /// Why a record does not apply to the book: a journal that does not
    /// follow from its own past.
    public struct Inapplicable: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Applies one record: a change just decided, a record replayed from the
    /// journal, or an undo. `now` turns a lease's expiry into its monotonic
    /// deadline, here and only here. Returns the record that undoes it, with
    /// the moment to apply that at (which gives back the exact deadline the
    /// change replaced). Throws, changing nothing, when the record does not
    /// apply (only replayed records can: decided ones always do).
    @discardableResult
    public mutating func apply(_ record: JournalRecord, now: LeaseClock.Now) throws(Inapplicable) -> (JournalRecord, LeaseClock.Now) {
        switch record {
        case .allocate(var entry):
            let region = try add(&entry, now: now)
            return (.release(offset: region.offset, id: region.id), now)
        case .release(let offset, let id):
            let region = try existing(offset, id: id, "releases")
            let pinned = pin(offset, region.lease, now)
            let entry = RegionEntry(region, references: references[offset]!.oldestFirst)
            remove(region)
            return (.allocate(entry), pinned)
        case .addReference(let offset, let id, var reference):
            let region = try existing(offset, id: id, "adds a reference to")
            guard region.share != nil else { throw Inapplicable(description: "adds a reference to offset \(offset), which is not shared") }
            if reference.id == 0 {
                reference.id = nextID
            } else if references[offset]![reference.id] != nil {
                throw Inapplicable(description: "adds reference \(reference.id) at offset \(offset) twice")
            }
            nextID = max(nextID, reference.id + 1)
            references[offset]!.insert(reference)
            regions[offset]!.refs += 1
            bind(reference, at: offset)
            return (.dropReference(offset: offset, id: region.id, ref: reference.id), now)
        case .dropReference(let offset, let id, let ref):
            let region = try existing(offset, id: id, "drops a reference on")
            let held = references[offset]!
            guard region.refs > 1, let dropped = ref == nil ? held.newest : held[ref!] else {
                throw Inapplicable(description: "drops a reference at offset \(offset), where none is left to drop")
            }
            references[offset]!.remove(dropped.id)
            regions[offset]!.refs -= 1
            unbind(dropped, at: offset)
            return (.addReference(offset: offset, id: region.id, dropped), now)
        case .renew(let offset, let id, let lease):
            let region = try existing(offset, id: id, "renews")
            let pinned = pin(offset, region.lease, now)
            regions[offset]!.lease = lease
            deadlines[offset] = now.deadline(lease.expiresAt)
            guard let before = region.lease else {
                // Only records written before renewals were refused get here; nothing undoes them.
                return (.renew(offset: offset, id: region.id, lease), now)
            }
            return (.renew(offset: offset, id: region.id, before), pinned)
        }
    }

    /// Adds a region and its references (giving ids to those of older formats).
    private mutating func add(_ entry: inout RegionEntry, now: LeaseClock.Now) throws(Inapplicable) -> SavedRegion {
        let offset = entry.region.offset
        if entry.region.id == 0 {
            entry.region.id = nextID
            nextID += 1
        }
        for index in entry.references.indices where entry.references[index].id == 0 {
            entry.references[index].id = index == 0 ? entry.region.id : nextID
            nextID = max(nextID, entry.references[index].id + 1)
        }
        guard !entry.references.isEmpty else { throw Inapplicable(description: "allocates offset \(offset) without a reference") }
        do throws(RestoreError) {
            try pool.restore(offset: offset, memoryClass: entry.region.memoryClass)
        } catch {
            throw Inapplicable(description: "cannot allocate: \(error)")
        }
        nextID = max(nextID, entry.region.id + 1, (entry.references.map(\.id).max() ?? 0) + 1)
        entry.region.refs = entry.references.count
        let region = entry.region
        regions[offset] = region
        var held = ReferenceSet()
        for reference in entry.references {
            held.insert(reference)
            bind(reference, at: offset)
        }
        references[offset] = held
        wastedBytes += region.wastedBytes
        if let share = region.share { shares[share] = offset }
        if let lease = region.lease { deadlines[offset] = now.deadline(lease.expiresAt) }
        return region
    }

    /// Removes a region, its references and everything bound to them.
    private mutating func remove(_ region: SavedRegion) {
        let offset = region.offset
        _ = try? pool.release(offset: offset)  // every region in the book is allocated in the pool
        for reference in references[offset]!.byID.values { unbind(reference, at: offset) }
        references[offset] = nil
        regions[offset] = nil
        wastedBytes -= region.wastedBytes
        if let share = region.share, shares[share] == offset { shares[share] = nil }
        deadlines[offset] = nil
    }

    /// The region at `offset`, which must be the allocation `id` when it is given.
    private func existing(_ offset: UInt64, id: UInt64?, _ verb: String) throws(Inapplicable) -> SavedRegion {
        guard let region = regions[offset] else {
            throw Inapplicable(description: "\(verb) offset \(offset), where nothing is allocated")
        }
        guard id == nil || region.id == id else {
            throw Inapplicable(description: "\(verb) region \(id!) at offset \(offset), where region \(region.id) is")
        }
        return region
    }

    /// The moment at which applying a lease's undo gives back the region's
    /// current deadline exactly: its expiry on the wall clock, its deadline
    /// on the monotonic one.
    private func pin(_ offset: UInt64, _ lease: SavedRegion.Lease?, _ now: LeaseClock.Now) -> LeaseClock.Now {
        guard let lease, let deadline = deadlines[offset] else { return now }
        return LeaseClock.Now(wall: lease.expiresAt, monotonic: deadline)
    }

    private mutating func bind(_ reference: Reference, at offset: UInt64) {
        if let key = reference.key { keys[key] = Binding(offset: offset, ref: reference.id) }
    }

    /// Forgets the reference's key, unless a later reference has bound it since.
    private mutating func unbind(_ reference: Reference, at offset: UInt64) {
        if let key = reference.key, keys[key] == Binding(offset: offset, ref: reference.id) { keys[key] = nil }
    }
}
