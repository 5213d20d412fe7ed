import MemoryPool
import Testing

@testable import TestSupport

@Suite struct MemoryClassTests {
    @Test(arguments: [
        (MiB, 0), (MiB + 1, 1), (4 * MiB, 1), (6 * MiB, 2), (16 * MiB, 2), (1 * GiB, 5),
        (2 * GiB, 6), (4 * GiB, 6), (1, 0), (4 * GiB + 1, 7), (0, 22), (UInt64.max, 22),
    ] as [(UInt64, Int)])
    func sizeMapsToTheSeedsClass(size: UInt64, expected: Int) {
        #expect(memoryClass(for: size).rawValue == expected)
    }

    @Test func classSizesGrowByFour() throws {
        let sizes = try MemoryClass.all.map { try $0.size }
        #expect(sizes == [1, 4, 16, 64, 256, 1024, 4096].map { $0 * MiB })
    }

    @Test func classSevenHasNoSize() {
        #expect(throws: PoolError.invalidMemoryClass) { try MemoryClass(rawValue: 7).size }
    }

    @Test func zeroAndOverFourGiBAreInvalid() {
        var pool = PoolAllocator()
        for size: UInt64 in [0, 4 * GiB + 1, .max] {
            #expect(throws: PoolError.invalidMemoryClass) { try pool.allocate(size: size) }
        }
        #expect(pool.regionCount == 0)
    }

    @Test func errorsKeepTheSeedsMessages() {
        #expect(PoolError.invalidMemoryClass.description == "invalid memory class")
        #expect(PoolError.notEnoughSpace.description == "not enough space")
        #expect(PoolError.notAllocated.description == "no memory allocated at the given offset")
    }
}

@Suite struct PoolAllocatorTests {
    @Test func fourThousandNinetySixMebibytesComeBackInOffsetOrder() throws {
        var pool = PoolAllocator()
        for i in 0..<UInt64(4096) {
            let region = try pool.allocate(size: MiB)
            #expect(region.offset == i * MiB)
            #expect(region.size == MiB)
        }
        #expect(throws: PoolError.notEnoughSpace) { try pool.allocate(size: MiB) }
        #expect(pool.largestFree == 0)
        #expect(pool.freeBytes == 0)
    }

    @Test func releasingAnOffsetNeverAllocatedFailsAndChangesNothing() throws {
        var pool = PoolAllocator()
        let region = try pool.allocate(size: 4 * MiB)
        let before = pool.classCounts
        for offset: UInt64 in [MiB, 4 * MiB, 3, 4 * GiB, .max] {
            #expect(throws: PoolError.notAllocated) { try pool.release(offset: offset) }
        }
        #expect(pool.classCounts == before)
        #expect(pool.regions == [region])
    }

    @Test func releasingTwiceFailsAndChangesNothing() throws {
        var pool = PoolAllocator()
        let keep = try pool.allocate(size: MiB)
        let region = try pool.allocate(size: MiB)
        try pool.release(offset: region.offset)
        let before = pool.classCounts
        #expect(throws: PoolError.notAllocated) { try pool.release(offset: region.offset) }
        #expect(pool.classCounts == before)
        #expect(pool.regions == [keep])
    }

    @Test func anAllocationThatSplitsLeavesItsThreeSiblingsFree() throws {
        var pool = PoolAllocator()
        let region = try pool.allocate(size: MiB)
        #expect(region.offset == 0)
        for counts in pool.classCounts {
            let k = counts.memoryClass.rawValue
            #expect(counts.free == (k == 6 ? 0 : 3))
            #expect(counts.split == (k == 0 ? 0 : 1))
            #expect(counts.allocated == (k == 0 ? 1 : 0))
        }
        #expect(try pool.allocate(size: MiB).offset == MiB)
        #expect(try pool.allocate(size: 4 * MiB).offset == 4 * MiB)
    }

    @Test func releasingEverythingMergesBackToOneFreeRegion() throws {
        var pool = PoolAllocator()
        var offsets: [UInt64] = []
        for size in [MiB, 3 * MiB, 5 * MiB, 200 * MiB, MiB, 1 * GiB] {
            offsets.append(try pool.allocate(size: size).offset)
        }
        for offset in offsets.reversed() {
            try pool.release(offset: offset)
        }
        #expect(pool.regionCount == 0)
        #expect(pool.largestFree == 4 * GiB)
        #expect(pool.classCounts.map(\.free) == [0, 0, 0, 0, 0, 0, 1])
        #expect(pool.classCounts.map(\.split) == [0, 0, 0, 0, 0, 0, 0])
    }

    @Test func aFreeSmallRegionAtAHighOffsetIsUsedBeforeSplittingALowerLargerOne() throws {
        var pool = PoolAllocator()
        // Fill the first 4 MiB region with 1 MiB regions, then take 4 MiB @4M.
        let small = try (0..<4).map { _ in try pool.allocate(size: MiB) }
        let large = try pool.allocate(size: 4 * MiB)
        #expect(large.offset == 4 * MiB)
        // Take 1 MiB @8M (splitting the 4 MiB region there, which leaves
        // 9M, 10M and 11M free), then free the four 1 MiB regions @0-3M.
        let high = try pool.allocate(size: MiB)
        #expect(high.offset == 8 * MiB)
        try pool.release(offset: small[0].offset)
        try pool.release(offset: small[1].offset)
        try pool.release(offset: small[2].offset)
        try pool.release(offset: small[3].offset)
        // Offset 0 is now a free 4 MiB region; 9 MiB is a free 1 MiB region.
        #expect(try pool.allocate(size: MiB).offset == 9 * MiB)
    }

