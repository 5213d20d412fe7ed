internal import Glibc

/// The files of a state directory: their names, headers, the snapshot format
/// and the parsing of a journal file.
///
/// ```
/// lock                        flock'd by the running regiond; holds its pid
/// snapshot-<16 hex digits>    the live regions at the start of journal G
/// journal-<16 hex digits>     the records appended since snapshot G
/// ```
/// Header of both kinds: magic (`RGNS` or `RGNJ`), version UInt32 LE,
/// generation UInt64 LE. A snapshot then holds (from format 3) the next id
/// UInt64 LE, a UInt32 LE region count, the regions in offset order (from
/// format 3 as allocate records of type 7 hold them: with ids and every
/// reference), and a CRC32C of everything before it.
///
/// A journal of version 1 holds framed records back to back. Version 2
/// wraps each group-commit write in a batch frame (`FF FF FF FF`, byte count
/// UInt32 LE, CRC32C of the records UInt32 LE); version 3 is version 2 with
/// the record types of shares and leases. Version 4 (written since) frames
/// each batch so that nothing inside a payload can pass for a batch:
///
/// ```
/// 0   "RGNB"
/// 4   number of the batch's first record in this file, UInt64 LE (1, then
///     the previous batch's first record + its record count)
/// 12  record count UInt32 LE
/// 16  byte count of the records UInt32 LE
/// 20  CRC32C of the records, chained from the previous batch's (etcd style)
/// 24  CRC32C of bytes 0..<24, chained from the previous batch's records' CRC
/// 28  the records
/// ```
/// The chain starts from the CRC32C of the file's header, so a batch only
/// checks at the place it was written: not in another generation, not after
/// another batch, not inside a payload (which would need the checksum of
/// everything before it, in its own bytes).
///
/// The end of a journal: the writer grows a file by preallocated chunks of
/// zeros, and appends a batch only after the one before it was fsync'd.
/// Zeros from some point to the end of the file are where the next batch
/// goes. A batch that does not check is the write in flight, cut off like a
/// torn tail, unless the format proves a later write: in version 4, its
/// header checks (so its length is known) and a header that checks in the
/// chain starts right where it ends; in versions 2 and 3, its tag and byte
/// count read and an intact batch starts where they say it ends. No position
/// is searched for something that parses (only version 1, which has no
/// batches, still looks for any intact record after a damaged one).
enum StateFiles {
    /// First bytes of a journal file.
    static let journalMagic: [UInt8] = Array("RGNJ".utf8)
    /// First bytes of a snapshot file.
    static let snapshotMagic: [UInt8] = Array("RGNS".utf8)
    /// The snapshot format version this code writes (3: the next id, and
    /// regions with their ids and every reference).
    static let snapshotVersion: UInt32 = 3
    /// The snapshot format versions this code reads.
    static let snapshotVersions: ClosedRange<UInt32> = 1...3
    /// The journal format version this code writes (4: chained batch
    /// headers; its records name regions and references by id).
    static let journalVersion: UInt32 = 4
    /// The journal format versions this code reads.
    static let journalVersions: ClosedRange<UInt32> = 1...4
    /// Marks a batch frame (versions 2 and 3) where a record frame's payload length would be.
    static let batchTag = UInt32.max
    /// Tag, byte count and checksum of a batch (versions 2 and 3).
    static let batchFrameSize = 12
    /// First bytes of a batch header (version 4).
    static let chainedBatchTag: [UInt8] = Array("RGNB".utf8)
    /// Tag, first record, record count, byte count and the two checksums of a batch (version 4).
    static let chainedBatchHeaderSize = 28
    /// Magic, version and generation.
    static let headerSize = 16
    /// Name prefix of journal files.
    static let journalPrefix = "journal-"
    /// Name prefix of snapshot files.
    static let snapshotPrefix = "snapshot-"
    /// Name of the lock file.
    static let lockName = "lock"
    /// Suffix of a snapshot being written.
    static let temporarySuffix = ".tmp"

