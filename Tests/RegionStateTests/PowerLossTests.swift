import Dispatch
import Foundation
import Locking
import MemoryPool
@testable import RegionState
@testable import TestSupport
import Testing

/// Power loss, replayed: a real journal run is recorded at the system-call
/// layer (every write with its bytes, fsync, fdatasync, truncate,
/// preallocation, rename, unlink and directory fsync, and the moment each
/// append was answered durable), then the state directory is rebuilt as a
/// power loss at each point would have left it, and loaded by a fresh journal.
///
/// The persisted-prefix model: a file holds what its last fsync made durable,
/// plus some of what was written after it; a directory holds the entries of
/// its last fsync. What lands of the unsynced writes is varied: nothing,
/// everything, the last write cut at a byte (the file ends there), the last
/// write's tail reading as the preallocated zeros, or a random subset of the
/// 4 KiB blocks they touched. With the entries of the directory as they are
/// (not only as fsync'd), nothing or everything of the unsynced writes.
@Suite struct PowerLossTests {
    @Test func everyAcknowledgedChangeSurvivesAPowerLossAtEveryPointOfARunWithACompaction() throws {
        let clock = ContinuousClock()
        let started = clock.now
        let run = try RecordedRun(seed: 17, groups: 260, compactAfter: 150)
        #expect(run.compactions >= 1)
        #expect(run.trace.contains { if case .operation(.rename) = $0 { true } else { false } }, "a snapshot was written")

        var disk = Disk()
        var random = SplitMix64(seed: 7)
        var tally = Tally()
        var acknowledged: UInt64 = 0
        var written = 0
        var points = 0
        for entry in run.trace + [nil] {
            if case .acknowledged(let sequence)? = entry {
                acknowledged = max(acknowledged, sequence)
                continue
            }
            points += 1
            let allowed = run.states(acknowledged: acknowledged, writtenBatches: written)
            for state in disk.crashStates(using: &random) {
                try tally.check(state, allowed: allowed)
            }
            guard case .operation(let operation)? = entry else { break }
            if run.isBatchWrite(operation) { written += 1 }
            disk.apply(operation)
        }
        let elapsed = clock.now - started
        print("power-loss: \(tally.states) crash states at \(points) crash points (\(tally.kinds.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")); \(run.batches) batches, \(run.compactions) compactions), \(tally.lost) lost, \(tally.refusals) refusals, in \(elapsed) (loads \(tally.loadTime))")
        #expect(points >= 300 && tally.states >= 300)
        #expect(tally.lost == 0)
        #expect(tally.refusals == 0)
    }
}

// MARK: - The recorded run

/// One thing that happened during the run, in order.
private enum TraceEntry: Sendable {
    case operation(Syscall.FileOperation)
    /// An append's completion reported its records, up to this sequence number, durable.
    case acknowledged(UInt64)
}

/// A journal driven through appends of records whose bytes hold what the
/// frames use (`ff ff ff ff`, `RGNB`, `RGNJ`, maximum values), with compactions.
private struct RecordedRun {
    /// Everything the journal did to its directory, and every acknowledgement.
    var trace: [TraceEntry]
    /// The live regions after each batch boundary: `states[i]` after the first `i` batches.
    var states: [[UInt64: SavedRegion]] = []
    /// The sequence number of the last record of each batch.
    var boundaries: [UInt64] = []
    var compactions = 0
    var batches: Int { boundaries.count }