    @Test func freeingEveryFourthMebibyteLeavesOneGiBFreeButNoTwoMebibytes() throws {
        var pool = PoolAllocator()
        for _ in 0..<4096 { _ = try pool.allocate(size: MiB) }
        for i in stride(from: UInt64(0), to: 4096, by: 4) {
            try pool.release(offset: i * MiB)
        }
        #expect(pool.freeBytes == 1 * GiB)
        #expect(pool.largestFree == MiB)
        #expect(throws: PoolError.notEnoughSpace) { try pool.allocate(size: 2 * MiB) }
        #expect(pool.freeBytes == 1 * GiB)
    }

    @Test func statisticsCountWholeClasses() throws {
        var pool = PoolAllocator()
        _ = try pool.allocate(size: 5 * 1_000_000)
        #expect(pool.usedBytes == 16 * MiB)
        #expect(pool.freeBytes == 4 * GiB - 16 * MiB)
        #expect(pool.regionCount == 1)
        #expect(pool.largestFree == 1 * GiB)
        #expect(pool.region(at: 0)?.memoryClass == MemoryClass(rawValue: 2))
        #expect(pool.region(at: MiB) == nil)
    }
}

@Suite struct RestoreTests {
    @Test(arguments: [
        (MiB / 2, 0, .misaligned), (MiB, 1, .misaligned), (3 * MiB, 1, .misaligned), (GiB + 4 * MiB, 5, .misaligned),
        (4 * GiB, 0, .outOfRange), (5 * GiB, 6, .misaligned), (UInt64.max - MiB + 1, 0, .outOfRange),
        (0, 7, .invalidMemoryClass), (0, -1, .invalidMemoryClass),
    ] as [(UInt64, Int, RestoreFailure)])
    func restoreRejectsBadRegionsAndChangesNothing(offset: UInt64, memoryClass: Int, failure: RestoreFailure) throws {
        var pool = PoolAllocator()
        let kept = try pool.allocate(size: MiB)
        let before = pool.classCounts
        let memoryClass = MemoryClass(rawValue: memoryClass)
        #expect(throws: failure.error(offset: offset, memoryClass: memoryClass)) {
            try pool.restore(offset: offset, memoryClass: memoryClass)
        }
        #expect(pool.classCounts == before)
        #expect(pool.regions == [kept])
    }

    @Test func restoreRejectsOverlappingRegions() throws {
        var pool = PoolAllocator()
        try pool.restore(offset: 16 * MiB, memoryClass: MemoryClass(rawValue: 2))
        let before = pool.classCounts
        let overlapping: [(UInt64, Int)] = [(16 * MiB, 2), (20 * MiB, 1), (17 * MiB, 0), (0, 3), (0, 6), (0, 5)]
        for (offset, k) in overlapping {
            #expect(throws: RestoreError.overlaps(offset: offset, memoryClass: MemoryClass(rawValue: k))) {
                try pool.restore(offset: offset, memoryClass: MemoryClass(rawValue: k))
            }
        }
        #expect(pool.classCounts == before)
        try pool.restore(offset: 32 * MiB, memoryClass: MemoryClass(rawValue: 2))
        try pool.restore(offset: 0, memoryClass: MemoryClass(rawValue: 0))
        #expect(pool.regions.map(\.offset) == [0, 16 * MiB, 32 * MiB])
    }

    @Test func aPoolRebuiltByRestoreMakesTheSameDecisions() throws {
        var generator = SplitMix64(seed: 42)
        var original = PoolAllocator()
        var live: [UInt64] = []
        for _ in 0..<3000 {
            if live.isEmpty || generator.next() % 3 != 0 {
                if let region = try? original.allocate(size: 1 + generator.next() % (64 * MiB)) {
                    live.append(region.offset)
                }
            } else {
                let index = Int(generator.next() % UInt64(live.count))
                try original.release(offset: live.remove(at: index))
            }
        }
        var rebuilt = PoolAllocator()
        for region in original.regions.shuffled(using: &generator) {
            try rebuilt.restore(offset: region.offset, memoryClass: region.memoryClass)
        }
        #expect(rebuilt.classCounts == original.classCounts)
        #expect(rebuilt.regions == original.regions)
        for _ in 0..<2000 {
            let size = 1 + generator.next() % (256 * MiB)
            #expect(Result { () throws(PoolError) in try rebuilt.allocate(size: size) } == Result { () throws(PoolError) in try original.allocate(size: size) })
        }
        #expect(rebuilt.classCounts == original.classCounts)
    }
}

/// Which ``RestoreError`` a bad region gets, without its offset and class.
enum RestoreFailure: Sendable {
    case invalidMemoryClass
    case misaligned
    case outOfRange

    func error(offset: UInt64, memoryClass: MemoryClass) -> RestoreError {
        switch self {
        case .invalidMemoryClass: .invalidMemoryClass(memoryClass)
        case .misaligned: .misaligned(offset: offset, memoryClass: memoryClass)
        case .outOfRange: .outOfRange(offset: offset, memoryClass: memoryClass)
        }
    }
}
