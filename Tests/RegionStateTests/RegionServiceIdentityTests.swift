import Dispatch
import Foundation
import MemoryPool
import Locking
import Testing

@testable import RegionState
@testable import TestSupport

/// A clock the test moves by hand: wall and monotonic time advance together
/// unless the test steps the wall clock alone.
final class ManualClock: Sendable {
    private let state = Locked<(wall: Int64, elapsed: Duration)>((1_800_000_000_000, .zero))
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

/// A region's identity, its references and keys, and its lease, through the
/// service as an orchestration script meets them: each test is one of the
/// bugs a stale or retried request used to hit.
@Suite struct RegionServiceIdentityTests {
    let service: RegionService
    let clock = ManualClock()

    init() {
        service = RegionService(journal: nil, logger: testLogger(), clock: clock.leaseClock)
    }

    func allocate(_ request: RegionService.Request) -> Result<RegionService.Allocation, RegionError> {
        waitFor { service.allocate(request, completion: $0) }
    }

    func release(_ offset: UInt64, id: UInt64? = nil, ref: UInt64? = nil) -> Result<RegionService.Release, RegionError> {
        waitFor { service.release(offset: offset, id: id, ref: ref, completion: $0) }
    }

    func renew(_ offset: UInt64, id: UInt64? = nil, ttl: UInt32?) -> Result<SavedRegion, RegionError> {
        waitFor { service.renew(offset: offset, id: id, ttl: ttl, completion: $0) }
    }

    @Test func aStaleReleaseNeverReleasesTheNextAllocationAtTheSameOffset() throws {
        let first = try allocate(.init(size: 1 << 20, label: "vm-a")).get().region
        #expect(try release(first.offset, id: first.id).get().released)
        let second = try allocate(.init(size: 1 << 20, label: "vm-b")).get().region
        #expect(second.offset == first.offset && second.id != first.id)
        // vm-a's retried DELETE, whose first answer was lost.
        #expect(release(first.offset, id: first.id).failure == .notAllocated)
        #expect(waitFor { service.region(at: first.offset, id: first.id, completion: $0) }.failure == .notAllocated)
        #expect(renew(first.offset, id: first.id, ttl: 5).failure == .notAllocated)
        #expect(try service.listing() == [second])
    }

    @Test func aRetriedRequestIsReplayedAfterARenewal() throws {
        let request = RegionService.Request(size: 1 << 20, key: "k1", ttl: 3600)
        let created = try allocate(request).get()
        clock.advance(milliseconds: 1000)
        _ = try renew(created.region.offset, ttl: 7200).get()
        guard case .success(.replayed(let region, let ref)) = allocate(request) else {
            Issue.record("the retried request is not a replay")
            return
        }
        #expect(region.id == created.region.id && ref == created.ref)
        #expect(region.lease?.seconds == 7200)
    }

    @Test func aReleaseOfOneReferenceForgetsThatReferencesKeyOnly() throws {
        let first = try allocate(.init(size: 1 << 20, label: "vm-a", key: "a", share: "layer")).get()
        let second = try allocate(.init(size: 1 << 20, label: "vm-b", key: "b", share: "layer")).get()
        #expect(second.region.id == first.region.id && second.ref != first.ref)
        // vm-a drops its own reference: its key goes with it, vm-b's stays.
        let dropped = try release(first.region.offset, id: first.region.id, ref: first.ref).get()
        #expect(dropped.ref == first.ref && dropped.region.refs == 1 && !dropped.released)
        guard case .success(.replayed(_, let ref)) = allocate(.init(size: 1 << 20, label: "vm-b", key: "b", share: "layer")) else {
            Issue.record("vm-b's retry is not a replay")
            return
        }
        #expect(ref == second.ref)
        #expect(try service.listing().map(\.refs) == [1], "a replay never takes a reference")
        // vm-a's key is free again: its retry takes a new reference.
        guard case .success(.joined(let region, let again)) = allocate(.init(size: 1 << 20, label: "vm-a", key: "a", share: "layer")) else {
            Issue.record("vm-a's retry did not join")
            return
        }
        #expect(region.refs == 2 && again != first.ref)
        // A reference not held is not found, and changes nothing.
        #expect(release(first.region.offset, ref: first.ref).failure == .notAllocated)
        #expect(try service.listing().map(\.refs) == [2])
    }

    @Test func releasingASharedAllocationByIdIsRefusedWhileOthersHoldReferences() throws {
        let first = try allocate(.init(size: 1 << 20, key: "a", share: "layer")).get()
        let second = try allocate(.init(size: 1 << 20, key: "b", share: "layer")).get()
        #expect(release(first.region.offset, id: first.region.id).failure == .referencesHeld(2))
        #expect(try service.listing().map(\.refs) == [2], "nothing changed")
        #expect(try release(first.region.offset, id: first.region.id, ref: second.ref).get().region.refs == 1)
        // The one reference left: now the allocation goes.
        #expect(try release(first.region.offset, id: first.region.id).get().released)
        #expect(try service.listing() == [])
    }

    @Test func aWallClockStepForwardNeverShortensALeaseWhenItsRegionChanges() throws {
        let leased = try allocate(.init(size: 1 << 20, share: "layer", ttl: 10)).get().region
        clock.stepWall(milliseconds: 3_600_000)  // an hour forward
        // A join and a drop change the region: its deadline must stay.
        let joined = try allocate(.init(size: 1 << 20, share: "layer")).get()
        _ = try release(leased.offset, ref: joined.ref).get()
        #expect(service.expireDue().isEmpty)
        clock.stepWall(milliseconds: -7_200_000)  // and back past the start
        clock.advance(milliseconds: 9_999)
        #expect(service.expireDue().isEmpty)
        clock.advance(milliseconds: 1)
        #expect(service.expireDue().map(\.offset) == [leased.offset])
    }