    init(seed: UInt64, groups: Int, compactAfter: Int) throws {
        let directory = try TemporaryDirectory()
        let recorder = Locked<[TraceEntry]>([])
        Syscall.observe(directory.path) { operation in recorder.withLock { $0.append(.operation(operation)) } }
        defer { Syscall.stopObserving(directory.path) }

        let journal = try Journal(directory: directory.path, compactAfter: compactAfter, logger: testLogger())
        _ = try journal.load()
        var random = SplitMix64(seed: seed)
        var workload = Workload()
        var records: [JournalRecord] = []
        var pending = DispatchGroup()
        for group in 0..<groups {
            let batch = (0..<Int.random(in: 1...3, using: &random)).map { _ in workload.nextRecord(using: &random) }
            records += batch
            let last = UInt64(records.count)
            pending.enter()
            try journal.append(batch) { [pending] result in
                if case .success = result { recorder.withLock { $0.append(.acknowledged(last)) } }
                pending.leave()
            }
            if journal.needsCompaction {
                journal.compact(image: workload.book.image)
                compactions += 1
            }
            // Now and then wait, so that batches hold one append or several.
            if group % 2 == 1 {
                pending.wait()
                pending = DispatchGroup()
            }
        }
        pending.wait()
        journal.close()
        trace = recorder.withLock { $0 }

        var book = RegionBook()
        states = [book.regions]
        var sequence: UInt64 = 0
        for case .operation(let operation) in trace where isBatchWrite(operation) {
            guard case .write(_, _, let bytes) = operation else { continue }
            let count = bytes[12..<16].reversed().reduce(0) { $0 << 8 | UInt64($1) }
            book = expectedBook(after: Array(records[Int(sequence)..<Int(sequence + count)]), from: book)
            sequence += count
            boundaries.append(sequence)
            states.append(book.regions)
        }
    }

    /// Whether `operation` writes a batch into a journal (as opposed to a header or a snapshot).
    func isBatchWrite(_ operation: Syscall.FileOperation) -> Bool {
        guard case .write(let path, _, let bytes) = operation else { return false }
        return path.split(separator: "/").last!.hasPrefix(StateFiles.journalPrefix) && bytes.starts(with: StateFiles.chainedBatchTag)
    }

    /// The states a load may show: at a batch boundary, with every
    /// acknowledged record, and no record not yet written.
    func states(acknowledged: UInt64, writtenBatches: Int) -> ArraySlice<[UInt64: SavedRegion]> {
        let first = boundaries.firstIndex { $0 >= acknowledged }.map { $0 + 1 } ?? 0
        return states[(acknowledged == 0 ? 0 : first)...writtenBatches]
    }
}

/// Valid records against a book of its own, with the byte patterns of the frames in them.
private struct Workload {
    var pool = PoolAllocator()
    /// What the records so far amount to: compactions snapshot it.
    var book = RegionBook()
    var nextID: UInt64 = 1

    /// Labels holding the tags of the frames as text, and long ones that make batches span 4 KiB blocks.
    static let labels: [String?] = [nil, "RGNB", "RGNJ RGNB RGNS", "ÿÿÿÿ RGNB", String(repeating: "RGNB", count: 300), String(repeating: "RGNB ÿ", count: 500), ""]
    /// Sizes and expiries whose bytes are all `ff`, or hold `RGNB`.
    static let sizes: [UInt64?] = [nil, UInt64.max, 0xFFFF_FFFF, 0x4247_4E52_FFFF_FFFF, MiB]
    static let expiries: [Int64] = [-1, Int64(bitPattern: 0xFFFF_FFFF_4247_4E52), 0x7FFF_FFFF_FFFF_FFFF]
    /// Ids whose bytes are `ff ff ff ff` or hold `RGNB`, among plain ones.
    static let idSteps: [UInt64] = [1, 1, 1, 0xFFFF_FFFF, 0x4247_4E52]

    mutating func takeID(using random: inout SplitMix64) -> UInt64 {
        nextID += Self.idSteps.randomElement(using: &random)!
        return nextID
    }

    mutating func nextRecord(using random: inout SplitMix64) -> JournalRecord {
        let record = makeRecord(using: &random)
        try! book.apply(record, now: testNow)
        return record
    }

