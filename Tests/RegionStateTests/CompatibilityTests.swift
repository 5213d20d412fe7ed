import Dispatch
import Foundation
import MemoryPool
import Locking
import Testing

@testable import RegionState
@testable import TestSupport

/// State directories written by the last released regiond (5e232cf: journal
/// and snapshot format 1), loaded by this code: every region comes back as
/// that regiond listed it, and appends go on in the files' old format.
///
/// The fixtures were made by driving the released binary over HTTP and
/// stopping it with SIGTERM; `Fixtures/<name>.expected.json` is its
/// `GET /regions` answer just before the stop. Every test works on a copy:
/// loading creates `lock` and may cut torn tails.
@Suite struct CompatibilityTests {
    /// A state directory written by regiond 5e232cf.
    enum Fixture: String, CaseIterable, Sendable, CustomTestStringConvertible {
        /// No snapshot: 43 records (allocations of classes 0 to 3, releases) in one journal.
        case journalOnly = "5e232cf-journal"
        /// The snapshot of the compaction after 65,537 records, then the 5 records after it.
        case snapshotAndJournal = "5e232cf-snapshot"

        var testDescription: String { rawValue }

        /// Its files as regiond left them, without `lock`.
        var files: [String] {
            switch self {
            case .journalOnly: ["journal-0000000000000000"]
            case .snapshotAndJournal: ["journal-0000000000000001", "snapshot-0000000000000001"]
            }
        }

        /// The journal that takes new records.
        var journalName: String { files[0] }

        /// How many regions the listing holds, so that an empty listing cannot pass.
        var regionCount: Int {
            switch self {
            case .journalOnly: 29
            case .snapshotAndJournal: 14
            }
        }

        /// The `Idempotency-Key` and size of every live region's request that
        /// had a key, by the offset it got. The listing shows neither; regions
        /// allocated without a key have neither (5e232cf kept the size only with a key).
        var keyed: [UInt64: (key: String, size: UInt64)] {
            switch self {
            case .journalOnly:
                [
                    0: ("key-001", MiB),
                    1 * MiB: ("key-100", MiB),
                    2 * MiB: ("key-013", MiB / 2),
                    8 * MiB: ("key-004", 4 * MiB),
                    16 * MiB: ("key-005", 5_000_000),
                    55 * MiB: ("key-026", 123_456),
                    60 * MiB: ("key-023", 3 * MiB),
                    64 * MiB: ("key-007", 50 * MiB),
                    192 * MiB: ("key-011", 12 * MiB),
                    // The key of a region released earlier, bound again.
                    224 * MiB: ("key-017", 16 * MiB),
                    320 * MiB: ("key-016", 17 * MiB),
                    384 * MiB: ("key-020", 64 * MiB),
                    448 * MiB: ("key-025", 33 * MiB),
                    512 * MiB: ("key-027", MiB),
                    513 * MiB: ("key-031", MiB),
                    528 * MiB: ("key-029", 15 * MiB),
                ]
            case .snapshotAndJournal:
                [
                    0: ("snap-001", MiB),
                    2 * MiB: ("snap-008", MiB / 4),
                    4 * MiB: ("snap-002", 4 * MiB),
                    // Allocated after the snapshot, where a snapshot region was released.
                    32 * MiB: ("snap-100", 4 * MiB),
                    48 * MiB: ("snap-012", 9 * MiB),
                    64 * MiB: ("snap-004", 64 * MiB),
                    128 * MiB: ("snap-009", 20 * MiB),
                ]
            }
        }

        /// The committed fixture directory.
        var directory: String { fixturesDirectory + "/" + rawValue }

        /// The regions as 5e232cf listed them, with the keys and sizes of `keyed`.
        func expectedRegions() throws -> [SavedRegion] {
            let data = try Data(contentsOf: URL(fileURLWithPath: fixturesDirectory + "/" + rawValue + ".expected.json"))
            let listing = try JSONDecoder().decode(Listing.self, from: data)
            #expect(listing.regions.count == regionCount)
            #expect(Set(keyed.keys).isSubset(of: listing.regions.map(\.offset)), "a keyed offset is not in the listing")
            return listing.regions.map { entry in
                let memoryClass = MemoryClass(rawValue: entry.memoryClass)
                // "size" in a listing is the size of the class.
                #expect((try? memoryClass.size) == entry.size, "offset \(entry.offset)")
                // Ids are given at load; `withoutID` compares the rest.
                return SavedRegion(
                    id: 0, offset: entry.offset, memoryClass: memoryClass, label: entry.label,
                    requestedSize: keyed[entry.offset]?.size)
            }
        }

        /// A copy of the fixture in a new temporary directory.
        func copy() throws -> TemporaryDirectory {
            let copy = try TemporaryDirectory()
            for name in files {
                try FileManager.default.copyItem(atPath: directory + "/" + name, toPath: copy.path + "/" + name)
            }
            return copy
        }
    }

    /// The body of `GET /regions`.
    struct Listing: Decodable {
        struct Entry: Decodable {
            var offset: UInt64
            var size: UInt64
            var memoryClass: Int
            var label: String?

            enum CodingKeys: String, CodingKey {
                case offset, size, label
                case memoryClass = "class"
            }
        }

        var regions: [Entry]
    }

