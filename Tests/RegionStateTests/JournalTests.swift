import Dispatch
import Foundation
import Glibc
import Logging
import MemoryPool
@testable import RegionState
@testable import TestSupport
import Locking
import Testing

/// The journal, against real temporary directories: no mocks.
@Suite struct JournalTests {
    // MARK: Round trips

    @Test func crc32cMatchesTheCastagnoliCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    }

    @Test func recordsWithLabelsAndKeysSurviveACloseAndALoad() throws {
        let directory = try TemporaryDirectory()
        let records: [JournalRecord] = [
            .allocate(region(0, class: 2, label: "vm-1 scratch", key: "key-1")),
            .allocate(region(16 * MiB, class: 0)),
            .allocate(region(64 * MiB, class: 3, label: "ünïcödé ✓", key: nil)),
            .release(offset: 16 * MiB),
            .allocate(region(17 * MiB, class: 0, label: "", key: "k")),
            .allocate(region(GiB, class: 5, label: nil, key: "only-key")),
        ]
        try write(records, to: directory.path)

        let journal = try Journal(directory: directory.path, logger: testLogger())
        defer { journal.close() }
        let book = try journal.load()
        let (pool, regions) = (book.pool, book.regions)
        #expect(regions == expectedRegions(after: records))
        #expect(pool.regions == expectedPool(for: regions).regions)
        #expect(pool.classCounts == expectedPool(for: regions).classCounts)
    }

    // MARK: Damage

    /// How the end of a journal is damaged.
    enum TailDamage: CaseIterable, Sendable {
        /// The last record is cut a few bytes into its payload.
        case cutShort
        /// Bytes that are no record follow the last one.
        case garbage
    }

    @Test(arguments: TailDamage.allCases)
    func aTornTailIsDroppedWithAWarningAndLaterAppendsLoad(damage: TailDamage) throws {
        let directory = try TemporaryDirectory()
        let records: [JournalRecord] = (0..<8).map { .allocate(region(UInt64($0) * MiB, class: 0, label: "r\($0)")) }
        // Version 1 (records back to back), so the bytes are known exactly; batches have their own tests below.
        try writeJournalFile(directory.path, generation: 0, records)
        let journalPath = directory.path + "/journal-0000000000000000"
        let size = try fileSize(journalPath)
        let kept: [JournalRecord]
        switch damage {
        case .cutShort:
            try truncateFile(journalPath, to: size - framed(records.last!).count + 11)
            kept = Array(records.dropLast())
        case .garbage:
            try appendBytes([0xDE, 0xAD, 0xBE, 0xEF, 0x01, 0x02, 0x03, 0x00, 0x00, 0x07, 0xFF, 0x10, 0x42], to: journalPath)
            kept = records
        }

        let log = LogCapture()
        let journal = try Journal(directory: directory.path, logger: log.logger)
        let regions = try journal.load().regions
        #expect(regions == expectedRegions(after: kept))
        #expect(log.messages.contains { $0.level == .warning && $0.text.contains("torn record") })
        #expect(try fileSize(journalPath) == StateFiles.headerSize + kept.map { framed($0).count }.reduce(0, +))
        let later = JournalRecord.allocate(region(100 * MiB, class: 0, label: "after the tear"))
        try appendAndWait(journal, [later])
        journal.close()

        let reloaded = try Journal(directory: directory.path, logger: testLogger())
        defer { reloaded.close() }
        #expect(try reloaded.load().regions == expectedRegions(after: kept + [later]))
    }

    @Test func aFlippedByteInAMiddleRecordStopsTheLoadNamingFileAndRecord() throws {
        let directory = try TemporaryDirectory()
        let records: [JournalRecord] = (0..<5).map { .allocate(region(UInt64($0) * MiB, class: 0, label: "label \($0)")) }
        try writeJournalFile(directory.path, generation: 0, records)
        let journalPath = directory.path + "/journal-0000000000000000"
        let third = StateFiles.headerSize + framed(records[0]).count + framed(records[1]).count
        try flipByte(at: third + 12, in: journalPath)

        let error = try loadError(directory.path)
        #expect(error == nil ? false : "\(error!)".contains(journalPath))
        guard case .corrupt(let path, let record, _) = error else {
            Issue.record("expected a corruption error, got \(String(describing: error))")
            return
        }
        #expect(path == journalPath)
        #expect(record == 3)
        #expect("\(error!)".contains("record 3"))
    }

    @Test(arguments: [
        [JournalRecord.allocate(region(0, class: 1)), .allocate(region(MiB, class: 0))],
        [JournalRecord.allocate(region(0, class: 0)), .release(offset: 4 * MiB)],
    ])
    func aRecordThatContradictsTheStateStopsTheLoad(records: [JournalRecord]) throws {
        let directory = try TemporaryDirectory()
        try write(records, to: directory.path)
        let error = try loadError(directory.path)
        guard case .corrupt(let path, let record, _) = error else {
            Issue.record("expected a corruption error, got \(String(describing: error))")
            return
        }
        #expect(path == directory.path + "/journal-0000000000000000")
        #expect(record == 2)
    }

    @Test func aJournalOfAnUnknownVersionStopsTheLoad() throws {
        let directory = try TemporaryDirectory()
        try write([.allocate(region(0, class: 0))], to: directory.path)
        let journalPath = directory.path + "/journal-0000000000000000"
        try flipByte(at: 5, in: journalPath)  // version 4 becomes 0x0104
        let error = try loadError(directory.path)
        #expect(error.map { "\($0)".contains("unknown format version 260") && "\($0)".contains(journalPath) } == true)
    }

    // MARK: Damage inside bytes that were never acknowledged

    /// A file system that commits a file's size before its data can leave a
    /// new journal whose header reads as zeros: at first start, nothing was
    /// ever in it, so start-up cuts it back and goes on.
    @Test func aZeroHeaderAtFirstStartIsRecoveredFrom() throws {
        let directory = try TemporaryDirectory()
        let journalPath = directory.path + "/journal-0000000000000000"
        _ = FileManager.default.createFile(atPath: journalPath, contents: Data(count: 16))
        let journal = try Journal(directory: directory.path, logger: testLogger())
        #expect(try journal.load().regions.isEmpty)
        try appendAndWait(journal, [.allocate(region(0, class: 0))])
        journal.close()
        let reloaded = try Journal(directory: directory.path, logger: testLogger())
        defer { reloaded.close() }
        #expect(try reloaded.load().regions.keys.sorted() == [0])
    }

    /// The same after a compaction: the older generation keeps every
    /// acknowledged record, the new journal's zero header is cut back.
    @Test func aZeroHeaderAfterACompactionKeepsEveryRecordBeforeIt() throws {
        let directory = try TemporaryDirectory()
        let records: [JournalRecord] = [.allocate(region(0, class: 0, label: "a")), .allocate(region(MiB, class: 0))]
        try write(records, to: directory.path)
        // As if a compaction had created journal 1 and lost power before its header and snapshot reached the disk.
        _ = FileManager.default.createFile(atPath: directory.path + "/journal-0000000000000001", contents: Data(count: 16))
        let journal = try Journal(directory: directory.path, logger: testLogger())
        defer { journal.close() }
        #expect(try journal.load().regions == expectedRegions(after: records))
    }

    /// Zeros where the header should be, with intact records after it:
    /// those records were acknowledged, so the damage is real.
    @Test func aZeroHeaderWithRecordsAfterItStillStopsTheLoad() throws {
        let directory = try TemporaryDirectory()
        try write([.allocate(region(0, class: 0))], to: directory.path)
        let journalPath = directory.path + "/journal-0000000000000000"
        var bytes = try Array(Data(contentsOf: URL(fileURLWithPath: journalPath)))
        bytes.replaceSubrange(0..<16, with: repeatElement(0, count: 16))
        try Data(bytes).write(to: URL(fileURLWithPath: journalPath))
        let error = try loadError(directory.path)
        #expect(error.map { "\($0)".contains(journalPath) && "\($0)".contains("not a regiond") } == true)
    }

    /// A group-commit write whose first 4 KiB block was lost while a later
    /// block of the same write landed: the batch was never fsync'd, so never
    /// acknowledged; start-up keeps every batch before it and cuts it off.
    @Test func aBatchWithALostFirstBlockAndALaterBlockIntactIsCutOff() throws {
        let directory = try TemporaryDirectory()
        let journalPath = directory.path + "/journal-0000000000000000"
        let first: [JournalRecord] = [.allocate(region(0, class: 0, label: "kept")), .allocate(region(MiB, class: 0))]
        let lost = (2..<100).map { JournalRecord.allocate(region(UInt64($0) * MiB, class: 0, label: String(repeating: "z", count: 200))) }
        var bytes = journalHeader(version: 2)
        bytes += batch(first)
        let lostStart = bytes.count
        bytes += batch(lost)
        #expect(bytes.count - lostStart > 3 * 4096, "the lost batch spans several blocks")
        // The block holding the lost batch's frame never reached the disk; the ones after it did.
        let blockStart = lostStart / 4096 * 4096
        let blockEnd = min(blockStart + 4096, bytes.count)
        bytes.replaceSubrange(max(blockStart, lostStart)..<blockEnd, with: repeatElement(0, count: blockEnd - max(blockStart, lostStart)))
        _ = FileManager.default.createFile(atPath: journalPath, contents: Data(bytes))

        let capture = LogCapture()
        let journal = try Journal(directory: directory.path, logger: capture.logger)
        #expect(try journal.load().regions == expectedRegions(after: first))
        #expect(capture.messages.contains { $0.level == .warning && $0.text.contains("torn") })
        try appendAndWait(journal, [.release(offset: 0)])
        journal.close()
        #expect(try fileSize(journalPath) > lostStart, "appends go on after the cut")
        let reloaded = try Journal(directory: directory.path, logger: testLogger())
        defer { reloaded.close() }
        #expect(try reloaded.load().regions == expectedRegions(after: first + [.release(offset: 0)]))
    }

    /// Damage inside a batch with an intact batch after it: the damaged one
    /// was fsync'd before the next was written, so it was acknowledged.
    @Test func damageInsideAnAcknowledgedBatchStillStopsTheLoad() throws {
        let directory = try TemporaryDirectory()
        let journalPath = directory.path + "/journal-0000000000000000"
        var bytes = journalHeader(version: 2)
        bytes += batch([.allocate(region(0, class: 0)), .allocate(region(MiB, class: 0))])
        bytes += batch([.release(offset: 0)])
        bytes[16 + 12 + 10] ^= 0x01
        _ = FileManager.default.createFile(atPath: journalPath, contents: Data(bytes))
        let error = try loadError(directory.path)
        #expect(error.map { "\($0)".contains(journalPath) && "\($0)".contains("record 1") && "\($0)".contains("an intact batch follows") } == true)
    }

    /// The writer grows a journal by preallocated chunks of zeros, so a
    /// batch's fdatasync need not write the file's size: those zeros are the
    /// normal end of a journal, not damage, and appends go on right after
    /// the last batch, not after the zeros.
    @Test func preallocatedZerosAfterTheLastBatchAreNoDamageAndAppendsFollowTheBatches() throws {
        let directory = try TemporaryDirectory()
        let journalPath = directory.path + "/journal-0000000000000000"
        let first: [JournalRecord] = (0..<5).map { .allocate(region(UInt64($0) * MiB, class: 0, label: "r\($0)")) }
        try write(first, to: directory.path)
        let written = try Syscall.readAll(journalPath)
        let parsed = try StateFiles.parseJournal(written, path: journalPath, generation: 0)
        #expect(written.count == StateFiles.headerSize + Journal.preallocationChunk, "one chunk preallocated")
        #expect(parsed.tear == nil && parsed.records == first)
        #expect(written[parsed.validLength...].allSatisfy { $0 == 0 })

        let capture = LogCapture()
        let journal = try Journal(directory: directory.path, logger: capture.logger)
        #expect(try journal.load().regions == expectedRegions(after: first))
        #expect(!capture.messages.contains { $0.level >= .warning }, "\(capture.messages)")
        let later: [JournalRecord] = [.release(offset: 0), .allocate(region(64 * MiB, class: 3, label: "later"))]
        try appendAndWait(journal, later)
        journal.close()

        let again = try StateFiles.parseJournal(try Syscall.readAll(journalPath), path: journalPath, generation: 0)
        #expect(again.records == first + later && again.tear == nil)
        #expect(again.validLength > parsed.validLength && again.size == written.count, "written into the zeros, no growth")
        let reloaded = try Journal(directory: directory.path, logger: testLogger())
        defer { reloaded.close() }
        #expect(try reloaded.load().regions == expectedRegions(after: first + later))
    }

    /// A batch torn inside preallocated space (its first bytes landed, the
    /// rest are still zeros) was never acknowledged: it is cut off.
    @Test func aTornBatchInPreallocatedSpaceIsCutOff() throws {
        let directory = try TemporaryDirectory()
        let journalPath = directory.path + "/journal-0000000000000000"
        let kept: [JournalRecord] = [.allocate(region(0, class: 0, label: "kept"))]
        let torn = batch([.allocate(region(MiB, class: 0, label: "torn"))])
        var bytes = journalHeader(version: 3) + batch(kept)
        bytes += torn.prefix(torn.count / 2)
        bytes += [UInt8](repeating: 0, count: 8192)
        _ = FileManager.default.createFile(atPath: journalPath, contents: Data(bytes))

        let capture = LogCapture()
        let journal = try Journal(directory: directory.path, logger: capture.logger)
        defer { journal.close() }
        #expect(try journal.load().regions == expectedRegions(after: kept))
        #expect(capture.messages.contains { $0.level == .warning && $0.text.contains("torn") })
    }

    /// How the last write of a journal reached the disk when the power went.
    enum LastWrite: CaseIterable, Sendable {
        /// Its last 34 bytes read as the preallocated zeros (the state of issue 17).
        case zeroFilledTail
        /// The file ends 34 bytes before the write did.
        case cutShort
        /// Its first 4 KiB block never landed; the blocks after it did.
        case firstBlockLost
    }

    /// Issue 17: a renew whose expiry is -1 ends in `ff ff ff ff`, so it and
    /// the release after it read as a version 3 batch frame and its records.
    /// The old forward scan found that "batch" inside the torn last write and
    /// refused to start; now the write is cut off and appends go on after it.
    @Test(arguments: [UInt32(3), 4], LastWrite.allCases)
    func aTornLastWriteHoldingARecordThatLooksLikeABatchIsCutOff(version: UInt32, lastWrite: LastWrite) throws {
        let directory = try TemporaryDirectory()
        let journalPath = directory.path + "/journal-0000000000000000"
        let acknowledged: [[JournalRecord]] = [
            [.allocate(region(0, class: 0, label: "RGNB RGNJ")), .allocate(region(MiB, class: 0, key: "k"))],
            [.renew(offset: 0, id: nil, SavedRegion.Lease(seconds: 60, expiresAt: -1))],
        ]
        let filler = (2..<30).map { JournalRecord.allocate(region(UInt64($0) * MiB, class: 0, label: String(repeating: "f", count: 200))) }
        let unacknowledged = filler + [
            .renew(offset: 0, id: nil, SavedRegion.Lease(seconds: 30, expiresAt: -1)), .release(offset: MiB),
            .allocate(region(40 * MiB, class: 0, label: String(repeating: "t", count: 40))),
        ]
        let lastStart = journalBytes(version: version, batches: acknowledged).count
        var bytes = journalBytes(version: version, batches: acknowledged + [unacknowledged])
        let lastEnd = bytes.count
        #expect(lastEnd - lastStart > 4096, "the last write spans blocks")
        switch lastWrite {
        case .zeroFilledTail:
            bytes.replaceSubrange((lastEnd - 34)..<lastEnd, with: repeatElement(0, count: 34))
            bytes += [UInt8](repeating: 0, count: 65_536)
        case .cutShort:
            bytes.removeLast(34)
        case .firstBlockLost:
            let firstBlockEnd = (lastStart / 4096 + 1) * 4096
            bytes.replaceSubrange(lastStart..<firstBlockEnd, with: repeatElement(0, count: firstBlockEnd - lastStart))
            bytes += [UInt8](repeating: 0, count: 65_536)
        }
        _ = FileManager.default.createFile(atPath: journalPath, contents: Data(bytes))

        let capture = LogCapture()
        let journal = try Journal(directory: directory.path, logger: capture.logger)
        let kept = acknowledged.flatMap { $0 }
        #expect(try journal.load().regions == expectedRegions(after: kept))
        #expect(capture.messages.contains { $0.level == .warning && $0.text.contains("torn") })
        let later = JournalRecord.allocate(region(100 * MiB, class: 0, label: "after the cut"))
        try appendAndWait(journal, [later])
        journal.close()
        let reloaded = try Journal(directory: directory.path, logger: testLogger())
        defer { reloaded.close() }
        #expect(try reloaded.load().regions == expectedRegions(after: kept + [later]))
    }

    /// A version 4 batch whose records were damaged after its fsync (the
    /// batch written after it is there, in the chain, right where it ends):
    /// the load refuses, naming the file and the batch's first record.
    @Test func aDamagedFsyncedBatchWithTheNextBatchAfterItStopsTheLoadNamingFileAndRecord() throws {
        let directory = try TemporaryDirectory()
        let journalPath = directory.path + "/journal-0000000000000000"
        let batches: [[JournalRecord]] = [
            [.allocate(region(0, class: 0)), .allocate(region(MiB, class: 0))],
            [.allocate(region(2 * MiB, class: 0, label: "damaged")), .release(offset: 0)],
            [.release(offset: MiB)],
        ]
        var bytes = journalBytes(version: 4, batches: batches)
        let second = journalBytes(version: 4, batches: Array(batches.prefix(1))).count
        bytes[second + StateFiles.chainedBatchHeaderSize + 12] ^= 0x01
        bytes += [UInt8](repeating: 0, count: 4096)
        _ = FileManager.default.createFile(atPath: journalPath, contents: Data(bytes))
        let error = try loadError(directory.path)
        guard case .corrupt(let path, let record, let reason) = error else {
            Issue.record("expected a corruption error, got \(String(describing: error))")
            return
        }
        #expect(path == journalPath)
        #expect(record == 3)
        #expect(reason.contains("batch checksum mismatch") && reason.contains("an intact batch follows it"))
    }

    /// Zeros inside a batch whose frame reads, with an intact batch where
    /// that frame says the next one starts, are a hole in acknowledged data,
    /// not preallocated space: the load still refuses. (Zeros where a frame
    /// should be read as the write in flight: nothing says where the batch
    /// after it would start, and no position is searched.)
    @Test(arguments: [UInt32(3), 4])
    func zerosInsideABatchWithAnIntactBatchAfterItStillStopTheLoad(version: UInt32) throws {
        let directory = try TemporaryDirectory()
        let journalPath = directory.path + "/journal-0000000000000000"
        let first = (0..<40).map { JournalRecord.allocate(region(UInt64($0) * MiB, class: 0, label: String(repeating: "h", count: 200))) }
        var bytes = journalBytes(version: version, batches: [first, [.release(offset: 0)]])
        bytes.replaceSubrange(4096..<8192, with: repeatElement(0, count: 4096))
        _ = FileManager.default.createFile(atPath: journalPath, contents: Data(bytes))
        let error = try loadError(directory.path)
        #expect(error.map { "\($0)".contains(journalPath) && "\($0)".contains("record 1:") && "\($0)".contains("an intact batch follows") } == true)
    }

    /// A version 1 journal (records without batch frames, as regiond wrote
    /// before) loads, takes appends in its own format, and loads again.
    @Test func aVersion1JournalLoadsAndTakesAppends() throws {
        let directory = try TemporaryDirectory()
        let journalPath = directory.path + "/journal-0000000000000000"
        let records: [JournalRecord] = [.allocate(region(0, class: 0, label: "old", key: "k")), .allocate(region(4 * MiB, class: 1))]
        _ = FileManager.default.createFile(atPath: journalPath, contents: Data(journalHeader(version: 1) + records.flatMap(framed)))
        let journal = try Journal(directory: directory.path, logger: testLogger())
        #expect(try journal.load().regions == expectedRegions(after: records))
        try appendAndWait(journal, [.release(offset: 0)])
        journal.close()
        let bytes = try Syscall.readAll(journalPath)
        let expected = (records + [.release(offset: 0)]).flatMap(framed)
        #expect(Array(bytes[16..<(16 + expected.count)]) == expected, "no batch frame in a version 1 file")
        #expect(bytes[(16 + expected.count)...].allSatisfy { $0 == 0 }, "then only preallocated zeros")
        let reloaded = try Journal(directory: directory.path, logger: testLogger())
        defer { reloaded.close() }
        #expect(try reloaded.load().regions == expectedRegions(after: records + [.release(offset: 0)]))
    }

    // MARK: Snapshots and compaction

    @Test func compactionKeepsTheStateInOneSnapshotAndOneJournal() throws {
        let directory = try TemporaryDirectory()
        let journal = try Journal(directory: directory.path, compactAfter: 10, logger: testLogger())
        _ = try journal.load()
        var live = RegionBook()
        var compactions = 0
        for index in 0..<35 {
            let record: JournalRecord = index % 3 == 2
                ? .release(offset: UInt64(index - 1) * MiB)
                : .allocate(region(UInt64(index) * MiB, class: 0, label: "n\(index)", key: "k\(index)"))
            live = expectedBook(after: [record], from: live)
            try appendAndWait(journal, [record])
            if journal.needsCompaction {
                journal.compact(image: live.image)
                compactions += 1
            }
        }
        journal.close()
        #expect(compactions == 3)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(names == ["journal-0000000000000003", "lock", "snapshot-0000000000000003"])

        let reloaded = try Journal(directory: directory.path, logger: testLogger())
        defer { reloaded.close() }
        #expect(try reloaded.load().regions == live.regions)
    }

    @Test func aSnapshotPlusTheJournalAfterItEqualsTheStateBefore() throws {
        let directory = try TemporaryDirectory()
        let before: [JournalRecord] = (0..<20).map { .allocate(region(UInt64($0) * 4 * MiB, class: 1, label: "b\($0)")) }
        let after: [JournalRecord] = [.release(offset: 0), .release(offset: 8 * MiB), .allocate(region(0, class: 0, key: "x"))]
        let journal = try Journal(directory: directory.path, logger: testLogger())
        _ = try journal.load()
        try appendAndWait(journal, before)
        journal.compact(image: expectedBook(after: before).image)
        try appendAndWait(journal, after)
        journal.close()
        #expect(FileManager.default.fileExists(atPath: directory.path + "/snapshot-0000000000000001"))
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/journal-0000000000000000"))

        let reloaded = try Journal(directory: directory.path, logger: testLogger())
        defer { reloaded.close() }
        let book = try reloaded.load()
        let (pool, regions) = (book.pool, book.regions)
        #expect(regions == expectedRegions(after: before + after))
        #expect(pool.regions == expectedPool(for: regions).regions)
    }

    @Test func aCrashBetweenANewJournalAndItsSnapshotLoadsBothJournals() throws {
        let directory = try TemporaryDirectory()
        let snapshot = (0..<4).map { region(UInt64($0) * 16 * MiB, class: 2, label: "s\($0)") }
        let first: [JournalRecord] = [.release(offset: 16 * MiB), .allocate(region(16 * MiB, class: 0, label: "j1"))]
        let second: [JournalRecord] = [.release(offset: 0), .allocate(region(GiB, class: 4, key: "j2"))]
        let start = expectedBook(after: snapshot.map { .allocate($0) })
        try StateFiles.writeSnapshot(directory: directory.path, generation: 1, image: start.image)
        try writeJournalFile(directory.path, generation: 1, first)
        try writeJournalFile(directory.path, generation: 2, second)
        // The snapshot of generation 2 was being written when the process died.
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: directory.path + "/snapshot-0000000000000002.tmp"))

        let journal = try Journal(directory: directory.path, logger: testLogger())
        defer { journal.close() }
        #expect(try journal.load().regions == expectedRegions(after: first + second, from: start))
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/snapshot-0000000000000002.tmp"))
    }

    // MARK: The lock

    @Test func aSecondJournalOnTheSameDirectoryIsRefusedNamingTheHolder() throws {
        let directory = try TemporaryDirectory()
        let first = try Journal(directory: directory.path, logger: testLogger())
        defer { first.close() }
        #expect(throws: JournalError.locked(directory: directory.path, pid: getpid())) {
            _ = try Journal(directory: directory.path, logger: testLogger())
        }
        let message = "\(JournalError.locked(directory: directory.path, pid: getpid()))"
        #expect(message == "another regiond (pid \(getpid())) holds \(directory.path)")
    }

    // MARK: Group commit

    @Test func sixteenWritersShareFsyncs() throws {
        let directory = try TemporaryDirectory()
        let journal = try Journal(directory: directory.path, logger: testLogger())
        _ = try journal.load()
        let perThread = 40
        let failures = Locked(0)
        let group = DispatchGroup()
        for thread in 0..<16 {
            group.enter()
            Thread {
                for index in 0..<perThread {
                    let offset = UInt64(thread * perThread + index) * MiB
                    let durable = DispatchSemaphore(value: 0)
                    do {
                        try journal.append(.allocate(region(offset, class: 0))) { result in
                            if case .failure = result { failures.withLock { $0 += 1 } }
                            durable.signal()
                        }
                        durable.wait()
                    } catch {
                        failures.withLock { $0 += 1 }
                    }
                }
                group.leave()
            }.start()
        }
        group.wait()
        let statistics = journal.statistics
        journal.close()
        #expect(failures.withLock { $0 } == 0)
        #expect(statistics.records == 16 * UInt64(perThread))
        #expect(statistics.fsyncs < statistics.records)

        let reloaded = try Journal(directory: directory.path, logger: testLogger())
        defer { reloaded.close() }
        #expect(try reloaded.load().regions.count == 16 * perThread)
    }

    // MARK: Failure and recovery

    @Test(.enabled(if: Tmpfs.canMount, "mounting a tmpfs is not permitted here (needs root with CAP_SYS_ADMIN)"))
    func aFullDiskFailsPendingRecordsNewestFirstAndRecoverRestoresService() throws {
        let directory = try TemporaryDirectory()
        let mount = try Tmpfs(at: directory.path, size: "64k")
        defer { mount.unmount() }
        let journal = try Journal(directory: directory.path, logger: testLogger())
        var closed = false
        defer { if !closed { journal.close() } }
        _ = try journal.load()
        let journalPath = directory.path + "/journal-0000000000000000"
        let label = String(repeating: "x", count: 100)

        // Fill the journal's first page, then the rest of the file system.
        var live = RegionBook()
        var next: UInt64 = 0
        while try fileSize(journalPath) % 4096 < 3400 {
            let record = JournalRecord.allocate(region(next * MiB, class: 0, label: label))
            try appendAndWait(journal, [record])
            live = expectedBook(after: [record], from: live)
            next += 1
        }
        try fillFileSystem(directory.path + "/filler")

        // A fits in the page and is durable; B1...B10, each too large for what
        // is left of it, are queued as fast as they can be: each one the
        // journal took fails, newest first, and later ones are refused.
        let large = String(repeating: "y", count: 1000)
        let small = JournalRecord.release(offset: 0)
        try appendAndWait(journal, [small])
        live = expectedBook(after: [small], from: live)
        let durableSize = try fileSize(journalPath)
        let outcomes = Locked<[(UInt64, Bool)]>([])
        let finished = DispatchGroup()
        var sequences: [UInt64] = []
        for index in 0..<10 {
            finished.enter()
            do {
                let record = JournalRecord.allocate(region((next + UInt64(index)) * MiB, class: 0, label: large))
                let sequence = Locked<UInt64>(0)
                sequence.withLock { value in
                    value = (try? journal.append(record) { result in
                        outcomes.withLock { $0.append((sequence.withLock { $0 }, (try? result.get()) != nil)) }
                        finished.leave()
                    }) ?? 0
                }
                let taken = sequence.withLock { $0 }
                guard taken > 0 else {
                    finished.leave()
                    break
                }
                sequences.append(taken)
            }
        }
        finished.wait()

        let order = outcomes.withLock { $0 }
        #expect(!sequences.isEmpty)
        #expect(order.map(\.0) == sequences.reversed())
        #expect(order.allSatisfy { !$0.1 })
        #expect(!journal.isHealthy)
        let full = JournalError.system(SystemError(call: "pwrite", path: journalPath, errno: ENOSPC))
        #expect(throws: JournalError.failed(full)) { try journal.append(.release(offset: MiB)) { _ in } }
        #expect(try fileSize(journalPath) == durableSize)

        // Free the space: recovery writes a new generation and takes records again.
        unlink(directory.path + "/filler")
        try journal.recover(image: live.image)
        #expect(journal.isHealthy)
        let after = JournalRecord.release(offset: MiB)
        try appendAndWait(journal, [after])
        live = expectedBook(after: [after], from: live)
        journal.close()
        closed = true

        let reloaded = try Journal(directory: directory.path, logger: testLogger())
        defer { reloaded.close() }
        #expect(try reloaded.load().regions == live.regions)
    }

    // MARK: Start-up

    @Test func startUpLoads4096RegionsAnd100kRecords() throws {
        let directory = try TemporaryDirectory()
        let journal = try Journal(directory: directory.path, compactAfter: 1 << 30, logger: testLogger())
        _ = try journal.load()
        let full = (0..<4096).map { region(UInt64($0) * MiB, class: 0, label: "region \($0)", key: "key-\($0)") }
        try appendAndWait(journal, full.map { .allocate($0) })
        journal.compact(image: expectedBook(after: full.map { .allocate($0) }).image)
        var records: [JournalRecord] = []
        records.reserveCapacity(100_000)
        for index in 0..<50_000 {
            let old = full[index % 4096]
            records.append(.release(offset: old.region.offset))
            records.append(.allocate(region(old.region.offset, class: 0, label: "again \(index)", key: old.references[0].key)))
        }
        try appendAndWait(journal, records)
        journal.close()

        let clock = ContinuousClock()
        var loaded: [UInt64: SavedRegion] = [:]
        let elapsed = try clock.measure {
            let reloaded = try Journal(directory: directory.path, logger: testLogger())
            loaded = try reloaded.load().regions
            reloaded.close()
        }
        // Release builds take about 0.2 s (README); a debug build far more, but
        // anything quadratic in the records would take minutes.
        #expect(elapsed < .seconds(30), "start-up took \(elapsed)")
        #expect(loaded.count == 4096)
        #expect(loaded[full[49_999 % 4096].region.offset]?.label == "again 49999")
    }
}