    /// `journal-<generation as 16 hex digits>`.
    static func journalName(_ generation: UInt64) -> String { journalPrefix + hex(generation) }

    /// `snapshot-<generation as 16 hex digits>`.
    static func snapshotName(_ generation: UInt64) -> String { snapshotPrefix + hex(generation) }

    /// The generation in a file name made by `journalName` or `snapshotName`, nil for any other name.
    static func generation(ofFile name: String, prefix: String) -> UInt64? {
        guard name.hasPrefix(prefix) else { return nil }
        let digits = name.dropFirst(prefix.count)
        guard digits.utf8.count == 16, digits.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) })
        else { return nil }
        return UInt64(digits, radix: 16)
    }

    /// A generation as 16 lower-case hex digits.
    private static func hex(_ generation: UInt64) -> String {
        let digits = String(generation, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// The header of a file of the given kind.
    static func header(magic: [UInt8], generation: UInt64, version: UInt32) -> [UInt8] {
        var bytes = magic
        bytes.appendLittleEndian(version)
        bytes.appendLittleEndian(generation)
        return bytes
    }

    /// Checks the first `headerSize` bytes of `bytes`: magic, version, and the generation its name says.
    @discardableResult
    static func checkHeader(
        _ bytes: [UInt8], magic: [UInt8], versions: ClosedRange<UInt32>, generation: UInt64, path: String
    ) throws(JournalError) -> UInt32 {
        guard Array(bytes.prefix(4)) == magic else {
            throw .corrupt(path: path, record: nil, reason: "not a regiond state file (magic is not \(String(decoding: magic, as: UTF8.self)))")
        }
        var reader = ByteReader(bytes[4..<headerSize])
        let fileVersion = (try? reader.uint32()) ?? 0
        guard versions.contains(fileVersion) else {
            let readable = versions.count == 1 ? "version \(versions.lowerBound)" : "versions \(versions.lowerBound) to \(versions.upperBound)"
            throw .corrupt(path: path, record: nil, reason: "unknown format version \(fileVersion) (this regiond reads \(readable))")
        }
        let fileGeneration = (try? reader.uint64()) ?? 0
        guard fileGeneration == generation else {
            throw .corrupt(path: path, record: nil, reason: "header says generation \(fileGeneration), the name says \(generation)")
        }
        return fileVersion
    }

    // MARK: Snapshots

    /// The bytes of a snapshot of `image` (format 3: the next id, then the
    /// entries in offset order).
    static func encodeSnapshot(generation: UInt64, image: RegionBook.Image) -> [UInt8] {
        var bytes = header(magic: snapshotMagic, generation: generation, version: snapshotVersion)
        bytes.reserveCapacity(headerSize + 16 + image.entries.count * 64)
        bytes.appendLittleEndian(image.nextID)
        bytes.appendLittleEndian(UInt32(image.entries.count))
        for entry in image.entries.sorted(by: { $0.region.offset < $1.region.offset }) {
            entry.append(to: &bytes)
        }
        bytes.appendLittleEndian(CRC32C.checksum(bytes))
        return bytes
    }

    /// Reads a snapshot: nil when it is incomplete (cut short or its checksum
    /// fails); throws when it is complete but of another format or malformed.
    /// Formats 1 and 2 hold no ids: their entries' ids are 0, and the next id is 1.
    static func readSnapshot(path: String, generation: UInt64) throws(JournalError) -> RegionBook.Image? {
        let bytes = try system(Syscall.readAll(path))
        guard bytes.count >= headerSize + 8 else { return nil }
        var trailer = ByteReader(bytes[(bytes.count - 4)...])
        guard (try? trailer.uint32()) == CRC32C.checksum(bytes[..<(bytes.count - 4)]) else { return nil }
        let version = try checkHeader(bytes, magic: snapshotMagic, versions: snapshotVersions, generation: generation, path: path)
        var reader = ByteReader(bytes[headerSize..<(bytes.count - 4)])
        var image = RegionBook.Image(nextID: 1, entries: [])
        do throws(MalformedBytes) {
            if version >= 3 { image.nextID = try reader.uint64() }
            let count = try reader.uint32()
            image.entries.reserveCapacity(Int(min(count, 1 << 16)))
            for _ in 0..<count {
                image.entries.append(version >= 3 ? try reader.entry() : try reader.legacyEntry(extended: version >= 2))
            }
        } catch {
            throw .corrupt(path: path, record: image.entries.count + 1, reason: "region \(error.reason)")
        }
        guard reader.isAtEnd else {
            throw .corrupt(path: path, record: nil, reason: "\(reader.remaining) bytes after the last region")
        }
        return image
    }

    /// Writes a snapshot durably: temp file, fsync, rename, fsync of the directory.
    static func writeSnapshot(directory: String, generation: UInt64, image: RegionBook.Image) throws(JournalError) {
        let path = directory + "/" + snapshotName(generation)
        let temporary = path + temporarySuffix
        let descriptor = try system(Syscall.open(temporary, O_WRONLY | O_CREAT | O_TRUNC))
        do {
            try system(Syscall.writeAll(descriptor, encodeSnapshot(generation: generation, image: image), path: temporary))
            try system(Syscall.fsync(descriptor, path: temporary))
            try system(Syscall.close(descriptor, path: temporary))
        } catch {
            _ = Glibc.close(descriptor)
            try? Syscall.unlink(temporary)
            throw error
        }
        try system(Syscall.rename(temporary, to: path))
        try system(Syscall.fsyncDirectory(directory))
    }

    // MARK: Journals

    /// Creates (or empties) a journal file for appending (at its length, with
    /// `pwrite`: it grows by preallocated chunks of zeros), with its header
    /// durable and its name in the directory durable; returns its descriptor.
    static func createJournal(directory: String, generation: UInt64) throws(JournalError) -> (descriptor: Int32, path: String) {
        let path = directory + "/" + journalName(generation)
        let descriptor = try system(Syscall.open(path, O_WRONLY | O_CREAT | O_TRUNC))
        do {
            try system(Syscall.writeAll(descriptor, header(magic: journalMagic, generation: generation, version: journalVersion), path: path))
            try system(Syscall.fsync(descriptor, path: path))
            try system(Syscall.fsyncDirectory(directory))
        } catch {
            _ = Glibc.close(descriptor)
            throw error
        }
        return (descriptor, path)
    }

    /// A damaged record at the end of a journal file.
    struct Tear: Hashable {
        /// 1-based number of the damaged record; nil when the header itself is cut short.
        var record: Int?
        /// What is wrong with it.
        var reason: String
    }

    /// What a journal file holds.
    struct JournalFile {
        /// The file's format version (the current one when its header is to be rewritten).
        var version = journalVersion
        /// The intact records, in order.
        var records: [JournalRecord]
        /// Bytes up to the end of the last intact record (0 when the header is cut short).
        var validLength: Int
        /// The damaged tail, if any: nothing intact follows it.
        var tear: Tear?
        /// The file's size: `validLength`, then zeros preallocated for later
        /// batches (not damage), or the damaged tail.
        var size = 0
        /// Where the next batch goes on from (version 4).
        var chain: BatchChain
    }

    /// Where the next batch of a version 4 journal goes on from.
    struct BatchChain: Hashable {
        /// 1-based number, in the file, of the next batch's first record.
        var nextRecord: UInt64
        /// The CRC32C of the previous batch's records; before the first batch, of the file's header.
        var checksum: UInt32

        /// Before the first batch of journal `generation`.
        init(generation: UInt64) {
            nextRecord = 1
            checksum = CRC32C.checksum(header(magic: journalMagic, generation: generation, version: 4))
        }

        init(nextRecord: UInt64, checksum: UInt32) {
            self.nextRecord = nextRecord
            self.checksum = checksum
        }
    }

    /// Parses a journal file. A damaged record with no intact record after it
    /// is reported as a tear; a damaged record with one after it, a bad header,
    /// or a record whose checksum holds but whose fields do not decode, throws.
    static func parseJournal(_ bytes: [UInt8], path: String, generation: UInt64) throws(JournalError) -> JournalFile {
        let start = BatchChain(generation: generation)
        guard bytes.count >= headerSize else {
            let prefix = min(bytes.count, 4)
            guard bytes.prefix(prefix).elementsEqual(journalMagic.prefix(prefix)) else {
                throw .corrupt(path: path, record: nil, reason: "not a regiond journal (magic is not RGNJ)")
            }
            return JournalFile(records: [], validLength: 0, tear: Tear(record: nil, reason: "header cut short at \(bytes.count) bytes"), chain: start)
        }
        if bytes.prefix(headerSize).allSatisfy({ $0 == 0 }) && !hasIntactFirstFrame(bytes, chain: start) {
            // The header is written and fsync'd before any record is appended,
            // so zeros there with no intact first batch or record after them are
            // a file whose size reached the disk before its data: nothing in it
            // was acknowledged.
            return JournalFile(records: [], validLength: 0, tear: Tear(record: nil, reason: "the header never reached the disk (zeros)"), chain: start)
        }
        let version = try checkHeader(bytes, magic: journalMagic, versions: journalVersions, generation: generation, path: path)
        var file = switch version {
        case 1: try parseRecords(bytes, path: path, chain: start)
        case 2, 3: try parseBatches(bytes, path: path, chain: start)
        default: try parseChainedBatches(bytes, path: path, chain: start)
        }
        file.version = version
        file.size = bytes.count
        return file
    }

    /// Whether an intact batch (of any version) or version 1 record starts right after the header.
    private static func hasIntactFirstFrame(_ bytes: [UInt8], chain: BatchChain) -> Bool {
        if case .intact = chainedBatch(at: headerSize, in: bytes, after: chain) { return true }
        if case .batch = batch(at: headerSize, in: bytes) { return true }
        if case .record = frame(at: headerSize, in: bytes) { return true }
        return false
    }

    /// Version 1: records back to back; a damaged record with an intact one after it is damage.
    private static func parseRecords(_ bytes: [UInt8], path: String, chain: BatchChain) throws(JournalError) -> JournalFile {
        var records: [JournalRecord] = []
        records.reserveCapacity(bytes.count / 24)
        var position = headerSize
        while position < bytes.count {
            if isPreallocated(from: position, in: bytes) { break }
            let number = records.count + 1
            switch frame(at: position, in: bytes) {
            case .record(let record, let end):
                records.append(record)
                position = end
            case .malformed(let reason):
                throw .corrupt(path: path, record: number, reason: reason)
            case .damaged(let reason):
                if hasIntactRecord(after: position, in: bytes) {
                    throw .corrupt(path: path, record: number, reason: reason + ", and intact records follow it")
                }
                return JournalFile(records: records, validLength: position, tear: Tear(record: number, reason: reason), chain: chain)
            }
        }
        return JournalFile(records: records, validLength: position, tear: nil, chain: chain)
    }

    /// Versions 2 and 3: batches; a damaged batch whose tag and byte count
    /// read, with an intact batch where they say it ends, is damage; any
    /// other damaged batch is the write in flight, never acknowledged.
    private static func parseBatches(_ bytes: [UInt8], path: String, chain: BatchChain) throws(JournalError) -> JournalFile {
        var records: [JournalRecord] = []
        records.reserveCapacity(bytes.count / 24)
        var position = headerSize
        while position < bytes.count {
            if isPreallocated(from: position, in: bytes) { break }
            let number = records.count + 1
            guard case .batch(let range) = batch(at: position, in: bytes) else {
                let reason = batchDamage(at: position, in: bytes)
                if let next = declaredEnd(ofBatchAt: position, in: bytes), case .batch = batch(at: next, in: bytes) {
                    throw .corrupt(path: path, record: number, reason: reason + ", and an intact batch follows it")
                }
                return JournalFile(records: records, validLength: position, tear: Tear(record: number, reason: reason), chain: chain)
            }
            try decodeRecords(in: range, of: bytes, into: &records, path: path)
            position = range.upperBound
        }
        return JournalFile(records: records, validLength: position, tear: nil, chain: chain)
    }

    /// Version 4: chained batches. A batch whose header does not check is
    /// the write in flight (or zeros where it should be). A batch whose
    /// header checks but whose records do not is the write in flight too,
    /// unless the next batch's header checks right where it ends: that one
    /// was written after this one's fsync, so this one was acknowledged.
    private static func parseChainedBatches(_ bytes: [UInt8], path: String, chain start: BatchChain) throws(JournalError) -> JournalFile {
        var records: [JournalRecord] = []
        records.reserveCapacity(bytes.count / 24)
        var chain = start
        var position = headerSize
        while position < bytes.count {
            if isPreallocated(from: position, in: bytes) { break }
            let number = records.count + 1
            switch chainedBatch(at: position, in: bytes, after: chain) {
            case .intact(let header, let range):
                try decodeRecords(in: range, of: bytes, into: &records, path: path)
                guard records.count + 1 == number + Int(header.count) else {
                    throw .corrupt(path: path, record: number, reason: "the batch header says \(header.count) records, the batch holds \(records.count + 1 - number)")
                }
                chain = header.next
                position = range.upperBound
            case .damagedRecords(let header, let reason):
                let next = position + chainedBatchHeaderSize + Int(header.size)
                switch chainedBatch(at: next, in: bytes, after: header.next) {
                case .intact, .damagedRecords:
                    throw .corrupt(
                        path: path, record: number,
                        reason: reason + ", and an intact batch follows it (record \(header.next.nextRecord) on, written after this one was fsync'd)")
                case .damagedHeader:
                    return JournalFile(records: records, validLength: position, tear: Tear(record: number, reason: reason), chain: chain)
                }
            case .damagedHeader(let reason):
                return JournalFile(records: records, validLength: position, tear: Tear(record: number, reason: reason), chain: chain)
            }
        }
        return JournalFile(records: records, validLength: position, tear: nil, chain: chain)
    }

    /// Decodes the records of a batch whose checksum holds, appending them to `records`.
    private static func decodeRecords(
        in range: Range<Int>, of bytes: [UInt8], into records: inout [JournalRecord], path: String
    ) throws(JournalError) {
        var inner = range.lowerBound
        while inner < range.upperBound {
            switch frame(at: inner, in: bytes, end: range.upperBound) {
            case .record(let record, let end):
                records.append(record)
                inner = end
            case .malformed(let reason), .damaged(let reason):
                // The batch's checksum holds: these bytes were written as they are.
                throw .corrupt(path: path, record: records.count + 1, reason: reason + " inside an intact batch")
            }
        }
    }

    /// Whether everything from `position` on is zeros: space preallocated
    /// for batches not written yet, the normal end of a journal. (A batch
    /// frame starts with `FF`, a record with a non-zero length, so zeros are
    /// never the start of either.)
    private static func isPreallocated(from position: Int, in bytes: [UInt8]) -> Bool {
        bytes[position...].allSatisfy { $0 == 0 }
    }

    /// A batch as the writer writes it into a file of `version`: records
    /// alone (1), after a batch frame (2, 3), or after a chained header (4);
    /// and where the batch after it goes on from.
    static func framedBatch(
        _ records: [UInt8], count: Int, version: UInt32, after chain: BatchChain
    ) -> (bytes: [UInt8], next: BatchChain) {
        switch version {
        case 1:
            return (records, chain)
        case 2, 3:
            return (batchFrame(for: records) + records, chain)
        default:
            let header = chainedBatchHeader(for: records, count: count, after: chain)
            return (header.bytes + records, header.next)
        }
    }

    /// The header written before a batch of `count` records in a version 4 journal, and the chain after the batch.
    static func chainedBatchHeader(for records: [UInt8], count: Int, after chain: BatchChain) -> (bytes: [UInt8], next: BatchChain) {
        var header = chainedBatchTag
        header.reserveCapacity(chainedBatchHeaderSize)
        header.appendLittleEndian(chain.nextRecord)
        header.appendLittleEndian(UInt32(count))
        header.appendLittleEndian(UInt32(records.count))
        let checksum = CRC32C.checksum(records, continuing: chain.checksum)
        header.appendLittleEndian(checksum)
        header.appendLittleEndian(CRC32C.checksum(header, continuing: chain.checksum))
        return (header, BatchChain(nextRecord: chain.nextRecord + UInt64(count), checksum: checksum))
    }

    /// A version 4 batch header that checks.
    private struct ChainedBatchHeader {
        /// How many records the batch holds.
        var count: UInt32
        /// The byte count of its records.
        var size: UInt32
        /// Where the batch after it goes on from.
        var next: BatchChain
    }

    /// What lies where a version 4 batch should start.
    private enum ChainedBatch {
        /// A batch that checks: its header, and where its records lie.
        case intact(ChainedBatchHeader, Range<Int>)
        /// A header that checks, records that do not (cut short or damaged).
        case damagedRecords(ChainedBatchHeader, String)
        /// No header that checks in the chain here.
        case damagedHeader(String)
    }

    /// Reads the version 4 batch at `position`, which must go on from `chain`.
    private static func chainedBatch(at position: Int, in bytes: [UInt8], after chain: BatchChain) -> ChainedBatch {
        guard position <= bytes.count else { return .damagedHeader("the batch would start past the end of the file") }
        let available = bytes.count - position
        guard available >= chainedBatchHeaderSize else { return .damagedHeader("only \(available) bytes of a batch header") }
        let fields = bytes[position..<(position + chainedBatchHeaderSize - 4)]
        guard fields.prefix(4).elementsEqual(chainedBatchTag) else { return .damagedHeader("no batch header (no RGNB)") }
        var reader = ByteReader(bytes[(position + 4)..<(position + chainedBatchHeaderSize)])
        guard let first = try? reader.uint64(), let count = try? reader.uint32(), let size = try? reader.uint32(),
            let checksum = try? reader.uint32(), let headerChecksum = try? reader.uint32()
        else { return .damagedHeader("only part of a batch header") }
        guard headerChecksum == CRC32C.checksum(fields, continuing: chain.checksum) else {
            return .damagedHeader("batch header checksum mismatch")
        }
        guard first == chain.nextRecord, count > 0, size > 0 else {
            return .damagedHeader("a batch header of record \(first) with \(count) records in \(size) bytes, where record \(chain.nextRecord) goes on")
        }
        let header = ChainedBatchHeader(count: count, size: size, next: BatchChain(nextRecord: first + UInt64(count), checksum: checksum))
        let start = position + chainedBatchHeaderSize
        guard Int(size) <= bytes.count - start else {
            return .damagedRecords(header, "a \(size)-byte batch is cut short at \(bytes.count - start) bytes")
        }
        let records = start..<(start + Int(size))
        guard CRC32C.checksum(bytes[records], continuing: chain.checksum) == checksum else {
            return .damagedRecords(header, "batch checksum mismatch")
        }
        return .intact(header, records)
    }

    /// The frame written before each batch of records (versions 2 and 3).
    static func batchFrame(for records: [UInt8]) -> [UInt8] {
        var frame: [UInt8] = []
        frame.reserveCapacity(batchFrameSize)
        frame.appendLittleEndian(batchTag)
        frame.appendLittleEndian(UInt32(records.count))
        frame.appendLittleEndian(CRC32C.checksum(records))
        return frame
    }

    /// What lies at a batch boundary.
    private enum BatchFrame {
        /// An intact batch: where its records lie.
        case batch(Range<Int>)
        case damaged
    }

    private static func batch(at position: Int, in bytes: [UInt8]) -> BatchFrame {
        guard bytes.count - position >= batchFrameSize else { return .damaged }
        var reader = ByteReader(bytes[position..<(position + batchFrameSize)])
        guard let tag = try? reader.uint32(), tag == batchTag, let size = try? reader.uint32(),
            let checksum = try? reader.uint32(), size > 0
        else { return .damaged }
        let start = position + batchFrameSize
        guard Int(size) <= bytes.count - start else { return .damaged }
        let end = start + Int(size)
        guard CRC32C.checksum(bytes[start..<end]) == checksum else { return .damaged }
        return .batch(start..<end)
    }

    /// Why the batch at `position` does not read, for the log and errors.
    private static func batchDamage(at position: Int, in bytes: [UInt8]) -> String {
        guard bytes.count - position >= batchFrameSize else {
            return "only \(bytes.count - position) bytes of a batch frame"
        }
        var reader = ByteReader(bytes[position..<(position + batchFrameSize)])
        let tag = (try? reader.uint32()) ?? 0
        let size = Int((try? reader.uint32()) ?? 0)
        guard tag == batchTag else { return "no batch frame (\(String(tag, radix: 16)) instead of ffffffff)" }
        guard size <= bytes.count - position - batchFrameSize else {
            return "a \(size)-byte batch is cut short at \(bytes.count - position - batchFrameSize) bytes"
        }
        return "batch checksum mismatch"
    }

    /// Where a damaged version 2 or 3 batch would end if its tag and byte count are right; nil when they cannot be.
    private static func declaredEnd(ofBatchAt position: Int, in bytes: [UInt8]) -> Int? {
        guard bytes.count - position >= batchFrameSize else { return nil }
        var reader = ByteReader(bytes[position..<(position + batchFrameSize)])
        guard let tag = try? reader.uint32(), tag == batchTag, let size = try? reader.uint32(), size > 0 else { return nil }
        return position + batchFrameSize + Int(size)
    }

    /// What lies at one position of a journal file.
    private enum Frame {
        /// An intact record, and where the next one starts.
        case record(JournalRecord, end: Int)
        /// Length or checksum wrong: a torn write, or damage.
        case damaged(String)
        /// The checksum holds but the fields do not decode: written by something else.
        case malformed(String)
    }

    /// Reads the record framed at `position`.
    private static func frame(at position: Int, in bytes: [UInt8], end: Int? = nil) -> Frame {
        let end = end ?? bytes.count
        var reader = ByteReader(bytes[position..<end])
        guard let length = try? reader.uint32(), let checksum = try? reader.uint32() else {
            return .damaged("only \(end - position) bytes of a record's length and checksum")
        }
        let size = Int(length)
        guard (JournalRecord.minimumPayloadSize...JournalRecord.maximumPayloadSize).contains(size) else {
            return .damaged("impossible payload length \(length)")
        }
        let start = position + JournalRecord.frameHeaderSize
        guard size <= end - start else {
            return .damaged("a \(size)-byte payload is cut short at \(end - start) bytes")
        }
        let payload = bytes[start..<(start + size)]
        guard CRC32C.checksum(payload) == checksum else {
            return .damaged("checksum mismatch")
        }
        do {
            return .record(try JournalRecord.decode(payload: payload), end: start + size)
        } catch {
            return .malformed(error.reason)
        }
    }

    /// Whether an intact record starts anywhere after `position`: if one does,
    /// the damage is not a torn tail. Runs only when damage is found.
    private static func hasIntactRecord(after position: Int, in bytes: [UInt8]) -> Bool {
        let last = bytes.count - JournalRecord.frameHeaderSize - JournalRecord.minimumPayloadSize
        guard position + 1 <= last else { return false }
        for candidate in (position + 1)...last {
            if case .record = frame(at: candidate, in: bytes) { return true }
        }
        return false
    }
}
