internal import Foundation
internal import Locking

/// The writer thread: it takes everything queued, writes it, fsyncs once,
/// then runs the batch's completions itself, in order, before it takes the
/// next batch.
extension Journal {
    /// What the writer took from the queue in one go.
    struct Batch {
        var segments: [Segment]
        var jobs: [@Sendable () -> Void]
        var stopping: Bool
    }

    /// Starts the writer thread; `load` calls it once the files are open.
    func startWriter() {
        let writer = Thread { [self] in
            // Foundation on Linux names the system thread only when the name
            // is set from the thread itself: here, so top, perf and tests see it.
            Thread.current.name = Self.writerThreadName
            runWriter()
            state.withLock { $0.writerStopped = true }
            state.wakeWaiters()
        }
        writer.start()
    }

    /// The writer thread's name, as `pthread_getname_np` shows it.
    public static let writerThreadName = "regiond-journal"

    /// The writer loop: take everything queued, write it, fsync once, run
    /// the completions; records queued meanwhile form the next batch.
    func runWriter() {
        while true {
            let batch = state.withLock(waitingUntil: \.writerHasWork) { s -> Batch in
                defer {
                    s.segments = []
                    s.jobs = []
                }
                return Batch(segments: s.segments, jobs: s.jobs, stopping: s.phase == .closing)
            }
            if !batch.segments.isEmpty { write(batch.segments) }
            for job in batch.jobs { job() }
            writePendingSnapshot()
            if batch.stopping {
                // No record can be appended any more: everything queued was
                // just written. Fail whatever still waits, run late jobs.
                let (jobs, waiters) = state.withLock { s in
                    s.phase = .closed
                    defer {
                        s.jobs = []
                        s.waiters = []
                    }
                    return (s.jobs, s.waiters)
                }
                for waiter in waiters.sorted(by: { $0.sequence > $1.sequence }) { waiter.completion(.failure(.notOpen)) }
                for job in jobs { job() }
                return
            }
        }
    }

    /// Writes and fsyncs a batch, segment by segment (a compaction point
    /// starts a new journal between two segments), then runs the
    /// completions: the durable ones in order; on failure, every other one,
    /// newest first (so undos run in reverse order of the changes).
    func write(_ segments: [Segment]) {
        var durableThrough: UInt64?
        var written: UInt64 = 0
        var fsyncTimes: [Duration] = []
        var failure: JournalError?
        for segment in segments {
            if !segment.bytes.isEmpty {
                guard let file = current else {
                    failure = .notOpen
                    break
                }
                // A file of an older version goes on in its own format.
                let (bytes, chain) = StateFiles.framedBatch(segment.bytes, count: segment.count, version: file.version, after: file.chain)
                if file.length + bytes.count > file.size { current?.size = preallocate(file, for: bytes.count) }
                do throws(JournalError) {
                    try system(Syscall.writeAll(file.descriptor, bytes, at: file.length, path: file.path))
                    let start = ContinuousClock.now
                    try system(Syscall.fdatasync(file.descriptor, path: file.path))
                    fsyncTimes.append(ContinuousClock.now - start)
                } catch {
                    failure = error
                    logger.error("journal write failed; the journal takes no records until recovered", metadata: ["error": "\(error)"])
                    do throws(JournalError) {
                        // Best effort: no half-written record stays behind the durable ones.
                        try system(Syscall.truncate(file.descriptor, length: file.length, path: file.path))
                        current?.size = file.length
                    } catch {
                        logger.error("could not cut the journal back to its durable length", metadata: ["error": "\(error)"])
                    }
                    break
                }
                current?.length += bytes.count
                current?.chain = chain
                if let size = current?.size, size < file.length + bytes.count { current?.size = file.length + bytes.count }
                written += UInt64(segment.count)
                durableThrough = segment.lastSequence
            }
            if let image = segment.compaction { startGeneration(image: image) }
        }

        let (succeeded, failed) = state.withLock { s in
            s.records += written
            s.fsyncs += UInt64(fsyncTimes.count)
            s.fsyncTime += fsyncTimes.reduce(.zero, +)
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
        // Right here, on the writer thread, before the next batch: a hop to
        // another thread would cost a wake-up per batch and let the answers
        // of one batch race the next. Safe because no one who waits for the
        // writer (close, recover) does so holding what a completion needs
        // (the pool's queue, an exchange's lock).
        for took in fsyncTimes { onFsync(took) }
        completionScope {
            for waiter in succeeded { waiter.completion(.success(())) }
            if let failure {
                for waiter in failed { waiter.completion(.failure(failure)) }
            }
        }
    }

    /// Grows `file` by whole chunks of zeros until `count` more bytes fit
    /// after its durable length; returns its size. Best effort: where the
    /// file system cannot preallocate, or has no room for a whole chunk, the
    /// write itself extends the file (and fails if there is no room for it).
    func preallocate(_ file: OpenFile, for count: Int) -> Int {
        let needed = file.length + count - file.size
        let grow = (needed + Self.preallocationChunk - 1) / Self.preallocationChunk * Self.preallocationChunk
        do throws(SystemError) {
            try Syscall.preallocate(file.descriptor, offset: file.size, length: grow, path: file.path)
            return file.size + grow
        } catch {
            logger.debug("could not preallocate the journal", metadata: ["error": "\(error)"])
            return file.size
        }
    }
}
