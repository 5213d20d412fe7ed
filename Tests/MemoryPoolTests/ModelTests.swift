import Foundation
import MemoryPool
import Testing

@testable import TestSupport

/// Runs the bitmap allocator and the linear-scan reference side by side.
@Suite struct ModelTests {
    /// Sizes that hit every class, both sides of every class edge, and the invalid ones.
    static let interestingSizes: [UInt64] = [0, 1, MiB, MiB + 1, 4 * GiB, 4 * GiB + 1, .max]
        + MemoryClass.all.flatMap { k -> [UInt64] in
            let size = MiB << (2 * UInt64(k.rawValue))
            return [size - 1, size, size + 1]
        }

    /// A class number, small ones far more often, so the pool fills with many regions.
    static func skewedClass(_ generator: inout SplitMix64) -> UInt64 {
        let weights: [UInt64] = [0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 4, 5, 6]
        return weights[Int(generator.next() % UInt64(weights.count))]
    }

    /// Four seeds; one under `REGIOND_QUICK=1` (the sanitizer runs), where each step is many times slower.
    static let seeds: [UInt64] = ProcessInfo.processInfo.environment["REGIOND_QUICK"] == "1" ? [1] : [1, 2, 3, 4]

    @Test(arguments: seeds)
    func bitmapAllocatorDecidesExactlyAsTheReference(seed: UInt64) throws {
        var generator = SplitMix64(seed: seed)
        var pool = PoolAllocator()
        var reference = ReferenceAllocator()
        var live: [UInt64] = []
        for step in 0..<50_000 {
            let roll = generator.next() % 100
            // Lean towards allocating, then towards releasing, so the pool
            // swings between empty and full.
            let allocating = (step / 10_000) % 2 == 0 ? roll < 75 : roll < 25
            if allocating {
                let size = roll % 4 == 0
                    ? Self.interestingSizes[Int(generator.next() % UInt64(Self.interestingSizes.count))]
                    : 1 + generator.next() % (MiB << (2 * Self.skewedClass(&generator)))
                let expected = Result { () throws(PoolError) in try reference.allocate(size: size) }
                // Where it would go, asked first, is where it goes.
                let placed = Result { () throws(PoolError) in try pool.placement(size: size) }
                let actual = Result { () throws(PoolError) in try pool.allocate(size: size) }
                try #require(placed == actual, "step \(step): placement(size: \(size))")
                try #require(actual == expected, "step \(step): allocate(size: \(size))")
                if case .success(let region) = actual { live.append(region.offset) }
            } else {
                let offset: UInt64
                if !live.isEmpty && roll % 5 != 0 {
                    offset = live.remove(at: Int(generator.next() % UInt64(live.count)))
                } else {
                    offset = roll % 2 == 0 ? generator.next() % (4 * GiB) : (generator.next() % 4096) * MiB
                }
                let expected = Result { () throws(PoolError) in try reference.release(offset: offset) }
                let actual = Result { () throws(PoolError) in try pool.release(offset: offset) }
                try #require(actual == expected, "step \(step): release(offset: \(offset))")
                if case .success = actual { live.removeAll { $0 == offset } }
            }
            try #require(pool.classCounts.map { [$0.free, $0.allocated, $0.split] } == reference.classCounts, "step \(step)")
            try #require(pool.usedBytes == reference.usedBytes)
            try #require(pool.largestFree == reference.largestFree)
            if step % 1_000 == 0 {
                try #require(pool.regions == reference.regions, "step \(step)")
            }
        }
    }
}