// MARK: - Helpers

/// A region with offsets in bytes, as an allocate record holds it: ids 0,
/// for the book to give when the record is applied (as to older formats).
func region(_ offset: UInt64, class memoryClass: Int, label: String? = nil, key: String? = nil) -> RegionEntry {
    RegionEntry(
        SavedRegion(id: 0, offset: offset, memoryClass: MemoryClass(rawValue: memoryClass), label: label),
        references: [Reference(id: 0, key: key, label: label)])
}

/// The moment every test book is loaded at: leases play no part here.
let testNow = LeaseClock.Now(wall: 0, monotonic: ContinuousClock.now)

/// The book after `records`, applied to `start` by the book itself: the
/// journal must give back exactly what was applied.
func expectedBook(after records: [JournalRecord], from start: RegionBook = RegionBook()) -> RegionBook {
    var book = start
    for record in records { try! book.apply(record, now: testNow) }
    return book
}

/// The live regions after `records`, applied to `start`.
func expectedRegions(after records: [JournalRecord], from start: RegionBook = RegionBook()) -> [UInt64: SavedRegion] {
    expectedBook(after: records, from: start).regions
}

extension Journal {
    /// Loads at `testNow`.
    func load() throws(JournalError) -> RegionBook {
        try load(now: testNow)
    }
}

