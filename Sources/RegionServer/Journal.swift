internal import Dispatch
internal import Foundation
internal import Glibc
public import Logging
public import MemoryPool

/// The durable state of the pool: an append-only journal of checksummed
/// records, written by one thread with group commit, and compacted now and
/// then into a snapshot. See ``StateFiles`` for the files and their format.
///
/// `@unchecked Sendable`: everything callers share lives in `state`, behind a
/// lock (`Locked`). The open journal file (`current`) and the pending snapshot are
/// touched only by the writer thread — by `load` before it starts it, and by
/// `close` after it has stopped.
public final class Journal: @unchecked Sendable {
    /// Sees the duration of every batch fsync (for metrics); runs on the writer thread.
    private let onFsync: @Sendable (Duration) -> Void
    /// The state directory.
    private let directory: String
    /// How many records may be appended after a snapshot before `needsCompaction`.
    private let compactAfter: Int
    /// Where warnings and failures go.
    private let logger: Logger
    /// The open `DIR/lock`, flock'd while this journal lives.
    private let lockDescriptor: Int32
    /// What callers and the writer thread share.
    private let state = Locked(State())
    /// Wakes the writer thread when it sleeps and there is work.
    private let wake = DispatchSemaphore(value: 0)
    /// Signalled by the writer thread when it has stopped.
    private let writerStopped = DispatchSemaphore(value: 0)
    /// The journal file records are appended to; writer thread only.
    private var current: OpenFile?
    /// A snapshot to write once the current batch is done; writer thread only.
    private var pendingSnapshot: (generation: UInt64, regions: [SavedRegion])?

    /// A journal file open for appending.
    private struct OpenFile {
        var descriptor: Int32
        var path: String
        var generation: UInt64
        /// Bytes in the file that are durable.
        var length: Int
    }

    /// Records queued for the writer, up to an optional compaction point.
    private struct Segment {
        /// The framed records, ready for one write().
        var bytes: [UInt8] = []
        /// Sequence number of the last record in `bytes` (or before it, when empty).
        var lastSequence: UInt64
        /// How many records `bytes` holds.
        var count = 0
        /// When set: after this segment, start a new generation whose snapshot holds these regions.
        var compaction: [SavedRegion]?
    }

    /// A completion waiting for its record to become durable.
    private struct Waiter {
        var sequence: UInt64
        var completion: @Sendable (Result<Void, JournalError>) -> Void
    }

    /// Where the journal is in its life.
    private enum Phase {
        case unloaded, open, closing, closed
    }

    /// Shared state; only touched under `state`'s lock.
    private struct State {
        var phase = Phase.unloaded
        var nextSequence: UInt64 = 1
        var durableSequence: UInt64 = 0
        var segments: [Segment] = []
        var waiters: [Waiter] = []
        /// Completions whose outcome is known, for the writer thread to run.
        var ready: [(completion: @Sendable (Result<Void, JournalError>) -> Void, result: Result<Void, JournalError>)] = []
        /// Work to run on the writer thread after the current batch (recovery).
        var jobs: [@Sendable () -> Void] = []
        /// Set when a write or fsync failed; cleared by `recover`.
        var failure: JournalError?
        /// Sequence numbers that were never made durable, and why.
        var failed: [(sequences: ClosedRange<UInt64>, error: JournalError)] = []
        var appendedSinceSnapshot = 0
        var writerSleeping = false
        var records: UInt64 = 0
        var fsyncs: UInt64 = 0
        var fsyncSeconds = 0.0

        /// Marks the writer awake; true when the caller must signal `wake`.
        mutating func wakeWriter() -> Bool {
            defer { writerSleeping = false }
            return writerSleeping
        }
    }

