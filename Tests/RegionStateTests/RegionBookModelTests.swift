import Foundation
import MemoryPool
import Testing

@testable import RegionState
@testable import TestSupport

/// The book against a plain reference model, one seeded random operation at
/// a time, with no queue and no journal: ids, references, idempotency keys,
/// leases under a clock stepped both ways, release by label. Then replaying
/// every record applied (in memory, and through a real journal) must give
/// back the same book.
@Suite struct RegionBookModelTests {
    /// A reference held, as the model keeps it.
    struct ModelReference: Equatable {
        var id: UInt64
        var key: String?
        var size: UInt64
        var label: String?
        var ttl: UInt32?
    }

    /// A region, as the model keeps it.
    struct ModelRegion: Equatable {
        var id: UInt64
        var offset: UInt64
        var memoryClass: MemoryClass
        var label: String?
        var size: UInt64
        var share: String?
        var lease: SavedRegion.Lease?
        /// When the lease ends, in monotonic milliseconds.
        var deadline: Int64?
        /// Oldest first.
        var references: [ModelReference]

        var saved: SavedRegion {
            SavedRegion(
                id: id, offset: offset, memoryClass: memoryClass, label: label, requestedSize: size, share: share,
                lease: lease, refs: references.count)
        }
    }

    /// The plain model: the allocator decides offsets (it has its own model
    /// test); everything else is found by scanning.
    struct Model {
        var pool = PoolAllocator()
        var regions: [UInt64: ModelRegion] = [:]
        var nextID: UInt64 = 1
        var wall: Int64 = 1_800_000_000_000
        var monotonic: Int64 = 0
        /// Ids of every region released so far: stale requests name them.
        var released: [(offset: UInt64, id: UInt64)] = []

        var keys: [String: (offset: UInt64, ref: UInt64)] {
            var keys: [String: (offset: UInt64, ref: UInt64)] = [:]
            for region in regions.values {
                for reference in region.references { if let key = reference.key { keys[key] = (region.offset, reference.id) } }
            }
            return keys
        }

        var wastedBytes: UInt64 {
            regions.values.reduce(0) { $0 + $1.memoryClass.validSizeForTests - $1.size }
        }

        mutating func takeID() -> UInt64 {
            defer { nextID += 1 }
            return nextID
        }

        mutating func remove(_ offset: UInt64) {
            released.append((offset, regions[offset]!.id))
            regions[offset] = nil
            _ = try! pool.release(offset: offset)
        }
    }

    static let start = ContinuousClock.now

    func now(_ model: Model) -> LeaseClock.Now {
        LeaseClock.Now(wall: model.wall, monotonic: Self.start + .milliseconds(model.monotonic))
    }

