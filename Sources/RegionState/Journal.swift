internal import Dispatch
internal import Foundation
internal import Glibc
internal import Locking
public import Logging
internal import MemoryPool

/// The durable state of the pool: an append-only journal of checksummed
/// records, written by one thread with group commit, and compacted now and
/// then into a snapshot. See ``StateFiles`` for the files and their format.
///
/// The writer thread writes and fsyncs a batch, then runs its completions
/// (answers, undos, metrics) itself, in the order it decided, before it
/// takes the next batch. A completion never runs on the thread that
/// registered it: one whose outcome is already known when it is registered
/// runs on `completions`, a serial queue.
///
/// `@unchecked Sendable`: everything callers share lives in `state`, behind a
/// lock (`Locked`), which is also what the writer thread and `close` wait on. The open journal file (`current`) and the pending snapshot are
/// touched only by the writer thread — by `load` before it starts it, and by
/// `close` after it has stopped.
public final class Journal: @unchecked Sendable {
    /// Sees the duration of every batch fsync (for metrics); runs on the writer thread.
    let onFsync: @Sendable (Duration) -> Void
    /// Runs the completions of one batch (on the writer thread); the HTTP
    /// server passes one that resumes their connections together.
    let completionScope: @Sendable (() -> Void) -> Void
    /// The state directory.
    let directory: String
    /// How many records may be appended after a snapshot before `needsCompaction`.
    let compactAfter: Int
    /// Where warnings and failures go.
    let logger: Logger
    /// The open `DIR/lock`, flock'd while this journal lives.
    let lockDescriptor: Int32
    /// What callers and the writer thread share; whoever gives the writer
    /// work, or stops it, wakes the waiters.
    let state = Locked(State())
    /// Where completions run whose outcome was known when they were registered.
    let completions = DispatchQueue(label: "regiond.journal.completions")
    /// The journal file records are appended to; writer thread only.
    var current: OpenFile?
    /// A snapshot to write once the current batch is done; writer thread only.
    var pendingSnapshot: (generation: UInt64, image: RegionBook.Image)?

    /// A journal file open for appending.
    struct OpenFile {
        var descriptor: Int32
        var path: String
        var generation: UInt64
        /// Bytes in the file that are durable; the next batch is written here.
        var length: Int
        /// The file's size: `length` and the zeros preallocated after it.
        var size: Int
        /// Its format version: batches are framed from version 2 on.
        var version = StateFiles.journalVersion
        /// Where its next batch goes on from (version 4).
        var chain: StateFiles.BatchChain

        /// A journal file just made by ``StateFiles/createJournal(directory:generation:)``.
        init(created: (descriptor: Int32, path: String), generation: UInt64) {
            self.init(
                descriptor: created.descriptor, path: created.path, generation: generation,
                length: StateFiles.headerSize, size: StateFiles.headerSize, chain: StateFiles.BatchChain(generation: generation))
        }

        init(
            descriptor: Int32, path: String, generation: UInt64, length: Int, size: Int,
            version: UInt32 = StateFiles.journalVersion, chain: StateFiles.BatchChain
        ) {
            self.descriptor = descriptor
            self.path = path
            self.generation = generation
            self.length = length
            self.size = size
            self.version = version
            self.chain = chain
        }
    }

    /// How much a journal file grows by when a batch does not fit in what
    /// is preallocated: the file's size (and block map) then changes once
    /// per megabyte instead of with every batch, so a batch's `fdatasync`
    /// writes its data and nothing else.
    static let preallocationChunk = 1 << 20

    /// Records queued for the writer, up to an optional compaction point.
    struct Segment {
        /// The framed records, ready for one write().
        var bytes: [UInt8] = []
        /// Sequence number of the last record in `bytes` (or before it, when empty).
        var lastSequence: UInt64
        /// How many records `bytes` holds.
        var count = 0
        /// When set: after this segment, start a new generation whose snapshot holds this image.
        var compaction: RegionBook.Image?
    }

    /// What a completion learns: the record is durable, or why it never will be.
    public typealias Completion = @Sendable (Result<Void, JournalError>) -> Void

