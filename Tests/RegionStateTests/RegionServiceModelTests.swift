import Dispatch
import Foundation
import MemoryPool
import Synchronization
import Testing

@testable import RegionState
@testable import TestSupport

/// A clock the test moves by hand: wall and monotonic time advance together
/// unless the test steps the wall clock alone.
final class ManualClock: Sendable {
    private let state = Mutex<(wall: Int64, elapsed: Duration)>((1_800_000_000_000, .zero))
    private let start = ContinuousClock.now

    var leaseClock: LeaseClock {
        LeaseClock(
            wallMilliseconds: { [self] in state.withLock { $0.wall } },
            monotonic: { [self] in start + state.withLock { $0.elapsed } })
    }

    var wall: Int64 { state.withLock { $0.wall } }

    func advance(milliseconds: Int64) {
        state.withLock {
            $0.wall += milliseconds
            $0.elapsed += .milliseconds(milliseconds)
        }
    }

    /// The wall clock jumps; the monotonic one does not move.
    func stepWall(milliseconds: Int64) {
        state.withLock { $0.wall += milliseconds }
    }
}

/// The service's shares, references, leases and batches against a plain
/// model, one seeded random operation at a time, with a hand-moved clock;
/// then the journal must give back exactly the same state.
@Suite struct RegionServiceModelTests {
    /// What the model expects a region to be.
    struct Expected: Equatable, CustomStringConvertible {
        var memoryClass: Int
        var label: String?
        var share: String?
        var refs: Int
        var expiresAt: Int64?

        var description: String {
            "class \(memoryClass) label \(label ?? "-") share \(share ?? "-") refs \(refs) expires \(expiresAt.map(String.init) ?? "-")"
        }
    }

    /// The plain model: the allocator decides offsets (it has its own tests);
    /// everything else is a dictionary.
    struct Model {
        var pool = PoolAllocator()
        var regions: [UInt64: Expected] = [:]
        var requested: [UInt64: UInt64] = [:]
        /// The last lease length of each leased region, for renewals without one.
        var lastTTL: [UInt64: UInt32] = [:]

        func offset(ofShare share: String) -> UInt64? {
            regions.first { $0.value.share == share }?.key
        }

        var wastedBytes: UInt64 {
            regions.reduce(0) { total, entry in
                total + (MemoryClass(rawValue: entry.value.memoryClass).validSizeForTests - requested[entry.key]!)
            }
        }
    }

    func listing(_ service: RegionService) throws -> [UInt64: Expected] {
        Dictionary(
            uniqueKeysWithValues: try service.regions().map {
                ($0.offset, Expected(memoryClass: $0.memoryClass.rawValue, label: $0.label, share: $0.share, refs: $0.refs, expiresAt: $0.lease?.expiresAt))
            })
    }