    @Test(arguments: [1, 2, 3, 4])
    func theBookMatchesTheModel(seed: UInt64) throws {
        var book = RegionBook()
        var model = Model()
        var applied: [JournalRecord] = []
        var random = SplitMix64(seed: seed)
        let sizes: [UInt64] = [0, 1, 1 << 20, 3 << 20, 5_000_000, 40 << 20, 300 << 20, 2 << 30, 5 << 30]
        let shares = ["a", "b", "c", nil, nil]
        let labels = ["x", "y", nil]
        let keys = (0..<12).map { "k\($0)" } + [nil, nil, nil]
        func pick<T>(_ values: [T]) -> T { values[Int(random.next() % UInt64(values.count))] }

        for step in 0..<4000 {
            let context = "seed \(seed) step \(step)"
            let moment = now(model)
            switch random.next() % 12 {
            case 0, 1, 2, 3:
                let request = RegionBook.Request(
                    size: pick(sizes), label: pick(labels), key: pick(keys), share: pick(shares),
                    ttl: random.next() % 3 == 0 ? UInt32(1 + random.next() % 5) : nil)
                let expected = allocate(request, &model)
                let decision = book.decide(request, now: moment)
                switch (decision, expected) {
                case (.success(.replay(let region, let ref)), .success(.replay(let offset, let expectedRef))):
                    #expect(region.offset == offset && ref == expectedRef, "\(context)")
                case (.success(.allocate(let record)), .success(.allocate(let offset))),
                    (.success(.join(let record)), .success(.join(let offset))):
                    #expect(record.offset == offset, "\(context): \(record)")
                    try book.apply(record, now: moment)
                    applied.append(record)
                case (.failure(let error), .failure(let expectedError)):
                    #expect(error == expectedError, "\(context)")
                default:
                    Issue.record("\(context): \(request) decided \(decision), the model says \(expected)")
                }
            case 4, 5, 6:
                let (offset, id, ref) = target(&random, model)
                let decided = book.decideRelease(offset: offset, id: id, ref: ref)
                guard var region = model.regions[offset], id == nil || region.id == id,
                    ref == nil || region.references.contains(where: { $0.id == ref })
                else {
                    #expect(decided == .failure(.notAllocated), "\(context): release \(offset) id \(id ?? 0) ref \(ref ?? 0)")
                    continue
                }
                if id != nil && ref == nil && region.references.count > 1 {
                    #expect(decided == .failure(.referencesHeld(region.references.count)), "\(context): the allocation or nothing")
                    continue
                }
                guard case .success(let record) = decided else {
                    Issue.record("\(context): \(decided)")
                    continue
                }
                try book.apply(record, now: moment)
                applied.append(record)
                if region.references.count == 1 {
                    model.remove(offset)
                } else {
                    let dropped = ref ?? region.references.map(\.id).max()!
                    region.references.removeAll { $0.id == dropped }
                    model.regions[offset] = region
                }
            case 7:
                let (offset, id, ref) = target(&random, model)
                let ttl: UInt32? = random.next() % 2 == 0 ? UInt32(1 + random.next() % 5) : nil
                let decided = book.decideRenew(offset: offset, id: id, ref: ref, ttl: ttl, now: moment)
                guard var region = model.regions[offset], id == nil || region.id == id,
                    ref == nil || region.references.contains(where: { $0.id == ref })
                else {
                    #expect(decided == .failure(.notAllocated), "\(context)")
                    continue
                }
                guard let lease = region.lease else {
                    #expect(decided == .failure(.notLeased), "\(context): a renewal never gives a lease")
                    continue
                }
                let seconds = ttl ?? lease.seconds
                region.lease = SavedRegion.Lease(seconds: seconds, expiresAt: model.wall + Int64(seconds) * 1000)
                region.deadline = model.monotonic + Int64(seconds) * 1000
                model.regions[offset] = region
                guard case .success(let record) = decided else {
                    Issue.record("\(context): \(decided)")
                    continue
                }
                try book.apply(record, now: moment)
                applied.append(record)
            case 8:
                let label = pick(["x", "y", "z"])
                let records = book.decideRelease(label: label)
                for record in records { try book.apply(record, now: moment) }
                applied += records
                for offset in model.regions.keys.sorted() {
                    var region = model.regions[offset]!
                    region.references.removeAll { $0.label == label }
                    if region.label == label || region.references.isEmpty {
                        model.remove(offset)
                    } else {
                        model.regions[offset] = region
                    }
                }
            case 9:
                // The wall clock steps alone, either way: no lease moves.
                model.wall += Int64(random.next() % 7_200_000) - 3_600_000
            default:
                let elapsed = Int64(random.next() % 1500)
                model.wall += elapsed
                model.monotonic += elapsed
                let records = book.decideExpiry(at: now(model).monotonic)
                let due = model.regions.values.filter { ($0.deadline ?? .max) <= model.monotonic }.map(\.offset).sorted()
                #expect(records.map(\.offset) == due, "\(context)")
                for record in records { try book.apply(record, now: now(model)) }
                applied += records
                for offset in due { model.remove(offset) }
            }
            try check(book, against: model, context)
        }

        // Replaying what was applied gives the same book, in memory and through a journal.
        let end = now(model)
        var replayed = RegionBook()
        for record in applied { try replayed.apply(record, now: end) }
        #expect(replayed.image == book.image)
        #expect(replayed.boundKeys.mapValues { "\($0)" } == book.boundKeys.mapValues { "\($0)" })
        let directory = try TemporaryDirectory()
        let journal = try Journal(directory: directory.path, compactAfter: applied.count / 2, logger: testLogger())
        _ = try journal.load(now: end)
        var written = RegionBook()
        for (index, record) in applied.enumerated() {
            try written.apply(record, now: end)
            try journal.append(record) { _ in }
            if index == applied.count / 2 { journal.compact(image: written.image) }
        }
        journal.close()
        let reloaded = try Journal(directory: directory.path, logger: testLogger())
        defer { reloaded.close() }
        let loaded = try reloaded.load(now: end)
        #expect(loaded.image == book.image)
        #expect(loaded.boundKeys.mapValues { "\($0)" } == book.boundKeys.mapValues { "\($0)" })
    }

