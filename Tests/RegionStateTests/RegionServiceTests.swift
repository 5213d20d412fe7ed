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

    @Test func completionsNeverRunOnTheWriterThread() throws {
        let directory = try TemporaryDirectory()
        let journal = try Journal(directory: directory.path, logger: testLogger())
        _ = try journal.load(now: LeaseClock.system.now())
        defer { journal.close() }
        let thread = waitFor { (done: @escaping @Sendable (String) -> Void) in
            let region = SavedRegion(id: 1, offset: 0, memoryClass: MemoryClass(rawValue: 0))
            _ = try? journal.append(.allocate(RegionEntry(region, references: [Reference(id: 1)]))) { _ in
                done(Thread.current.name ?? "")
            }
        }
        #expect(thread != Journal.writerThreadName)
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