    /// A completion waiting for its record to become durable.
    struct Waiter {
        var sequence: UInt64
        var completion: Completion
    }

    /// Where the journal is in its life.
    enum Phase {
        case unloaded, open, closing, closed
    }

    /// Shared state; only touched under `state`'s lock.
    struct State {
        var phase = Phase.unloaded
        var nextSequence: UInt64 = 1
        var durableSequence: UInt64 = 0
        var segments: [Segment] = []
        var waiters: [Waiter] = []
        /// Work to run on the writer thread after the current batch (recovery).
        var jobs: [@Sendable () -> Void] = []
        /// Set when a write or fsync failed; cleared by `recover`.
        var failure: JournalError?
        /// Sequence numbers that were never made durable, and why.
        var failed: [(sequences: ClosedRange<UInt64>, error: JournalError)] = []
        var appendedSinceSnapshot = 0
        /// Set by the writer thread as its last act; `close` waits for it.
        var writerStopped = false
        var records: UInt64 = 0
        var fsyncs: UInt64 = 0
        var fsyncTime = Duration.zero

        /// Whether the writer thread has something to do.
        var writerHasWork: Bool {
            !segments.isEmpty || !jobs.isEmpty || phase == .closing
        }
    }

    /// Opens (creating, mode 0700, if missing) the state directory and takes an
    /// exclusive non-blocking flock on `DIR/lock`, writing this process's pid there.
    public init(
        directory: String, compactAfter: Int = 65_536, logger: Logger,
        completionScope: @escaping @Sendable (() -> Void) -> Void = { $0() },
        onFsync: @escaping @Sendable (Duration) -> Void = { _ in }
    ) throws(JournalError) {
        self.onFsync = onFsync
        self.completionScope = completionScope
        self.directory = directory
        self.compactAfter = compactAfter
        self.logger = logger
        try system(Syscall.makeDirectory(directory, mode: 0o700))
        let lockPath = directory + "/" + StateFiles.lockName
        let descriptor = try system(Syscall.open(lockPath, O_RDWR | O_CREAT))
        do throws(JournalError) {
            // No retry: a journal gives its lock back with an explicit unlock
            // (see `releaseLock`), so a child forked meanwhile by another
            // thread, holding a copy of the descriptor until it execs, does
            // not keep the directory locked.
            guard try system(Syscall.tryLockExclusive(descriptor, path: lockPath)) else {
                let holder = (try? Syscall.readAll(lockPath)).flatMap {
                    Int32(String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
                }
                throw JournalError.locked(directory: directory, pid: holder)
            }
            try system(Syscall.truncate(descriptor, length: 0, path: lockPath))
            try system(Syscall.writeAll(descriptor, Array("\(getpid())\n".utf8), path: lockPath))
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
            releaseLock()
        }
    }

    /// Whether the journal can take records (false after a write or fsync
    /// failure until `recover` succeeds, and when not open).
    public var isHealthy: Bool {
        state.withLock { $0.phase == .open && $0.failure == nil }
    }

    /// Counters for metrics and benchmarks: records written, fsyncs of record
    /// batches done, and the time those fsyncs took.
    public var statistics: (records: UInt64, fsyncs: UInt64, fsyncTime: Duration) {
        state.withLock { ($0.records, $0.fsyncs, $0.fsyncTime) }
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
            releaseLock()
        case .open:
            state.wakeWaiters()
            state.withLock(waitingUntil: { $0.writerStopped }) { _ in }
            // Every completion has run when close returns: the writer's on its
            // own thread before it stopped, the others on `completions`.
            completions.sync {}
            if let current { _ = Glibc.close(current.descriptor) }
            current = nil
            releaseLock()
        case .closing, .closed:
            break
        }
    }

    /// Unlocks `DIR/lock` and closes it. The explicit unlock matters: the
    /// flock belongs to the open file, which a child forked by another
    /// thread shares until it execs (`O_CLOEXEC` only closes it then); closing
    /// our descriptor alone would leave the directory locked that long.
    private func releaseLock() {
        Syscall.unlock(lockDescriptor)
        _ = Glibc.close(lockDescriptor)
    }
}