    /// What the model expects of an allocation request.
    enum Expected: Equatable {
        case replay(UInt64, UInt64)
        case allocate(UInt64)
        case join(UInt64)
    }

    /// Applies an allocation request to the model.
    func allocate(_ request: RegionBook.Request, _ model: inout Model) -> Result<Expected, RegionError> {
        if let key = request.key, let bound = model.keys[key] {
            let region = model.regions[bound.offset]!
            let reference = region.references.first { $0.id == bound.ref }!
            let same = reference.size == request.size && reference.label == request.label && region.share == request.share
                && reference.ttl == request.ttl
            return same ? .success(.replay(bound.offset, bound.ref)) : .failure(.keyReused(key: key))
        }
        let memoryClass = MemoryPool.memoryClass(for: request.size)
        guard memoryClass.isValid else { return .failure(.invalidMemoryClass) }
        let reference = ModelReference(id: 0, key: request.key, size: request.size, label: request.label, ttl: request.ttl)
        if let share = request.share, let region = model.regions.values.first(where: { $0.share == share }) {
            guard region.memoryClass == memoryClass else {
                return .failure(.shareConflict(share: share, memoryClass: region.memoryClass))
            }
            var joined = reference
            joined.id = model.takeID()
            model.regions[region.offset]!.references.append(joined)
            return .success(.join(region.offset))
        }
        let placed: Region
        do throws(PoolError) {
            placed = try model.pool.allocate(size: request.size)
        } catch {
            return .failure(.notEnoughSpace(largestFree: model.pool.largestFree))
        }
        let id = model.takeID()
        var first = reference
        first.id = id
        model.regions[placed.offset] = ModelRegion(
            id: id, offset: placed.offset, memoryClass: placed.memoryClass, label: request.label, size: request.size,
            share: request.share,
            lease: request.ttl.map { SavedRegion.Lease(seconds: $0, expiresAt: model.wall + Int64($0) * 1000) },
            deadline: request.ttl.map { model.monotonic + Int64($0) * 1000 }, references: [first])
        return .success(.allocate(placed.offset))
    }

    /// An offset with, sometimes, an id and a reference: mostly right, sometimes stale or foreign.
    func target(_ random: inout SplitMix64, _ model: Model) -> (UInt64, UInt64?, UInt64?) {
        let live = model.regions.values.sorted { $0.offset < $1.offset }
        let roll = random.next() % 10
        if roll == 0, let stale = model.released.element(using: &random) {
            return (stale.offset, stale.id, nil)  // a retried request about a region released since
        }
        guard !live.isEmpty, roll != 1 else { return (UInt64(random.next() % 64) << 20, nil, nil) }
        let region = live[Int(random.next() % UInt64(live.count))]
        switch roll {
        case 2: return (region.offset, nil, nil)
        case 3: return (region.offset, region.id, nil)
        case 4: return (region.offset, region.id + 1, nil)
        case 5: return (region.offset, nil, model.nextID + random.next() % 3)  // a reference not held
        default:
            let reference = region.references[Int(random.next() % UInt64(region.references.count))]
            return (region.offset, random.next() % 2 == 0 ? region.id : nil, reference.id)
        }
    }

    func check(_ book: RegionBook, against model: Model, _ context: String) throws {
        try #require(book.regions == model.regions.mapValues(\.saved), "\(context)")
        let keys = model.keys
        #expect(book.boundKeys.count == keys.count, "\(context)")
        for (key, bound) in keys {
            #expect(book.boundKeys[key].map { $0.offset == bound.offset && $0.ref == bound.ref } == true, "\(context): key \(key)")
        }
        #expect(book.wastedBytes == model.wastedBytes, "\(context)")
        #expect(book.nextID == model.nextID, "\(context)")
        for region in model.regions.values {
            for reference in region.references {
                #expect(
                    book.reference(at: region.offset, ref: reference.id)
                        == Reference(id: reference.id, key: reference.key, requestedSize: reference.size, label: reference.label, ttl: reference.ttl),
                    "\(context)")
            }
        }
    }
}

extension SplitMix64 {
    /// Whatever `RandomNumberGenerator` needs; the generator is seeded.
    fileprivate mutating func randomIndex(_ count: Int) -> Int { Int(next() % UInt64(count)) }
}

extension Array {
    fileprivate func element(using random: inout SplitMix64) -> Element? {
        isEmpty ? nil : self[random.randomIndex(count)]
    }
}