    /// Opens (creating, mode 0700, if missing) the state directory and takes an
    /// exclusive non-blocking flock on `DIR/lock`, writing this process's pid there.
    public init(
        directory: String, compactAfter: Int = 65_536, logger: Logger,
        onFsync: @escaping @Sendable (Duration) -> Void = { _ in }
    ) throws(JournalError) {
        self.onFsync = onFsync
        self.directory = directory
        self.compactAfter = compactAfter
        self.logger = logger
        try Syscall.makeDirectory(directory, mode: 0o700)
        let lockPath = directory + "/" + StateFiles.lockName
        let descriptor = try Syscall.open(lockPath, O_RDWR | O_CREAT)
        do throws(JournalError) {
            // Retry for a moment: a child another thread is forking holds a
            // copy of a just-closed lock descriptor until it execs.
            var locked = try Syscall.tryLockExclusive(descriptor, path: lockPath)
            for _ in 0..<20 where !locked {
                usleep(50_000)
                locked = try Syscall.tryLockExclusive(descriptor, path: lockPath)
            }
            guard locked else {
                let holder = (try? Syscall.readAll(lockPath)).flatMap {
                    Int32(String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
                }
                throw JournalError.locked(directory: directory, pid: holder)
            }
            try Syscall.truncate(descriptor, length: 0, path: lockPath)
            try Syscall.writeAll(descriptor, Array("\(getpid())\n".utf8), path: lockPath)
        } catch {
            _ = Glibc.close(descriptor)
            throw error
        }
        lockDescriptor = descriptor
    }

    deinit {
        // close() was not called: at least give the lock back. The writer thread
        // holds a reference, so an open journal never gets here.
        if state.withLock({ $0.phase }) == .unloaded {
            _ = Glibc.close(lockDescriptor)
        }
    }

    // MARK: Loading

    /// Loads the newest complete snapshot and replays the journals after it;
    /// returns the pool and the live regions keyed by offset. A torn last
    /// record is dropped with a warning and truncated away; any other damage
    /// throws, naming the file and the record. Afterwards the journal takes records.
    public func load() throws(JournalError) -> (pool: PoolAllocator, regions: [UInt64: SavedRegion]) {
        guard state.withLock({ $0.phase }) == .unloaded else { throw .notOpen }
        var names = try Syscall.listDirectory(directory)
        var removedFiles = false
        for name in names where name.hasSuffix(StateFiles.temporarySuffix) {
            logger.notice("removing an unfinished snapshot", metadata: ["path": "\(path(name))"])
            try Syscall.unlink(path(name))
            removedFiles = true
        }
        names.removeAll { $0.hasSuffix(StateFiles.temporarySuffix) }
        let snapshots = names.compactMap { StateFiles.generation(ofFile: $0, prefix: StateFiles.snapshotPrefix) }
            .sorted(by: >)
        let journals = names.compactMap { StateFiles.generation(ofFile: $0, prefix: StateFiles.journalPrefix) }
            .sorted()

        var base: (generation: UInt64, regions: [SavedRegion])?
        for generation in snapshots {
            let snapshotPath = path(StateFiles.snapshotName(generation))
            if let regions = try StateFiles.readSnapshot(path: snapshotPath, generation: generation) {
                base = (generation, regions)
                break
            }
            logger.warning("skipping an incomplete snapshot", metadata: ["path": "\(snapshotPath)"])
        }
        let firstGeneration = base?.generation ?? 0
        let replayed = journals.filter { $0 >= firstGeneration }
        for (index, generation) in replayed.enumerated() where generation != firstGeneration + UInt64(index) {
            let after = base.map { StateFiles.snapshotName($0.generation) } ?? "an empty pool (no snapshot)"
            throw .corrupt(
                path: path(StateFiles.journalName(firstGeneration + UInt64(index))), record: nil,
                reason: "missing: the journals after \(after) must follow each other, but the next one is \(StateFiles.journalName(generation))"
            )
        }

        var files: [(path: String, contents: StateFiles.JournalFile)] = []
        for generation in replayed {
            let journalPath = path(StateFiles.journalName(generation))
            let bytes = try Syscall.readAll(journalPath)
            files.append((journalPath, try StateFiles.parseJournal(bytes, path: journalPath, generation: generation)))
        }
        // A torn tail is only a torn tail when no later journal holds records.
        for (index, file) in files.enumerated() {
            guard let tear = file.contents.tear else { continue }
            if files[(index + 1)...].contains(where: { !$0.contents.records.isEmpty }) {
                throw .corrupt(path: file.path, record: tear.record, reason: tear.reason + ", and a later journal holds records")
            }
        }

        var pool = PoolAllocator()
        var regions: [UInt64: SavedRegion] = [:]
        if let base {
            let snapshotPath = path(StateFiles.snapshotName(base.generation))
            regions.reserveCapacity(base.regions.count)
            for (index, region) in base.regions.enumerated() {
                do throws(RestoreError) {
                    try pool.restore(offset: region.offset, memoryClass: region.memoryClass)
                } catch {
                    throw .corrupt(path: snapshotPath, record: index + 1, reason: "cannot restore the region: \(error)")
                }
                regions[region.offset] = region
            }
        }
        var replayedRecords = 0
        for file in files {
            for (index, record) in file.contents.records.enumerated() {
                try Self.apply(record, to: &pool, &regions, path: file.path, number: index + 1)
            }
            replayedRecords += file.contents.records.count
        }

        for file in files {
            if let tear = file.contents.tear { try cutTornTail(file.path, file.contents, tear) }
        }
        let generation = replayed.last ?? firstGeneration
        if let last = files.last {
            let descriptor = try Syscall.open(last.path, O_WRONLY | O_APPEND)
            current = OpenFile(
                descriptor: descriptor, path: last.path, generation: generation,
                length: max(last.contents.validLength, StateFiles.headerSize)
            )
        } else {
            let created = try StateFiles.createJournal(directory: directory, generation: generation)
            current = OpenFile(descriptor: created.descriptor, path: created.path, generation: generation, length: StateFiles.headerSize)
        }
        if base != nil {
            removedFiles = try removeFiles(olderThan: firstGeneration, in: names) || removedFiles
        }
        if removedFiles { try Syscall.fsyncDirectory(directory) }

        state.withLock {
            $0.phase = .open
            $0.appendedSinceSnapshot = replayedRecords
        }
        let writer = Thread { [self] in
            runWriter()
            writerStopped.signal()
        }
        writer.name = "regiond-journal"
        writer.start()
        return (pool, regions)
    }

    /// Applies one replayed record, throwing a corruption error that names the file and record.
    private static func apply(
        _ record: JournalRecord, to pool: inout PoolAllocator, _ regions: inout [UInt64: SavedRegion],
        path: String, number: Int
    ) throws(JournalError) {
        switch record {
        case .allocate(let region):
            do throws(RestoreError) {
                try pool.restore(offset: region.offset, memoryClass: region.memoryClass)
            } catch {
                throw .corrupt(path: path, record: number, reason: "cannot replay the allocate: \(error)")
            }
            regions[region.offset] = region
        case .release(let offset):
            guard regions.removeValue(forKey: offset) != nil, (try? pool.release(offset: offset)) != nil else {
                throw .corrupt(path: path, record: number, reason: "releases offset \(offset), where nothing is allocated")
            }
        }
    }

    /// Drops a torn tail from a journal file (or rewrites a header cut short), durably.
    private func cutTornTail(_ path: String, _ contents: StateFiles.JournalFile, _ tear: StateFiles.Tear) throws(JournalError) {
        logger.warning(
            "dropping a torn record at the end of the journal",
            metadata: [
                "path": "\(path)", "record": "\(tear.record.map(String.init) ?? "header")",
                "reason": "\(tear.reason)", "keptBytes": "\(contents.validLength)",
            ]
        )
        let descriptor = try Syscall.open(path, O_WRONLY)
        defer { _ = Glibc.close(descriptor) }
        try Syscall.truncate(descriptor, length: contents.validLength, path: path)
        if contents.validLength < StateFiles.headerSize {
            let generation = StateFiles.generation(ofFile: String(path.split(separator: "/").last ?? ""), prefix: StateFiles.journalPrefix) ?? 0
            try Syscall.writeAll(descriptor, StateFiles.header(magic: StateFiles.journalMagic, generation: generation), path: path)
        }
        try Syscall.fsync(descriptor, path: path)
    }

    /// Unlinks snapshots and journals of generations before `generation`;
    /// true when it removed any (the caller fsyncs the directory).
    private func removeFiles(olderThan generation: UInt64, in names: [String]) throws(JournalError) -> Bool {
        var removed = false
        for name in names {
            let old = StateFiles.generation(ofFile: name, prefix: StateFiles.snapshotPrefix)
                ?? StateFiles.generation(ofFile: name, prefix: StateFiles.journalPrefix)
            if let old, old < generation {
                try Syscall.unlink(path(name))
                removed = true
            }
        }
        return removed
    }

    /// A file in the state directory.
    private func path(_ name: String) -> String {
        directory + "/" + name
    }

    // MARK: Appending

    /// Queues a record; returns its sequence number. Called on the pool's
    /// serial queue, in the order changes are applied. Throws (without
    /// queueing) when the journal has failed or is not open.
    public func append(_ record: JournalRecord) throws(JournalError) -> UInt64 {
        guard record.isEncodable else { throw .recordTooLarge }
        var bytes: [UInt8] = []
        record.appendFramed(to: &bytes)
        let (sequence, signal) = try state.withLock { (s) throws(JournalError) -> (UInt64, Bool) in
            guard s.phase == .open else { throw .notOpen }
            if let failure = s.failure { throw .failed(failure) }
            let sequence = s.nextSequence
            s.nextSequence += 1
            s.appendedSinceSnapshot += 1
            if let last = s.segments.indices.last, s.segments[last].compaction == nil {
                s.segments[last].bytes.append(contentsOf: bytes)
                s.segments[last].lastSequence = sequence
                s.segments[last].count += 1
            } else {
                s.segments.append(Segment(bytes: bytes, lastSequence: sequence, count: 1))
            }
            return (sequence, s.wakeWriter())
        }
        if signal { wake.signal() }
        return sequence
    }

    /// Runs `completion` on the journal's writer thread once every record up
    /// to `sequence` is written and fsync'd, or with the error when writing
    /// failed. (After `close`, it runs at once on the caller's thread.)
    public func whenDurable(_ sequence: UInt64, _ completion: @escaping @Sendable (Result<Void, JournalError>) -> Void) {
        enum Action {
            case none, signal, runNow(Result<Void, JournalError>)
        }
        let action = state.withLock { s -> Action in
            let known: Result<Void, JournalError>?
            if let failed = s.failed.first(where: { $0.sequences.contains(sequence) }) {
                known = .failure(failed.error)
            } else if sequence <= s.durableSequence {
                known = .success(())
            } else if s.phase == .unloaded || s.phase == .closed {
                known = .failure(.notOpen)
            } else {
                known = nil
            }
            guard let known else {
                s.waiters.append(Waiter(sequence: sequence, completion: completion))
                return .none
            }
            guard s.phase == .open || s.phase == .closing else { return .runNow(known) }
            s.ready.append((completion, known))
            return s.wakeWriter() ? .signal : .none
        }
        switch action {
        case .none: break
        case .signal: wake.signal()
        case .runNow(let result): completion(result)
        }
    }

    /// True when more than `compactAfter` records were appended since the last snapshot.
    public var needsCompaction: Bool {
        state.withLock { $0.appendedSinceSnapshot > compactAfter }
    }

    /// Starts a new journal generation after the last appended record and has
    /// the writer thread write a snapshot of `liveRegions` (the live state right
    /// after that record), then delete the older journal and snapshot. Does not
    /// block: the writer thread opens the new journal when it reaches this point.
    public func compact(liveRegions: [SavedRegion]) {
        let signal = state.withLock { s -> Bool in
            guard s.phase == .open, s.failure == nil else { return false }
            if let last = s.segments.indices.last, s.segments[last].compaction == nil {
                s.segments[last].compaction = liveRegions
            } else {
                s.segments.append(Segment(lastSequence: s.nextSequence - 1, compaction: liveRegions))
            }
            s.appendedSinceSnapshot = 0
            return s.wakeWriter()
        }
        if signal { wake.signal() }
    }

    /// Whether the journal can take records (false after a write or fsync
    /// failure until `recover` succeeds, and when not open).
    public var isHealthy: Bool {
        state.withLock { $0.phase == .open && $0.failure == nil }
    }

    /// After a failure: writes a fresh snapshot of `liveRegions` as a new
    /// generation and opens a new, empty journal; throws if the disk still
    /// fails. Does nothing while the journal is healthy.
    public func recover(liveRegions: [SavedRegion]) throws(JournalError) {
        let outcome = RecoveryOutcome()
        let signal = try state.withLock { (s) throws(JournalError) -> Bool in
            guard s.phase == .open else { throw .notOpen }
            guard s.failure != nil else { return false }
            s.jobs.append { [self] in
                do throws(JournalError) {
                    try startOver(liveRegions: liveRegions)
                } catch {
                    outcome.result = .failure(error)
                }
                outcome.done.signal()
            }
            return true
        }
        guard signal else { return }
        if state.withLock({ $0.wakeWriter() }) { wake.signal() }
        outcome.done.wait()
        try outcome.result.get()
    }

    /// Counters for metrics and benchmarks: records written, fsyncs of record
    /// batches done, and the seconds those fsyncs took.
    public var statistics: (records: UInt64, fsyncs: UInt64, fsyncSeconds: Double) {
        state.withLock { ($0.records, $0.fsyncs, $0.fsyncSeconds) }
    }

    /// Stops the writer thread after it has written and fsync'd what is
    /// queued, closes the files and releases the lock.
    public func close() {
        let phase = state.withLock { s -> Phase in
            let phase = s.phase
            switch phase {
            case .unloaded: s.phase = .closed
            case .open: s.phase = .closing
            case .closing, .closed: break
            }
            return phase
        }
        switch phase {
        case .unloaded:
            // A load that failed late may have opened the journal file already.
            if let current { _ = Glibc.close(current.descriptor) }
            current = nil
            _ = Glibc.close(lockDescriptor)
        case .open:
            wake.signal()
            writerStopped.wait()
            if let current { _ = Glibc.close(current.descriptor) }
            current = nil
            // Closing the descriptor releases the flock.
            _ = Glibc.close(lockDescriptor)
        case .closing, .closed:
            break
        }
    }

    // MARK: The writer thread

    /// What the writer took from the queue in one go.
    private struct Batch {
        var segments: [Segment]
        var ready: [(completion: @Sendable (Result<Void, JournalError>) -> Void, result: Result<Void, JournalError>)]
        var jobs: [@Sendable () -> Void]
        var stopping: Bool
    }

    /// The writer loop: take everything queued, write it, fsync once, run the
    /// completions; records queued meanwhile form the next batch.
    private func runWriter() {
        while true {
            let batch = state.withLock { s -> Batch? in
                let stopping = s.phase == .closing
                if s.segments.isEmpty && s.ready.isEmpty && s.jobs.isEmpty && !stopping {
                    s.writerSleeping = true
                    return nil
                }
                defer {
                    s.segments = []
                    s.ready = []
                    s.jobs = []
                }
                return Batch(segments: s.segments, ready: s.ready, jobs: s.jobs, stopping: stopping)
            }
            guard let batch else {
                wake.wait()
                continue
            }
            for (completion, result) in batch.ready { completion(result) }
            if !batch.segments.isEmpty { write(batch.segments) }
            for job in batch.jobs { job() }
            writePendingSnapshot()
            if batch.stopping {
                // No record can be appended any more; hand over what is left
                // and let whenDurable answer on its callers' threads from now on.
                let late = state.withLock { s in
                    s.phase = .closed
                    defer {
                        s.ready = []
                        s.jobs = []
                    }
                    return (s.ready, s.jobs)
                }
                for (completion, result) in late.0 { completion(result) }
                for job in late.1 { job() }
                return
            }
        }
    }

    /// Writes and fsyncs a batch, segment by segment (a compaction point
    /// starts a new journal between two segments), then runs the completions:
    /// the durable ones in order; on failure, every other one, newest first.
    private func write(_ segments: [Segment]) {
        var durableThrough: UInt64?
        var written: UInt64 = 0
        var fsyncs: UInt64 = 0
        var fsyncSeconds = 0.0
        var failure: JournalError?
        for segment in segments {
            if !segment.bytes.isEmpty {
                guard let file = current else {
                    failure = .notOpen
                    break
                }
                do throws(JournalError) {
                    try Syscall.writeAll(file.descriptor, segment.bytes, path: file.path)
                    let start = ContinuousClock.now
                    try Syscall.fsync(file.descriptor, path: file.path)
                    let took = ContinuousClock.now - start
                    onFsync(took)
                    fsyncSeconds += took.seconds
                    fsyncs += 1
                } catch {
                    failure = error
                    logger.error("journal write failed; the journal takes no records until recovered", metadata: ["error": "\(error)"])
                    do throws(JournalError) {
                        // Best effort: no half-written record stays behind the durable ones.
                        try Syscall.truncate(file.descriptor, length: file.length, path: file.path)
                    } catch {
                        logger.error("could not cut the journal back to its durable length", metadata: ["error": "\(error)"])
                    }
                    break
                }
                current?.length += segment.bytes.count
                written += UInt64(segment.count)
                durableThrough = segment.lastSequence
            }
            if let regions = segment.compaction { startGeneration(liveRegions: regions) }
        }

        let (succeeded, failed) = state.withLock { s in
            s.records += written
            s.fsyncs += fsyncs
            s.fsyncSeconds += fsyncSeconds
            if let durableThrough { s.durableSequence = durableThrough }
            if let failure {
                s.failure = failure
                // Records queued after this batch were never written either.
                s.segments = []
                let lastAppended = s.nextSequence - 1
                if lastAppended > s.durableSequence {
                    s.failed.append(((s.durableSequence + 1)...lastAppended, failure))
                }
            }
            let durable = s.durableSequence
            let succeeded = s.waiters.filter { $0.sequence <= durable }.sorted { $0.sequence < $1.sequence }
            let failed = failure == nil ? [] : s.waiters.filter { $0.sequence > durable }.sorted { $0.sequence > $1.sequence }
            s.waiters.removeAll { $0.sequence <= durable || failure != nil }
            return (succeeded, failed)
        }
        for waiter in succeeded { waiter.completion(.success(())) }
        if let failure {
            for waiter in failed { waiter.completion(.failure(failure)) }
        }
    }

    /// Switches appends to a new journal generation and schedules its
    /// snapshot. When the new journal cannot be made, appends stay in the
    /// current one and compaction waits for the next try.
    private func startGeneration(liveRegions: [SavedRegion]) {
        guard let old = current else { return }
        let generation = old.generation + 1
        do throws(JournalError) {
            let created = try StateFiles.createJournal(directory: directory, generation: generation)
            current = OpenFile(descriptor: created.descriptor, path: created.path, generation: generation, length: StateFiles.headerSize)
            _ = Glibc.close(old.descriptor)
            pendingSnapshot = (generation, liveRegions)
        } catch {
            logger.error("could not start a new journal; compaction is postponed", metadata: ["error": "\(error)"])
            try? Syscall.unlink(path(StateFiles.journalName(generation)))
        }
    }

    /// Writes the scheduled snapshot, then deletes the generations before it.
    private func writePendingSnapshot() {
        guard let (generation, regions) = pendingSnapshot else { return }
        pendingSnapshot = nil
        do throws(JournalError) {
            try StateFiles.writeSnapshot(directory: directory, generation: generation, regions: regions)
            if try removeFiles(olderThan: generation, in: Syscall.listDirectory(directory)) {
                try Syscall.fsyncDirectory(directory)
            }
            logger.debug("wrote a snapshot", metadata: ["generation": "\(generation)", "regions": "\(regions.count)"])
        } catch {
            logger.error("could not write a snapshot; the journals it would replace stay", metadata: ["error": "\(error)"])
        }
    }

    /// Recovery, on the writer thread: a snapshot of `liveRegions` and an
    /// empty journal as a new generation; then the journal is healthy again.
    private func startOver(liveRegions: [SavedRegion]) throws(JournalError) {
        guard let old = current else { throw .notOpen }
        let generation = old.generation + 1
        try StateFiles.writeSnapshot(directory: directory, generation: generation, regions: liveRegions)
        let created = try StateFiles.createJournal(directory: directory, generation: generation)
        current = OpenFile(descriptor: created.descriptor, path: created.path, generation: generation, length: StateFiles.headerSize)
        _ = Glibc.close(old.descriptor)
        pendingSnapshot = nil
        state.withLock { s in
            s.failure = nil
            s.durableSequence = s.nextSequence - 1
            s.appendedSinceSnapshot = 0
        }
        logger.notice("journal recovered", metadata: ["generation": "\(generation)", "regions": "\(liveRegions.count)"])
        do throws(JournalError) {
            if try removeFiles(olderThan: generation, in: Syscall.listDirectory(directory)) {
                try Syscall.fsyncDirectory(directory)
            }
        } catch {
            logger.warning("could not delete the journals before the recovery", metadata: ["error": "\(error)"])
        }
    }
}

/// The result of a recovery run on the writer thread. `@unchecked Sendable`:
/// the writer sets `result` before signalling `done`; the caller reads it after waiting.
private final class RecoveryOutcome: @unchecked Sendable {
    var result: Result<Void, JournalError> = .success(())
    let done = DispatchSemaphore(value: 0)
}

extension Duration {
    /// The duration in seconds.
    fileprivate var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
