/// Appending records and learning when they are durable (group commit: the
/// writer thread takes everything queued, writes it and fsyncs once).
extension Journal {
    /// Queues a record and registers `completion` for the moment it is
    /// durable (or known never to be), in one step, so completions run in the
    /// order the records were appended. Called on the pool's serial queue, in
    /// the order changes are applied; returns the record's sequence number.
    /// Throws (queueing nothing, never calling `completion`) when the journal
    /// has failed or is not open.
    @discardableResult
    public func append(_ record: JournalRecord, completion: @escaping Completion) throws(JournalError) -> UInt64 {
        try append([record], completion: completion)
    }

    /// Queues records as one group: they go into the same write (and batch
    /// frame), so after a crash either all of them are there or none.
    /// `completion` learns when the last one is durable; returns its sequence number.
    @discardableResult
    public func append(_ records: [JournalRecord], completion: @escaping Completion) throws(JournalError) -> UInt64 {
        guard records.allSatisfy(\.isEncodable) else { throw .recordTooLarge }
        var bytes: [UInt8] = []
        for record in records { record.appendFramed(to: &bytes) }
        let count = UInt64(records.count)
        let (sequence, wake) = try state.withLock { (s) throws(JournalError) -> (UInt64, Bool) in
            guard s.phase == .open else { throw .notOpen }
            let idle = !s.writerHasWork
            if let failure = s.failure { throw .failed(failure) }
            let sequence = s.nextSequence + count - 1
            s.nextSequence += count
            s.appendedSinceSnapshot += records.count
            if let last = s.segments.indices.last, s.segments[last].compaction == nil {
                s.segments[last].bytes.append(contentsOf: bytes)
                s.segments[last].lastSequence = sequence
                s.segments[last].count += records.count
            } else {
                s.segments.append(Segment(bytes: bytes, lastSequence: sequence, count: records.count))
            }
            s.waiters.append(Waiter(sequence: sequence, completion: completion))
            return (sequence, idle)
        }
        // Only the first record of a batch wakes the writer: while it works, it takes the rest with it.
        if wake { state.wakeWaiters() }
        return sequence
    }

    /// Runs `completion` once every record up to `sequence` is written and
    /// fsync'd (on the writer thread), or with the error when writing failed.
    /// Never runs it on the calling thread (a known outcome goes to the
    /// completion queue), so a caller may hold a lock or be inside a serial
    /// queue the completion needs.
    public func whenDurable(_ sequence: UInt64, _ completion: @escaping Completion) {
        let known: Result<Void, JournalError>? = state.withLock { s in
            if let failed = s.failed.first(where: { $0.sequences.contains(sequence) }) {
                return .failure(failed.error)
            } else if sequence <= s.durableSequence {
                return .success(())
            } else if s.phase != .open && s.phase != .closing {
                return .failure(.notOpen)
            }
            s.waiters.append(Waiter(sequence: sequence, completion: completion))
            return nil
        }
        if let known {
            completions.async { completion(known) }
        }
    }

    /// True when more than `compactAfter` records were appended since the last snapshot.
    public var needsCompaction: Bool {
        state.withLock { $0.appendedSinceSnapshot > compactAfter }
    }

    /// Starts a new journal generation after the last appended record and has
    /// the writer thread write a snapshot of `image` (the live state right
    /// after that record), then delete the older journal and snapshot. Does not
    /// block: the writer thread opens the new journal when it reaches this point.
    public func compact(image: RegionBook.Image) {
        let wake = state.withLock { s -> Bool in
            guard s.phase == .open, s.failure == nil else { return false }
            let idle = !s.writerHasWork
            if let last = s.segments.indices.last, s.segments[last].compaction == nil {
                s.segments[last].compaction = image
            } else {
                s.segments.append(Segment(lastSequence: s.nextSequence - 1, compaction: image))
            }
            s.appendedSinceSnapshot = 0
            return idle
        }
        if wake { state.wakeWaiters() }
    }
}