    @Test(arguments: [1, 2, 3])
    func sharesLeasesAndBatchesMatchTheModel(seed: UInt64) throws {
        let directory = try TemporaryDirectory()
        let clock = ManualClock()
        let journal = try Journal(directory: directory.path, logger: testLogger())
        let service = RegionService(journal: journal, logger: testLogger(), clock: clock.leaseClock)
        try service.load()
        var model = Model()
        var random = SplitMix64(seed: seed)
        let sizes: [UInt64] = [1, 1 << 20, 3 << 20, 5_000_000, 40 << 20, 300 << 20, 2 << 30, 5 << 30]
        let shares = ["a", "b", "c", nil, nil]
        let labels = ["x", nil]

        for step in 0..<3000 {
            let context = "seed \(seed) step \(step)"
            switch random.next() % 10 {
            case 0, 1, 2, 3:
                let request = RegionService.Request(
                    size: sizes[Int(random.next() % UInt64(sizes.count))], label: labels[Int(random.next() % 2)],
                    share: shares[Int(random.next() % UInt64(shares.count))],
                    ttl: random.next() % 3 == 0 ? UInt32(1 + random.next() % 5) : nil)
                let result = waitFor { service.allocate(request, completion: $0) }
                try expectAllocation(request, result, &model, clock: clock, context)
            case 4, 5, 6:
                let offsets = Array(model.regions.keys)
                let offset = offsets.isEmpty || random.next() % 8 == 0 ? UInt64(random.next() % 64) << 20 : offsets[Int(random.next() % UInt64(offsets.count))]
                let result = waitFor { (done: @escaping @Sendable (Result<RegionService.Release, RegionError>) -> Void) in
                    service.release(offset: offset, completion: done)
                }
                guard var expected = model.regions[offset] else {
                    #expect(result == .failure(.notAllocated), "\(context)")
                    continue
                }
                expected.refs -= 1
                if expected.refs == 0 {
                    model.regions[offset] = nil
                    model.requested[offset] = nil
                    _ = try model.pool.release(offset: offset)
                    guard case .success(.released) = result else { Issue.record("\(context): \(result)"); continue }
                } else {
                    model.regions[offset] = expected
                    guard case .success(.dropped(let region)) = result else { Issue.record("\(context): \(result)"); continue }
                    #expect(region.refs == expected.refs, "\(context)")
                }
            case 7:
                let offsets = Array(model.regions.keys)
                guard let offset = offsets.isEmpty ? nil : offsets[Int(random.next() % UInt64(offsets.count))] else { continue }
                let ttl: UInt32? = random.next() % 2 == 0 ? UInt32(1 + random.next() % 5) : nil
                let result = waitFor { (done: @escaping @Sendable (Result<SavedRegion, RegionError>) -> Void) in
                    service.renew(offset: offset, ttl: ttl, completion: done)
                }
                let seconds = ttl ?? model.lastTTL[offset]
                if let seconds {
                    model.regions[offset]!.expiresAt = clock.wall + Int64(seconds) * 1000
                    model.lastTTL[offset] = seconds
                    #expect((try? result.get())?.lease?.expiresAt == model.regions[offset]!.expiresAt, "\(context)")
                } else {
                    #expect(result.failureForTests == .notLeased, "\(context)")
                }
            case 8:
                clock.advance(milliseconds: Int64(random.next() % 1500))
                let expired = Set(service.expireDue().map(\.offset))
                let due = Set(model.regions.filter { ($0.value.expiresAt ?? .max) <= clock.wall }.keys)
                #expect(expired == due, "\(context)")
                for offset in due {
                    model.regions[offset] = nil
                    model.requested[offset] = nil
                    _ = try model.pool.release(offset: offset)
                }
            default:
                let count = 1 + Int(random.next() % 4)
                let requests = (0..<count).map { _ in
                    RegionService.Request(
                        size: sizes[Int(random.next() % UInt64(sizes.count))], share: shares[Int(random.next() % UInt64(shares.count))],
                        ttl: random.next() % 4 == 0 ? 3 : nil)
                }
                let before = try listing(service)
                let result = waitFor { (done: @escaping @Sendable (Result<[RegionService.Allocation], RegionError>) -> Void) in
                    service.allocate(batch: requests, completion: done)
                }
                var trial = model
                var failedAt: Int?
                for (index, request) in requests.enumerated() {
                    if (try? expectAllocation(request, nil, &trial, clock: clock, context, checking: false)) != true {
                        failedAt = index
                        break
                    }
                }
                if let failedAt {
                    guard case .failure(.batchItem(let index, _)) = result else { Issue.record("\(context): \(result)"); continue }
                    #expect(index == failedAt, "\(context)")
                    #expect(try listing(service) == before, "\(context): a failed batch changed the state")
                } else {
                    #expect((try? result.get())?.count == requests.count, "\(context): \(result)")
                    model = trial
                }
            }
            #expect(try listing(service) == model.regions, "\(context)")
            #expect(service.poolFigures.wastedBytes == model.wastedBytes, "\(context)")
        }
        journal.close()

        // The journal gives back exactly what the service held.
        let reloaded = try Journal(directory: directory.path, logger: testLogger())
        defer { reloaded.close() }
        let again = RegionService(journal: reloaded, logger: testLogger(), clock: clock.leaseClock)
        try again.load()
        #expect(try listing(again) == model.regions)
    }