/// A pool holding exactly `regions`.
private func expectedPool(for regions: [UInt64: SavedRegion]) -> PoolAllocator {
    var pool = PoolAllocator()
    for region in regions.values {
        try! pool.restore(offset: region.offset, memoryClass: region.memoryClass)
    }
    return pool
}

/// The bytes of one framed record.
private func framed(_ record: JournalRecord) -> [UInt8] {
    var bytes: [UInt8] = []
    record.appendFramed(to: &bytes)
    return bytes
}

/// A journal header of generation 0.
private func journalHeader(version: UInt32) -> [UInt8] {
    StateFiles.header(magic: StateFiles.journalMagic, generation: 0, version: version)
}

/// A journal of generation 0 in format `version`, each element of `batches` framed as the writer frames one group commit.
private func journalBytes(version: UInt32, batches: [[JournalRecord]]) -> [UInt8] {
    var bytes = journalHeader(version: version)
    var chain = StateFiles.BatchChain(generation: 0)
    for records in batches {
        let written = StateFiles.framedBatch(records.flatMap(framed), count: records.count, version: version, after: chain)
        bytes += written.bytes
        chain = written.next
    }
    return bytes
}

/// A version 2 or 3 batch frame and its records, as the writer writes one group commit.
private func batch(_ records: [JournalRecord]) -> [UInt8] {
    let bytes = records.flatMap(framed)
    return StateFiles.batchFrame(for: bytes) + bytes
}

