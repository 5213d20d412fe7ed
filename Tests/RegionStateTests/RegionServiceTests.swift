import Dispatch
import Foundation
import Glibc
import Logging
import MemoryPool
import Locking
import Testing

@testable import RegionState
@testable import TestSupport

/// The service and its journal together, on a temporary directory: where a
/// change is answered, and what happens when the journal goes away under it.
@Suite struct RegionServiceTests {
    func allocate(_ service: RegionService, _ size: UInt64, label: String? = nil) -> Result<RegionService.Allocation, RegionError> {
        waitFor { service.allocate(RegionService.Request(size: size, label: label), completion: $0) }
    }

    func release(_ service: RegionService, _ offset: UInt64) -> Result<RegionService.Release, RegionError> {
        waitFor { service.release(offset: offset, completion: $0) }
    }

    @Test func aClosedJournalNeverRunsACompletionOnTheCallersThread() throws {
        let directory = try TemporaryDirectory()
        let journal = try Journal(directory: directory.path, logger: testLogger())
        _ = try journal.load(now: LeaseClock.system.now())
        let sequence = waitFor { (done: @escaping @Sendable (UInt64) -> Void) in
            let appended = Locked<UInt64>(0)
            appended.withLock { value in
                value = (try? journal.append(.release(offset: 0)) { _ in done(appended.withLock { $0 }) }) ?? 0
            }
        }
        journal.close()
        // The service's pattern: a serial queue whose completion needs the
        // same queue again. Run synchronously, that would be a re-entrant
        // dispatch_sync; so the completion must not have run on return.
        let queue = DispatchQueue(label: "test.pool")
        let ranInline = Locked(false)
        let finished = DispatchSemaphore(value: 0)
        queue.sync {
            let caller = UInt(pthread_self())
            journal.whenDurable(sequence + 1) { result in
                if UInt(pthread_self()) == caller { ranInline.withLock { $0 = true } }
                queue.sync {}
                #expect(throws: JournalError.notOpen) { try result.get() }
                finished.signal()
            }
        }
        finished.wait()
        #expect(!ranInline.withLock { $0 })
    }

    /// The writer runs a batch's completions itself, right after its
    /// fdatasync and in the order the records were appended: no hop to
    /// another thread per batch.
    @Test func completionsRunOnTheWriterThreadInTheOrderOfTheRecords() throws {
        let directory = try TemporaryDirectory()
        let journal = try Journal(directory: directory.path, logger: testLogger())
        _ = try journal.load(now: LeaseClock.system.now())
        defer { journal.close() }
        let seen = Locked<[(sequence: Int, thread: String)]>([])
        let done = DispatchGroup()
        // Held while appending, so that several records share a batch.
        let resume = journal.pauseWriter()
        for sequence in 1...20 {
            done.enter()
            let region = SavedRegion(id: UInt64(sequence), offset: UInt64(sequence) << 20, memoryClass: MemoryClass(rawValue: 0))
            try journal.append(.allocate(RegionEntry(region, references: [Reference(id: UInt64(sequence))]))) { result in
                #expect(throws: Never.self) { try result.get() }
                seen.withLock { $0.append((sequence, Thread.current.name ?? "")) }
                done.leave()
            }
        }
        resume()
        done.wait()
        let order = seen.withLock { $0 }
        #expect(order.map(\.sequence) == Array(1...20))
        #expect(order.allSatisfy { $0.thread == Journal.writerThreadName }, "\(order.map(\.thread))")
    }

