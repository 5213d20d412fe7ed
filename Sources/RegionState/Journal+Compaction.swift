internal import Glibc
internal import Locking

/// Compaction (a snapshot of the live regions starts a new generation and
/// replaces the older files) and recovery after a failed write.
extension Journal {
    /// Switches appends to a new journal generation and schedules its
    /// snapshot. When the new journal cannot be made, appends stay in the
    /// current one and compaction waits for the next try.
    func startGeneration(image: RegionBook.Image) {
        guard let old = current else { return }
        let generation = old.generation + 1
        do throws(JournalError) {
            let created = try StateFiles.createJournal(directory: directory, generation: generation)
            current = OpenFile(created: created, generation: generation)
            _ = Glibc.close(old.descriptor)
            pendingSnapshot = (generation, image)
        } catch {
            logger.error("could not start a new journal; compaction is postponed", metadata: ["error": "\(error)"])
            try? Syscall.unlink(path(StateFiles.journalName(generation)))
        }
    }

    /// Writes the scheduled snapshot, then deletes the generations before it.
    func writePendingSnapshot() {
        guard let (generation, image) = pendingSnapshot else { return }
        pendingSnapshot = nil
        do throws(JournalError) {
            try StateFiles.writeSnapshot(directory: directory, generation: generation, image: image)
            if try removeFiles(olderThan: generation, in: system(Syscall.listDirectory(directory))) {
                try system(Syscall.fsyncDirectory(directory))
            }
            logger.debug("wrote a snapshot", metadata: ["generation": "\(generation)", "regions": "\(image.entries.count)"])
        } catch {
            logger.error("could not write a snapshot; the journals it would replace stay", metadata: ["error": "\(error)"])
        }
    }

    /// Recovery, on the writer thread: a snapshot of `image` and an
    /// empty journal as a new generation; then the journal is healthy again.
    func startOver(image: RegionBook.Image) throws(JournalError) {
        guard let old = current else { throw .notOpen }
        let generation = old.generation + 1
        try StateFiles.writeSnapshot(directory: directory, generation: generation, image: image)
        let created = try StateFiles.createJournal(directory: directory, generation: generation)
        current = OpenFile(created: created, generation: generation)
        _ = Glibc.close(old.descriptor)
        pendingSnapshot = nil
        state.withLock { s in
            s.failure = nil
            s.durableSequence = s.nextSequence - 1
            s.appendedSinceSnapshot = 0
        }
        logger.notice("journal recovered", metadata: ["generation": "\(generation)", "regions": "\(image.entries.count)"])
        do throws(JournalError) {
            if try removeFiles(olderThan: generation, in: system(Syscall.listDirectory(directory))) {
                try system(Syscall.fsyncDirectory(directory))
            }
        } catch {
            logger.warning("could not delete the journals before the recovery", metadata: ["error": "\(error)"])
        }
    }

    /// After a failure: writes a fresh snapshot of `image` as a new
    /// generation and opens a new, empty journal; throws if the disk still
    /// fails. Does nothing while the journal is healthy.
    public func recover(image: RegionBook.Image) throws(JournalError) {
        // Set by the writer thread when the recovery has run.
        let outcome = Locked<Result<Void, JournalError>?>(nil)
        let queued = try state.withLock { (s) throws(JournalError) -> Bool in
            guard s.phase == .open else { throw .notOpen }
            guard s.failure != nil else { return false }
            s.jobs.append { [self] in
                do throws(JournalError) {
                    try startOver(image: image)
                    outcome.withLock { $0 = .success(()) }
                } catch {
                    outcome.withLock { $0 = .failure(error) }
                }
                outcome.wakeWaiters()
            }
            return true
        }
        guard queued else { return }
        state.wakeWaiters()
        try outcome.withLock(waitingUntil: { $0 != nil }) { $0! }.get()
    }
}