    private mutating func makeRecord(using random: inout SplitMix64) -> JournalRecord {
        let live = book.regions
        let kind = live.isEmpty ? 0 : Int.random(in: 0..<10, using: &random)
        let offsets = live.keys.sorted()
        switch kind {
        case 0...3:
            guard let got = try? pool.allocate(size: [MiB, 64 * MiB, 4096].randomElement(using: &random)!) else { fallthrough }
            let id = takeID(using: &random)
            let label = Self.labels.randomElement(using: &random)!
            let size = Self.sizes.randomElement(using: &random)!
            var region = SavedRegion(id: id, offset: got.offset, memoryClass: got.memoryClass, label: label, requestedSize: size)
            if Bool.random(using: &random) { region.share = "share RGNB" }
            if Bool.random(using: &random) { region.lease = SavedRegion.Lease(seconds: UInt32.max, expiresAt: Self.expiries.randomElement(using: &random)!) }
            let key = Bool.random(using: &random) ? "RGNB-key-\(id)" : nil
            return .allocate(RegionEntry(region, references: [Reference(id: id, key: key, requestedSize: size, label: label, ttl: UInt32.max)]))
        case 4:
            let offset = offsets.randomElement(using: &random)!
            _ = try? pool.release(offset: offset)
            return .release(offset: offset, id: live[offset]!.id)
        case 5, 6:
            // A renew ends in the expiry's bytes: the record after it follows `ff ff ff ff`.
            let offset = offsets.randomElement(using: &random)!
            return .renew(offset: offset, id: live[offset]!.id, SavedRegion.Lease(seconds: UInt32.max, expiresAt: -1))
        case 7, 8:
            guard let offset = offsets.filter({ live[$0]?.share != nil }).randomElement(using: &random) else { fallthrough }
            let reference = Reference(id: takeID(using: &random), key: "RGNB", requestedSize: UInt64.max, label: "ÿÿ")
            return .addReference(offset: offset, id: live[offset]!.id, reference)
        default:
            guard let offset = offsets.filter({ live[$0]!.refs > 1 }).randomElement(using: &random) else {
                let offset = offsets.randomElement(using: &random)!
                return .renew(offset: offset, id: live[offset]!.id, SavedRegion.Lease(seconds: 1, expiresAt: -1))
            }
            return .dropReference(offset: offset, id: live[offset]!.id, ref: book.newestReference(at: offset)!.id)
        }
    }
}

// MARK: - The disk after a power loss

/// Files and directory entries as the recorded operations left them: what
/// is durable, and what was done since.
private struct Disk {
    /// A change to a file's bytes not yet made durable by its fsync.
    enum Change {
        case write(offset: Int, bytes: [UInt8])
        case truncate(length: Int)
        case preallocate(offset: Int, length: Int)
    }

    struct File {
        var durable: [UInt8] = []
        var changes: [Change] = []
    }

    var files: [File] = []
    /// File names and the files they name now.
    var entries: [String: Int] = [:]
    /// As of the last directory fsync.
    var durableEntries: [String: Int] = [:]

    mutating func apply(_ operation: Syscall.FileOperation) {
        switch operation {
        case .create(let path, let truncate):
            if let file = entries[name(path)] {
                if truncate { files[file].changes.append(.truncate(length: 0)) }
            } else {
                entries[name(path)] = files.count
                files.append(File())
            }
        case .write(let path, let offset, let bytes):
            files[entries[name(path)]!].changes.append(.write(offset: offset, bytes: bytes))
        case .sync(let path):
            let file = entries[name(path)]!
            files[file].durable = Self.applying(files[file].changes, to: files[file].durable)
            files[file].changes = []
        case .truncate(let path, let length):
            files[entries[name(path)]!].changes.append(.truncate(length: length))
        case .preallocate(let path, let offset, let length):
            files[entries[name(path)]!].changes.append(.preallocate(offset: offset, length: length))
        case .rename(let from, let to):
            entries[name(to)] = entries.removeValue(forKey: name(from))
        case .unlink(let path):
            entries[name(path)] = nil
        case .syncDirectory:
            durableEntries = entries
        }
    }

    /// How much of the unsynced changes landed.
    enum Landed: String {
        case nothing, everything, torn, zeroFilled, blocks
    }

    /// The directories a power loss now could leave: name → bytes (without `lock`).
    func crashStates(using random: inout SplitMix64) -> [(kind: String, files: [String: [UInt8]])] {
        let unsynced = durableEntries.values.contains { !files[$0].changes.isEmpty }
        var kinds: [(Landed, [String: Int], String)] = [(.nothing, durableEntries, "synced")]
        if unsynced {
            kinds.append((.everything, durableEntries, "prefix"))
            for _ in 0..<2 {
                kinds += [(.torn, durableEntries, "torn"), (.zeroFilled, durableEntries, "zero-filled"), (.blocks, durableEntries, "blocks")]
            }
        }
        if entries != durableEntries {
            kinds += [(.nothing, entries, "entries"), (.everything, entries, "entries")]
        }
        return kinds.map { landed, entries, kind in
            var state: [String: [UInt8]] = [:]
            for (name, file) in entries where name != StateFiles.lockName {
                state[name] = contents(of: files[file], landed, using: &random)
            }
            return (kind, state)
        }
    }