    /// A write that fails is undone from the writer thread, which enters the
    /// pool's queue for it: this must not deadlock, and the undos run newest
    /// first, leaving the state as it was before the failed batch.
    @Test func aFailedWriteIsUndoneFromTheWriterThread() throws {
        let directory = try TemporaryDirectory()
        let journal = try Journal(directory: directory.path, logger: testLogger())
        let service = RegionService(journal: journal, logger: testLogger())
        try service.load()
        defer { journal.close() }
        guard case .success(.created(let kept, _)) = allocate(service, 1 << 20, label: "kept") else {
            Issue.record("the first allocation failed")
            return
        }
        let before = service.bookSnapshot.image
        let resume = journal.pauseWriter {
            // On the writer thread, which alone touches the open file: the next write fails (EBADF).
            // Closed and forgotten, so that `close()` does not close again a
            // number another test may have opened meanwhile.
            if let file = journal.current { Glibc.close(file.descriptor) }
            journal.current?.descriptor = -1
        }
        let results = Locked<[Result<RegionService.Allocation, RegionError>]>([])
        let done = DispatchGroup()
        for _ in 0..<5 {
            done.enter()
            service.allocate(RegionService.Request(size: 1 << 20)) { result in
                results.withLock { $0.append(result) }
                done.leave()
            }
        }
        #expect(service.poolSnapshot.regionCount == 6)
        resume()
        done.wait()
        #expect(results.withLock { $0 }.allSatisfy { $0.failure == .unavailable })
        // Ids are never reused, so the next id stays where the failed batch took it.
        #expect(service.bookSnapshot.image.entries == before.entries)
        #expect(service.poolSnapshot.regionCount == 1)
        #expect(try service.listing() == [kept])
    }

    @Test func aChangeAfterTheJournalClosedIsRefusedAndLeavesTheStateAsItWas() throws {
        let directory = try TemporaryDirectory()
        let journal = try Journal(directory: directory.path, logger: testLogger())
        let service = RegionService(journal: journal, logger: testLogger())
        try service.load()
        guard case .success(.created(let kept, _)) = allocate(service, 1 << 20, label: "kept") else {
            Issue.record("the first allocation failed")
            return
        }
        journal.close()
        #expect(allocate(service, 1 << 20).failure == .unavailable)
        #expect(release(service, kept.offset).failure == .unavailable)
        #expect(try service.listing() == [kept])
        #expect(service.poolSnapshot.regionCount == 1)
        #expect(!service.isReady)
    }

    @Test func durableChangesAreAnsweredAndReloaded() throws {
        let directory = try TemporaryDirectory()
        do {
            let journal = try Journal(directory: directory.path, logger: testLogger())
            let service = RegionService(journal: journal, logger: testLogger())
            try service.load()
            #expect(service.isReady)
            for size: UInt64 in [1 << 20, 5_000_000, 1 << 20] {
                guard case .success(.created) = allocate(service, size) else {
                    Issue.record("allocating \(size) failed")
                    return
                }
            }
            #expect(release(service, 1 << 20).failure == nil)
            journal.close()
        }
        let journal = try Journal(directory: directory.path, logger: testLogger())
        defer { journal.close() }
        let service = RegionService(journal: journal, logger: testLogger())
        #expect(throws: RegionError.loading) { try service.listing() }
        try service.load()
        #expect(try service.listing().map(\.offset) == [0, 16 << 20])
    }
}

extension RegionService {
    /// `regions(label:)`, waited for.
    func listing(label: String? = nil) throws(RegionError) -> [SavedRegion] {
        try waitFor { regions(label: label, completion: $0) }.get()
    }
}

extension Result {
    /// The error, or nil on success.
    var failure: Failure? {
        if case .failure(let error) = self { error } else { nil }
    }
}

extension Journal {
    /// Holds the writer thread in a job (after running `first` there) until
    /// the returned function is called; returns once the writer is held, so
    /// records appended meanwhile wait for one batch after the release.
    func pauseWriter(_ first: @escaping @Sendable () -> Void = {}) -> @Sendable () -> Void {
        // (held, released)
        let gate = Locked((false, false))
        state.withLock { s in
            s.jobs.append {
                first()
                gate.withLock { $0.0 = true }
                gate.wakeWaiters()
                gate.withLock(waitingUntil: { $0.1 }) { _ in }
            }
        }
        state.wakeWaiters()
        gate.withLock(waitingUntil: { $0.0 }) { _ in }
        return {
            gate.withLock { $0.1 = true }
            gate.wakeWaiters()
        }
    }
}
