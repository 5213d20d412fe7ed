internal import Foundation
internal import Glibc

/// Loading a state directory: the newest complete snapshot, then every
/// journal after it replayed through the allocator's `restore`.
extension Journal {
    /// Loads the newest complete snapshot and replays the journals after it
    /// into an empty book, through ``RegionBook/apply(_:now:)``: the one
    /// interpreter of records; leases get their deadlines from `now`. A torn
    /// last record is dropped with a warning and truncated away; any other
    /// damage throws, naming the file and the record. Afterwards the journal takes records.
    public func load(now: LeaseClock.Now) throws(JournalError) -> RegionBook {
        guard state.withLock({ $0.phase }) == .unloaded else { throw .notOpen }
        var names = try system(Syscall.listDirectory(directory))
        var removedFiles = false
        for name in names where name.hasSuffix(StateFiles.temporarySuffix) {
            logger.notice("removing an unfinished snapshot", metadata: ["path": "\(path(name))"])
            try system(Syscall.unlink(path(name)))
            removedFiles = true
        }
        names.removeAll { $0.hasSuffix(StateFiles.temporarySuffix) }
        let snapshots = names.compactMap { StateFiles.generation(ofFile: $0, prefix: StateFiles.snapshotPrefix) }
            .sorted(by: >)
        let journals = names.compactMap { StateFiles.generation(ofFile: $0, prefix: StateFiles.journalPrefix) }
            .sorted()

        var base: (generation: UInt64, image: RegionBook.Image)?
        for generation in snapshots {
            let snapshotPath = path(StateFiles.snapshotName(generation))
            if let image = try StateFiles.readSnapshot(path: snapshotPath, generation: generation) {
                base = (generation, image)
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
            let bytes = try system(Syscall.readAll(journalPath))
            files.append((journalPath, try StateFiles.parseJournal(bytes, path: journalPath, generation: generation)))
        }
        // A torn tail is only a torn tail when no later journal holds records.
        for (index, file) in files.enumerated() {
            guard let tear = file.contents.tear else { continue }
            if files[(index + 1)...].contains(where: { !$0.contents.records.isEmpty }) {
                throw .corrupt(path: file.path, record: tear.record, reason: tear.reason + ", and a later journal holds records")
            }
        }

        var book = RegionBook()
        if let base {
            let snapshotPath = path(StateFiles.snapshotName(base.generation))
            for (index, entry) in base.image.entries.enumerated() {
                do throws(RegionBook.Inapplicable) {
                    try book.apply(.allocate(entry), now: now)
                } catch {
                    throw .corrupt(path: snapshotPath, record: index + 1, reason: "cannot restore the region: \(error)")
                }
            }
            book.advanceNextID(to: base.image.nextID)
        }
        var replayedRecords = 0
        for file in files {
            for (index, record) in file.contents.records.enumerated() {
                do throws(RegionBook.Inapplicable) {
                    try book.apply(record, now: now)
                } catch {
                    throw .corrupt(path: file.path, record: index + 1, reason: error.description)
                }
            }
            replayedRecords += file.contents.records.count
        }

        for file in files {
            if let tear = file.contents.tear { try cutTornTail(file.path, file.contents, tear) }
        }
        let generation = replayed.last ?? firstGeneration
        if let last = files.last {
            let descriptor = try system(Syscall.open(last.path, O_WRONLY))
            let length = max(last.contents.validLength, StateFiles.headerSize)
            current = OpenFile(
                descriptor: descriptor, path: last.path, generation: generation, length: length,
                size: last.contents.tear == nil ? max(last.contents.size, length) : length, version: last.contents.version,
                chain: last.contents.chain
            )
        } else {
            let created = try StateFiles.createJournal(directory: directory, generation: generation)
            current = OpenFile(created: created, generation: generation)
        }
        if base != nil {
            removedFiles = try removeFiles(olderThan: firstGeneration, in: names) || removedFiles
        }
        if removedFiles { try system(Syscall.fsyncDirectory(directory)) }

        state.withLock {
            $0.phase = .open
            $0.appendedSinceSnapshot = replayedRecords
        }
        startWriter()
        return book
    }

    /// Drops a torn tail from a journal file (or rewrites a header cut short), durably.
    func cutTornTail(_ path: String, _ contents: StateFiles.JournalFile, _ tear: StateFiles.Tear) throws(JournalError) {
        logger.warning(
            "dropping a torn record at the end of the journal",
            metadata: [
                "path": "\(path)", "record": "\(tear.record.map(String.init) ?? "header")",
                "reason": "\(tear.reason)", "keptBytes": "\(contents.validLength)",
            ]
        )
        let descriptor = try system(Syscall.open(path, O_WRONLY))
        defer { _ = Glibc.close(descriptor) }
        try system(Syscall.truncate(descriptor, length: contents.validLength, path: path))
        if contents.validLength < StateFiles.headerSize {
            let generation = StateFiles.generation(ofFile: String(path.split(separator: "/").last ?? ""), prefix: StateFiles.journalPrefix) ?? 0
            try system(Syscall.writeAll(descriptor, StateFiles.header(magic: StateFiles.journalMagic, generation: generation, version: contents.version), path: path))
        }
        try system(Syscall.fsync(descriptor, path: path))
    }

    /// Unlinks snapshots and journals of generations before `generation`;
    /// true when it removed any (the caller fsyncs the directory).
    func removeFiles(olderThan generation: UInt64, in names: [String]) throws(JournalError) -> Bool {
        var removed = false
        for name in names {
            let old = StateFiles.generation(ofFile: name, prefix: StateFiles.snapshotPrefix)
                ?? StateFiles.generation(ofFile: name, prefix: StateFiles.journalPrefix)
            if let old, old < generation {
                try system(Syscall.unlink(path(name)))
                removed = true
            }
        }
        return removed
    }

    /// A file in the state directory.
    func path(_ name: String) -> String {
        directory + "/" + name
    }
}