/// Appends `records` and waits until the last is durable.
private func appendAndWait(_ journal: Journal, _ records: [JournalRecord]) throws {
    let done = DispatchSemaphore(value: 0)
    let outcome = Locked<Result<Void, JournalError>>(.success(()))
    for (index, record) in records.enumerated() {
        try journal.append(record) { result in
            guard index == records.count - 1 else { return }
            outcome.withLock { $0 = result }
            done.signal()
        }
    }
    done.wait()
    try outcome.withLock { $0 }.get()
}

/// Writes `records` through a journal on `directory` and closes it.
private func write(_ records: [JournalRecord], to directory: String) throws {
    let journal = try Journal(directory: directory, logger: testLogger())
    defer { journal.close() }
    _ = try journal.load()
    try appendAndWait(journal, records)
}

/// Writes a journal file directly, as a crashed regiond would have left it.
private func writeJournalFile(_ directory: String, generation: UInt64, _ records: [JournalRecord]) throws {
    var bytes = StateFiles.header(magic: StateFiles.journalMagic, generation: generation, version: 1)
    for record in records {
        record.appendFramed(to: &bytes)
    }
    try Data(bytes).write(to: URL(fileURLWithPath: directory + "/" + StateFiles.journalName(generation)))
}

/// The error `load` throws on `directory`, nil if it loads.
private func loadError(_ directory: String) throws -> JournalError? {
    let journal = try Journal(directory: directory, logger: testLogger())
    defer { journal.close() }
    do {
        _ = try journal.load()
        return nil
    } catch {
        return error
    }
}