    /// A file's bytes after a power loss, with `landed` of its unsynced changes.
    private func contents(of file: File, _ landed: Landed, using random: inout SplitMix64) -> [UInt8] {
        guard !file.changes.isEmpty else { return file.durable }
        switch landed {
        case .nothing:
            return file.durable
        case .everything:
            return Self.applying(file.changes, to: file.durable)
        case .torn, .zeroFilled:
            guard let last = file.changes.lastIndex(where: { if case .write = $0 { true } else { false } }),
                case .write(let offset, let bytes) = file.changes[last]
            else { return Self.applying(file.changes, to: file.durable) }
            var before = Self.applying(Array(file.changes[..<last]), to: file.durable)
            let cut = Int.random(in: 0..<bytes.count, using: &random)
            let landedBytes = landed == .torn ? Array(bytes[..<cut]) : Array(bytes[..<cut]) + [UInt8](repeating: 0, count: bytes.count - cut)
            Self.write(landedBytes, at: offset, into: &before)
            return before
        case .blocks:
            let after = Self.applying(file.changes, to: file.durable)
            var result = after
            var touched = Set<Int>()
            for case .write(let offset, let bytes) in file.changes where !bytes.isEmpty {
                touched.formUnion((offset / 4096)...((offset + bytes.count - 1) / 4096))
            }
            for block in touched.sorted() where Bool.random(using: &random) {
                let start = block * 4096
                let end = min(start + 4096, after.count)
                guard start < end else { continue }
                let kept = file.durable.count > start ? Array(file.durable[start..<min(end, file.durable.count)]) : []
                result.replaceSubrange(start..<end, with: kept + [UInt8](repeating: 0, count: end - start - kept.count))
            }
            return result
        }
    }

    static func applying(_ changes: [Change], to bytes: [UInt8]) -> [UInt8] {
        var bytes = bytes
        for change in changes {
            switch change {
            case .write(let offset, let data): write(data, at: offset, into: &bytes)
            case .truncate(let length):
                if length < bytes.count { bytes.removeSubrange(length...) } else { bytes += [UInt8](repeating: 0, count: length - bytes.count) }
            case .preallocate(let offset, let length):
                if offset + length > bytes.count { bytes += [UInt8](repeating: 0, count: offset + length - bytes.count) }
            }
        }
        return bytes
    }

    static func write(_ data: [UInt8], at offset: Int, into bytes: inout [UInt8]) {
        if offset + data.count > bytes.count { bytes += [UInt8](repeating: 0, count: offset + data.count - bytes.count) }
        bytes.replaceSubrange(offset..<(offset + data.count), with: data)
    }

    private func name(_ path: String) -> String {
        String(path.split(separator: "/").last!)
    }
}

// MARK: - Loading each state

/// What the crash states showed.
private struct Tally {
    var states = 0
    var lost = 0
    var refusals = 0
    var kinds: [String: Int] = [:]
    var loadTime = Duration.zero
    /// Fingerprints of the states already loaded: each distinct state counts once.
    var seen: Set<Int> = []

    /// Loads `state` with a fresh journal; it must start and show one of `allowed`.
    mutating func check(_ state: (kind: String, files: [String: [UInt8]]), allowed: ArraySlice<[UInt64: SavedRegion]>) throws {
        var hasher = Hasher()
        for (name, bytes) in state.files.sorted(by: { $0.key < $1.key }) {
            hasher.combine(name)
            bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
        }
        guard seen.insert(hasher.finalize()).inserted else { return }
        states += 1
        kinds[state.kind, default: 0] += 1

        let loadStarted = ContinuousClock.now
        defer { loadTime += ContinuousClock.now - loadStarted }
        let directory = try TemporaryDirectory()
        for (name, bytes) in state.files {
            _ = FileManager.default.createFile(atPath: directory.path + "/" + name, contents: Data(bytes))
        }
        let journal = try Journal(directory: directory.path, logger: testLogger())
        defer { journal.close() }
        do {
            let regions = try journal.load().regions
            if !allowed.contains(regions) {
                lost += 1
                Issue.record("a \(state.kind) state lost acknowledged records or holds part of a batch: \(state.files.keys.sorted())")
            }
        } catch {
            refusals += 1
            Issue.record("a \(state.kind) state did not load: \(error)")
        }
    }
}
