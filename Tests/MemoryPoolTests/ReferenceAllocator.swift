import MemoryPool

// The benchmarks compile this file too: `Benchmarks/Benchmarks/PoolBenchmarks/ReferenceAllocator.swift` is a symbolic link to it.

/// A deliberately simple allocator that follows the seed allocator's rules
/// (hcsshim `internal/memory`) word for word: a size maps to the smallest
/// class that holds it; allocation takes the lowest free offset of the
/// smallest class that has a free region and splits it into four, class by
/// class, down to the wanted one; release frees the region and merges four
/// free buddies back into their parent, class by class. Like the seed, it
/// keeps maps of free, allocated and split regions per class, scanned
/// linearly for the lowest offset. It is the oracle for the model-based test
/// and the baseline of the benchmark; it is not fast.
struct ReferenceAllocator {
    /// Per class: offsets of free regions.
    private(set) var free: [[UInt64: Bool]] = Array(repeating: [:], count: 7)
    /// Per class: offsets of allocated regions.
    private(set) var allocated: [[UInt64: Bool]] = Array(repeating: [:], count: 7)
    /// Per class: offsets of regions split into four children.
    private(set) var split: [[UInt64: Bool]] = Array(repeating: [:], count: 7)

    init() {
        free[6][0] = true
    }

    static func size(_ k: Int) -> UInt64 { (1 << 20) << (2 * UInt64(k)) }

    mutating func allocate(size: UInt64) throws(PoolError) -> Region {
        let c = memoryClass(for: size).rawValue
        guard c < 7 else { throw .invalidMemoryClass }
        for m in c..<7 {
            var lowest: UInt64?
            for offset in free[m].keys where lowest == nil || offset < lowest! {
                lowest = offset
            }
            guard let offset = lowest else { continue }
            free[m][offset] = nil
            var j = m
            while j > c {
                split[j][offset] = true
                j -= 1
                for i in 1...3 {
                    free[j][offset + UInt64(i) * Self.size(j)] = true
                }
            }
            allocated[c][offset] = true
            return Region(offset: offset, memoryClass: MemoryClass(rawValue: c))
        }
        throw .notEnoughSpace
    }

    mutating func release(offset: UInt64) throws(PoolError) -> Region {
        var found: Int?
        for k in 0..<7 where allocated[k][offset] != nil {
            found = k
        }
        guard let c = found else { throw .notAllocated }
        allocated[c][offset] = nil
        free[c][offset] = true
        var k = c
        var o = offset
        while k < 6 {
            let parent = o - o % Self.size(k + 1)
            let buddies = (0..<4).map { parent + UInt64($0) * Self.size(k) }
            guard buddies.allSatisfy({ free[k][$0] != nil }) else { break }
            for b in buddies { free[k][b] = nil }
            split[k + 1][parent] = nil
            free[k + 1][parent] = true
            k += 1
            o = parent
        }
        return Region(offset: offset, memoryClass: MemoryClass(rawValue: c))
    }

    /// Every allocated region, sorted by offset.
    var regions: [Region] {
        (0..<7).flatMap { k in allocated[k].keys.map { Region(offset: $0, memoryClass: MemoryClass(rawValue: k)) } }
            .sorted { $0.offset < $1.offset }
    }

    var usedBytes: UInt64 {
        (0..<7).reduce(0) { $0 + UInt64(allocated[$1].count) * Self.size($1) }
    }

    var largestFree: UInt64 {
        (0..<7).last { !free[$0].isEmpty }.map(Self.size) ?? 0
    }

    var classCounts: [[Int]] {
        (0..<7).map { [free[$0].count, allocated[$0].count, split[$0].count] }
    }
}