private func fileSize(_ path: String) throws -> Int {
    (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? -1
}

private func truncateFile(_ path: String, to length: Int) throws {
    #expect(Glibc.truncate(path, off_t(length)) == 0)
}

private func appendBytes(_ bytes: [UInt8], to path: String) throws {
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    defer { try? handle.close() }
    try handle.seekToEnd()
    try handle.write(contentsOf: Data(bytes))
}

private func flipByte(at index: Int, in path: String) throws {
    var bytes = try Syscall.readAll(path)
    bytes[index] ^= 0x01
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// Writes pages to `path` until the file system is full.
private func fillFileSystem(_ path: String) throws {
    let descriptor = Glibc.open(path, O_WRONLY | O_CREAT, 0o600)
    #expect(descriptor >= 0)
    defer { Glibc.close(descriptor) }
    let page = [UInt8](repeating: 0xAA, count: 4096)
    while page.withUnsafeBytes({ Glibc.write(descriptor, $0.baseAddress, $0.count) }) > 0 {}
    #expect(errno == ENOSPC)
}

/// A logger for tests that need no log assertions: errors only.
func testLogger() -> Logger {
    var logger = Logger(label: "regiond.journal.test")
    logger.logLevel = .error
    return logger
}

/// A directory under the system temporary directory, removed with its contents on deinit.
final class TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array((NSTemporaryDirectory() + "/regiond-journal-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        path = String(cString: made)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// A small tmpfs mounted over a directory, to run the disk out of space.
private struct Tmpfs {
    let path: String

    /// Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN).
    static let canMount: Bool = {
        guard let directory = try? TemporaryDirectory(), let mount = try? Tmpfs(at: directory.path, size: "64k") else {
            return false
        }
        mount.unmount()
        return true
    }()

    init(at path: String, size: String) throws {
        guard Glibc.mount("tmpfs", path, "tmpfs", 0, "size=\(size),mode=0700") == 0 else {
            throw POSIXError(.init(rawValue: errno) ?? .EPERM)
        }
        self.path = path
    }

    func unmount() {
        if umount2(path, 0) != 0 { _ = umount2(path, Int32(MNT_DETACH)) }
    }
}
