import Foundation
import MemoryPool
import Testing

@testable import RegionState
@testable import TestSupport

/// State directories written by regiond 6b39034 (journal format 3 with
/// shares, leases, renewals and keys; a snapshot of format 2), loaded by
/// this code: every region comes back as that regiond listed it, with an
/// id, the same ids at every load, and every key it bound replays.
///
/// `scripts/make-state-fixture.py` drove that binary over HTTP and stopped
/// it with SIGTERM; `<name>.expected.json` holds its `GET /regions` answer
/// just before the stop, when it was (`writtenAt`), and each request sent
/// with an `Idempotency-Key`.
@Suite struct Compatibility6b39034Tests {
    enum Fixture: String, CaseIterable, Sendable, CustomTestStringConvertible {
        /// Two rounds of shares, joins, leases, a renewal, a release and a batch in one journal.
        case journalOnly = "6b39034-journal"
        /// Leases expiring until a compaction, then the snapshot and the journal after it.
        case snapshotAndJournal = "6b39034-snapshot"

        var testDescription: String { rawValue }

        var files: [String] {
            switch self {
            case .journalOnly: ["journal-0000000000000000"]
            case .snapshotAndJournal: ["journal-0000000000000001", "snapshot-0000000000000001"]
            }
        }

        var directory: String { fixturesDirectory + "/" + rawValue }

        func expected() throws -> Expected {
            let data = try Data(contentsOf: URL(fileURLWithPath: directory + ".expected.json"))
            return try JSONDecoder().decode(Expected.self, from: data)
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

    /// What the fixture's JSON holds.
    struct Expected: Decodable {
        struct Listed: Decodable, Equatable {
            var offset: UInt64
            var size: UInt64
            var `class`: Int
            var label: String?
            var share: String?
            var refs: Int?
            var expiresAt: String?
        }

        struct Keyed: Decodable {
            struct Asked: Decodable {
                var size: UInt64
                var label: String?
                var share: String?
                var ttl: UInt32?
            }

            var key: String
            var offset: UInt64
            var request: Asked
        }

        var writtenAt: Int64
        var regions: [Listed]
        var keyed: [Keyed]
    }

    /// The clocks as they were when the fixture was written: no lease has ended.
    func clock(_ expected: Expected) -> LeaseClock {
        LeaseClock(wallMilliseconds: { expected.writtenAt }, monotonic: { ContinuousClock.now })
    }

    func listed(_ region: SavedRegion) -> Expected.Listed {
        Expected.Listed(
            offset: region.offset, size: region.memoryClass.validSizeForTests, class: region.memoryClass.rawValue, label: region.label,
            share: region.share, refs: region.share == nil ? nil : region.refs, expiresAt: region.lease?.expiresAtText)
    }

    func load(_ directory: String, _ expected: Expected) throws -> (RegionService, Journal) {
        let journal = try Journal(directory: directory, logger: testLogger())
        let service = RegionService(journal: journal, logger: testLogger(), clock: clock(expected))
        try service.load()
        return (service, journal)
    }

    @Test(arguments: Fixture.allCases)
    func everyRegionComesBackAsListedWithAnIdThatNeverChanges(fixture: Fixture) throws {
        let copy = try fixture.copy()
        let expected = try fixture.expected()
        let (service, journal) = try load(copy.path, expected)
        let first = try service.listing()
        journal.close()
        #expect(first.map(listed) == expected.regions)
        #expect(Set(first.map(\.id)).count == first.count && !first.contains { $0.id == 0 })
        for name in fixture.files {
            #expect(try Data(contentsOf: URL(fileURLWithPath: copy.path + "/" + name)) == Data(contentsOf: URL(fileURLWithPath: fixture.directory + "/" + name)))
        }
        let (again, reloaded) = try load(copy.path, expected)
        defer { reloaded.close() }
        #expect(try again.listing() == first, "the same ids at every load")
    }

    @Test(arguments: Fixture.allCases)
    func everyKeyThatRegiondBoundReplaysAndNewIdsFollowTheOldOnes(fixture: Fixture) throws {
        let copy = try fixture.copy()
        let expected = try fixture.expected()
        let (service, journal) = try load(copy.path, expected)
        let listedBefore = try service.listing()
        for keyed in expected.keyed {
            let asked = keyed.request
            let request = RegionService.Request(size: asked.size, label: asked.label, key: keyed.key, share: asked.share, ttl: asked.ttl)
            let outcome = waitFor { service.allocate(request, completion: $0) }
            if keyed.key.hasSuffix("-gone") {
                // Released before the fixture was written: the key went with it.
                guard case .success(.created(let region, _)) = outcome else { Issue.record("\(keyed.key): \(outcome)"); continue }
                _ = waitFor { service.release(offset: region.offset, id: region.id, completion: $0) }
            } else if fixture == .snapshotAndJournal && keyed.key == "before-lease" {
                // Renewed before the compaction: format 2 snapshots kept only the renewed lease.
                #expect(outcome.failure == .keyReused(key: keyed.key))
            } else {
                guard case .success(.replayed(let region, _)) = outcome else { Issue.record("\(keyed.key): \(outcome)"); continue }
                #expect(region.offset == keyed.offset, "\(keyed.key)")
            }
        }
        #expect(try service.listing() == listedBefore)
        let newest = listedBefore.map(\.id).max()!
        let created = waitFor { service.allocate(RegionService.Request(size: 1 << 20, label: "after"), completion: $0) }
        #expect(try created.get().region.id > newest)
        journal.close()
        let (again, reloaded) = try load(copy.path, expected)
        defer { reloaded.close() }
        #expect(try again.listing() == (listedBefore + [try created.get().region]).sorted { $0.offset < $1.offset })
    }
}

/// `Tests/RegionStateTests/Fixtures`, found from this file.
private let fixturesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("Fixtures").path