    /// Applies one allocation to the model and (when `checking`) compares the
    /// service's answer; returns false when the request must fail.
    @discardableResult
    func expectAllocation(
        _ request: RegionService.Request, _ result: Result<RegionService.Allocation, RegionError>?, _ model: inout Model,
        clock: ManualClock, _ context: String, checking: Bool = true
    ) throws -> Bool {
        let memoryClass = MemoryPool.memoryClass(for: request.size)
        if let share = request.share, let offset = model.offset(ofShare: share) {
            guard memoryClass.isValid else {
                if checking { #expect(result?.failureForTests == .invalidMemoryClass, "\(context)") }
                return false
            }
            guard memoryClass.rawValue == model.regions[offset]!.memoryClass else {
                if checking { #expect(result?.failureForTests?.isShareConflict == true, "\(context): \(String(describing: result))") }
                return false
            }
            model.regions[offset]!.refs += 1
            if checking {
                guard case .success(.joined(let region)) = result else { Issue.record("\(context): \(String(describing: result))"); return true }
                #expect(region.offset == offset && region.refs == model.regions[offset]!.refs, "\(context)")
            }
            return true
        }
        let region: Region
        do throws(PoolError) {
            region = try model.pool.allocate(size: request.size)
        } catch {
            if checking {
                let failure = result?.failureForTests
                #expect(failure == (error == .invalidMemoryClass ? .invalidMemoryClass : .notEnoughSpace(largestFree: model.pool.largestFree)), "\(context)")
            }
            return false
        }
        model.regions[region.offset] = Expected(
            memoryClass: region.memoryClass.rawValue, label: request.label, share: request.share, refs: 1,
            expiresAt: request.ttl.map { clock.wall + Int64($0) * 1000 })
        model.requested[region.offset] = request.size
        if let ttl = request.ttl { model.lastTTL[region.offset] = ttl } else { model.lastTTL[region.offset] = nil }
        if checking {
            guard case .success(.created(let created)) = result else { Issue.record("\(context): \(String(describing: result))"); return true }
            #expect(created.offset == region.offset, "\(context)")
        }
        return true
    }

    @Test func aWallClockStepBackwardsNeverEndsALeaseEarly() throws {
        let clock = ManualClock()
        let service = RegionService(journal: nil, logger: testLogger(), clock: clock.leaseClock)
        let created = waitFor { service.allocate(RegionService.Request(size: 1 << 20, ttl: 10), completion: $0) }
        let offset = try created.get().region.offset
        clock.stepWall(milliseconds: 3_600_000)  // an hour forward: the lease must not end now
        #expect(service.expireDue().isEmpty)
        clock.stepWall(milliseconds: -7_200_000)  // and back
        clock.advance(milliseconds: 9_999)
        #expect(service.expireDue().isEmpty)
        clock.advance(milliseconds: 1)
        #expect(service.expireDue().map(\.offset) == [offset])
    }

    @Test func aLeaseThatEndedWhileRegiondWasDownEndsAtStartUp() throws {
        let directory = try TemporaryDirectory()
        let clock = ManualClock()
        do {
            let journal = try Journal(directory: directory.path, logger: testLogger())
            let service = RegionService(journal: journal, logger: testLogger(), clock: clock.leaseClock)
            try service.load()
            _ = waitFor { service.allocate(RegionService.Request(size: 1 << 20, ttl: 5), completion: $0) }
            _ = waitFor { service.allocate(RegionService.Request(size: 1 << 20, ttl: 60), completion: $0) }
            journal.close()
        }
        clock.advance(milliseconds: 30_000)
        let journal = try Journal(directory: directory.path, logger: testLogger())
        defer { journal.close() }
        let service = RegionService(journal: journal, logger: testLogger(), clock: clock.leaseClock)
        try service.load()
        #expect(service.expireDue().map(\.offset) == [0])
        #expect(try service.regions().map(\.offset) == [1 << 20])
    }

    @Test func aReplayWithTheSameKeyNeverAddsAReference() throws {
        let service = RegionService(journal: nil, logger: testLogger())
        let first = RegionService.Request(size: 1 << 20, key: "k1", share: "layer")
        let second = RegionService.Request(size: 1 << 20, key: "k2", share: "layer")
        #expect(try waitFor { service.allocate(first, completion: $0) }.get().region.refs == 1)
        #expect(try waitFor { service.allocate(second, completion: $0) }.get().region.refs == 2)
        for request in [first, second, first] {
            guard case .success(.replayed(let region)) = waitFor({ service.allocate(request, completion: $0) }) else {
                Issue.record("not a replay")
                return
            }
            #expect(region.refs == 2)
        }
        var other = second
        other.size = 2 << 20
        #expect(waitFor { service.allocate(other, completion: $0) }.failureForTests == .keyReused(key: "k2"))
    }
}

extension Result {
    var failureForTests: Failure? {
        if case .failure(let error) = self { error } else { nil }
    }
}

extension RegionError {
    var isShareConflict: Bool {
        if case .shareConflict = self { true } else { false }
    }
}

extension MemoryClass {
    var validSizeForTests: UInt64 { (1 << 20) << (2 * UInt64(rawValue)) }
}