    @Test(arguments: Fixture.allCases)
    func theFixtureHoldsOnlyFilesOfFormat1(fixture: Fixture) throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: fixture.directory)
        #expect(names.sorted() == fixture.files.sorted())
        for name in fixture.files {
            #expect(try formatVersion(ofFile: fixture.directory + "/" + name) == 1, "\(name)")
        }
    }

    @Test(arguments: Fixture.allCases)
    func everyRegionComesBackAsTheReleasedRegiondListedIt(fixture: Fixture) throws {
        let copy = try fixture.copy()
        let expected = try fixture.expectedRegions()
        do {
            let journal = try Journal(directory: copy.path, logger: testLogger())
            defer { journal.close() }
            let book = try journal.load(now: LeaseClock.system.now())
            #expect(book.regions.values.sorted { $0.offset < $1.offset }.map(\.withoutID) == expected)
            #expect(book.pool.regions == expected.map { Region(offset: $0.offset, memoryClass: $0.memoryClass) })
            // Every region gets an id, in the order the records give them.
            #expect(book.regions.values.map(\.id).sorted() == Array(Set(book.regions.values.map(\.id))).sorted())
            #expect(!book.regions.values.contains { $0.id == 0 })
        }
        // Loading intact files of the old format leaves their bytes alone.
        for name in fixture.files {
            #expect(try contents(copy.path + "/" + name) == contents(fixture.directory + "/" + name), "\(name)")
        }
    }

    @Test(arguments: Fixture.allCases)
    func recordsAppendedAfterLoadingStayInFormat1AndAReloadSeesThem(fixture: Fixture) throws {
        let copy = try fixture.copy()
        let journalPath = copy.path + "/" + fixture.journalName
        let before = try contents(journalPath)
        var expected = try fixture.expectedRegions()
        let released = expected.removeFirst()
        let appended: [JournalRecord]
        do {
            let journal = try Journal(directory: copy.path, logger: testLogger())
            defer { journal.close() }
            let book = try journal.load(now: LeaseClock.system.now())
            var pool = book.pool
            let free = try pool.allocate(size: 3 * MiB)
            let added = SavedRegion(
                id: book.nextID, offset: free.offset, memoryClass: free.memoryClass, label: "after the upgrade",
                requestedSize: 3 * MiB)
            let reference = Reference(id: book.nextID, key: "key-after-upgrade", requestedSize: 3 * MiB, label: added.label)
            appended = [.release(offset: released.offset), .allocate(RegionEntry(added, references: [reference]))]
            try appendAndWait(journal, appended)
            expected.append(added.withoutID)
            expected.sort { $0.offset < $1.offset }
        }

        // The old records stay as they were, the new ones follow them
        // unbatched, as format 1 has them, and the header still says 1;
        // after them only the zeros preallocated for later records.
        var records: [UInt8] = []
        for record in appended { record.appendFramed(to: &records) }
        let after = try contents(journalPath)
        #expect(Array(after.prefix(before.count + records.count)) == before + records)
        #expect(after.dropFirst(before.count + records.count).allSatisfy { $0 == 0 })
        #expect(try formatVersion(ofFile: journalPath) == 1)
        let names = try FileManager.default.contentsOfDirectory(atPath: copy.path)
        #expect(names.sorted() == (fixture.files + [StateFiles.lockName]).sorted())
        for name in fixture.files where name != fixture.journalName {
            #expect(try contents(copy.path + "/" + name) == contents(fixture.directory + "/" + name), "\(name)")
        }

        let journal = try Journal(directory: copy.path, logger: testLogger())
        defer { journal.close() }
        let book = try journal.load(now: LeaseClock.system.now())
        #expect(book.regions.values.sorted { $0.offset < $1.offset }.map(\.withoutID) == expected)
        #expect(book.pool.regions == expected.map { Region(offset: $0.offset, memoryClass: $0.memoryClass) })
    }

    @Test(arguments: Fixture.allCases)
    func theServiceListsTheRegionsAndReplaysTheirKeys(fixture: Fixture) throws {
        let copy = try fixture.copy()
        let journal = try Journal(directory: copy.path, logger: testLogger())
        defer { journal.close() }
        let service = RegionService(journal: journal, logger: testLogger())
        try service.load()
        let expected = try fixture.expectedRegions()
        let listed = try service.listing()
        #expect(listed.map(\.withoutID) == expected)
        // A request sent again with its key gets the region 5e232cf gave it, and the same id.
        for region in listed {
            guard let (key, size) = fixture.keyed[region.offset] else { continue }
            let request = RegionService.Request(size: size, label: region.label, key: key)
            let outcome = waitFor { service.allocate(request, completion: $0) }
            #expect(outcome == .success(.replayed(region, ref: region.id)), "key \(key)")
        }
        #expect(try service.listing() == listed)
    }
}

// MARK: - Helpers

extension SavedRegion {
    /// The region with id 0: what a listing of a regiond before ids shows.
    var withoutID: SavedRegion {
        var region = self
        region.id = 0
        return region
    }
}

/// `Tests/RegionStateTests/Fixtures`, found from this file.
private let fixturesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("Fixtures").path

/// The bytes of a file.
private func contents(_ path: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: path)))
}

/// The format version in a state file's header: UInt32 LE after the magic.
private func formatVersion(ofFile path: String) throws -> UInt32 {
    let header = try contents(path).prefix(StateFiles.headerSize)
    #expect(header.count == StateFiles.headerSize, "\(path) has no whole header")
    return header.dropFirst(4).prefix(4).reversed().reduce(0) { $0 << 8 | UInt32($1) }
}

/// Appends `records` one by one and waits until every one is durable.
private func appendAndWait(_ journal: Journal, _ records: [JournalRecord]) throws {
    let done = DispatchGroup()
    let failure = Locked<JournalError?>(nil)
    for record in records {
        done.enter()
        try journal.append(record) { result in
            if case .failure(let error) = result { failure.withLock { $0 = $0 ?? error } }
            done.leave()
        }
    }
    done.wait()
    if let error = failure.withLock({ $0 }) { throw error }
}