    @Test(arguments: [nil, 5] as [UInt32?])
    func renewingARegionWithoutALeaseIsRefused(ttl: UInt32?) throws {
        let layer = try allocate(.init(size: 1 << 20, label: "layer")).get().region
        #expect(renew(layer.offset, ttl: ttl).failure == .notLeased)
        clock.advance(milliseconds: 3_600_000)
        #expect(service.expireDue().isEmpty)
        #expect(try service.listing() == [layer])
    }

    @Test func aLeaseThatEndedWhileRegiondWasDownEndsAtStartUp() throws {
        let directory = try TemporaryDirectory()
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
        #expect(try service.listing().map(\.offset) == [1 << 20])
    }

    @Test func releaseByLabelDropsEveryReferenceAndRegionOfThatLabelAndNothingElse() throws {
        let own = try allocate(.init(size: 1 << 20, label: "vm-7")).get().region
        let shared = try allocate(.init(size: 4 << 20, label: "vm-1", share: "layer")).get().region
        _ = try allocate(.init(size: 4 << 20, label: "vm-7", share: "layer")).get()
        let sole = try allocate(.init(size: 1 << 20, label: "vm-2", share: "only-7")).get().region
        _ = try allocate(.init(size: 1 << 20, label: "vm-7", key: "k7", share: "only-7")).get()
        _ = try release(sole.offset, ref: sole.id).get()  // only vm-7's reference is left on it
        let other = try allocate(.init(size: 1 << 20, label: "vm-8")).get().region

        let changed = try waitFor { service.release(label: "vm-7", completion: $0) }.get()
        #expect(changed.map(\.offset) == [own.offset, shared.offset, sole.offset].sorted())
        #expect(changed.map(\.refs) == [0, 1, 0].enumerated().map { [own.offset, shared.offset, sole.offset].sorted()[$0.offset] == shared.offset ? 1 : 0 })
        var left = shared
        left.refs = 1
        #expect(try service.listing() == [left, other].sorted { $0.offset < $1.offset })
        // The key of a dropped reference is gone; a retried teardown changes nothing.
        #expect(service.bookSnapshot.boundKeys["k7"] == nil)
        #expect(try waitFor { service.release(label: "vm-7", completion: $0) }.get() == [])
    }

    @Test func aSharedRegionTakesReferencesUpToTheCapAndNoMore() throws {
        var book = RegionBook()
        let now = LeaseClock.Now(wall: 0, monotonic: ContinuousClock.now)
        let request = RegionBook.Request(size: 1 << 20, share: "layer")
        for _ in 0..<RegionBook.maximumReferences {
            switch book.decide(request, now: now) {
            case .success(.allocate(let record)), .success(.join(let record)): try book.apply(record, now: now)
            case let other: Issue.record("refused early: \(other)"); return
            }
        }
        #expect(book.regions[0]?.refs == RegionBook.maximumReferences)
        let before = book.image
        #expect(book.decide(request, now: now) == .failure(.tooManyReferences(limit: RegionBook.maximumReferences)))
        #expect(book.image == before)
        // Dropping by id, the newest, and taking again all stay cheap at the cap.
        let drop = try book.decideRelease(offset: 0, ref: 2).get()
        try book.apply(drop, now: now)
        #expect(book.reference(at: 0, ref: 2) == nil && book.regions[0]?.refs == RegionBook.maximumReferences - 1)
        let newest = try book.decideRelease(offset: 0).get()
        #expect(newest == .dropReference(offset: 0, id: 1, ref: UInt64(RegionBook.maximumReferences)))
    }

    // MARK: No answer reveals what a crash can undo

    /// While a change waits for its fsync (the journal's writer is held
    /// back here), a read or a refusal that saw it waits too; with
    /// nothing pending, both answer at once.
    @Test func readsAndRefusalsWaitForThePendingChangesTheySaw() throws {
        let directory = try TemporaryDirectory()
        let journal = try Journal(directory: directory.path, logger: testLogger())
        defer { journal.close() }
        let service = RegionService(journal: journal, logger: testLogger())
        try service.load()

        let answered = Locked<[String]>([])
        let done = DispatchGroup()
        func record(_ name: String) -> @Sendable (Any) -> Void {
            done.enter()
            return { _ in
                answered.withLock { $0.append(name) }
                done.leave()
            }
        }
        // Nothing pending: a read answers before the call returns.
        service.regions(completion: record("idle read"))
        #expect(answered.withLock { $0 } == ["idle read"])

        let resume = journal.pauseWriter()
        let allocation = record("allocation")
        service.allocate(RegionService.Request(size: 4 << 30)) { allocation($0) }
        let read = record("read")
        service.regions { read($0) }
        let refusal = record("refusal")
        service.allocate(RegionService.Request(size: 1 << 20)) { refusal($0) }
        let missing = record("missing")
        service.region(at: 0, id: 99) { missing($0) }
        #expect(answered.withLock { $0 } == ["idle read"], "nothing answered before the allocation is durable")
        resume()
        done.wait()
        // Each answered once the allocation was durable (in whatever order the completions ran).
        #expect(answered.withLock { $0 }.sorted() == ["allocation", "idle read", "missing", "read", "refusal"])
    }
}

extension Result {
    var failureForTests: Failure? {
        if case .failure(let error) = self { error } else { nil }
    }
}

extension MemoryClass {
    var validSizeForTests: UInt64 { (1 << 20) << (2 * UInt64(rawValue)) }
}
