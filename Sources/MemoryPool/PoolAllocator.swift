/// The seed's buddy-like pool allocator (hcsshim `internal/memory`), deciding
/// exactly what it decides without scanning.
///
/// The 4 GiB device is a tree. The root is one class-6 region; splitting a
/// class-`k` region makes four class-`k-1` regions at offsets
/// `o + i * size(k-1)`, down to 1 MiB regions of class 0:
///
///     class 6  [                       4 GiB @0                        ]
///     class 5  [ 1 GiB @0  ][ 1 GiB @1G ][ 1 GiB @2G ][ 1 GiB @3G ]
///     class 4  [256M][256M][256M][256M] ...
///      ...
///     class 0  4096 regions of 1 MiB
///
/// Every node that exists is in one of three states: free, allocated
/// (handed out whole), or split (its four children exist). Each state is a
/// bitmap per class, slot `i` of class `k` being the region at offset
/// `i * size(k)`. The tree is always canonical: a node is split exactly when
/// an allocated region lies below it, because `release` merges four free
/// buddies back into their parent.
///
/// Allocation takes the smallest class with a free region and, in it, the
/// lowest free slot: a find-first-set on a summary word (one bit per non-empty
/// bitmap word), then on that word. All state lives inline in the struct
/// (`InlineArray`), so nothing is ever allocated on the heap and the hot path
/// has no copy-on-write uniqueness checks.
public struct PoolAllocator: Sendable {
    /// The size of the device: one class-6 region.
    public static let capacity: UInt64 = 4 * GiB

    /// One bitmap of every class: class 0 has 4096 slots in 64 words, class 1
    /// 1024 in 16, class 2 256 in 4, and classes 3 to 6 fit in one word each
    /// (64 + 16 + 4 + 4 = 88 words).
    private typealias Bitmap = InlineArray<88, UInt64>

    private var free = Bitmap(repeating: 0)
    private var allocated = Bitmap(repeating: 0)
    private var split = Bitmap(repeating: 0)
    /// Per class, bit `w` is set when word `w` of the class's free bitmap is non-zero.
    /// (Counts per class are popcounts of the bitmaps, taken when asked for,
    /// so the hot path keeps no counters.)
    private var freeWords = InlineArray<7, UInt64>(repeating: 0)

    /// Makes a pool with one free 4 GiB region at offset 0.
    public init() {
        setFree(6, 0)
    }

    /// Hands out a whole region of the smallest class that holds `size` bytes,
    /// at the lowest free offset of the smallest class that has one.
    public mutating func allocate(size: UInt64) throws(PoolError) -> Region {
        let (wanted, found, foundSlot) = try lowestFree(for: size)
        var k = found
        var slot = foundSlot
        clearFree(k, slot)
        while k > wanted.rawValue {
            setSplit(k, slot)
            k -= 1
            slot <<= 2
            setFree(k, buddiesOf: slot)
        }
        setAllocated(k, slot)
        return Region(offset: Self.offset(k, slot), memoryClass: wanted)
    }

    /// Where ``allocate(size:)`` would put a region of `size` bytes, without
    /// changing anything: the offset of the lowest free region of the
    /// smallest class that has one (allocating splits it down to its first
    /// child, which starts at the same offset).
    public func placement(size: UInt64) throws(PoolError) -> Region {
        let (wanted, k, slot) = try lowestFree(for: size)
        return Region(offset: Self.offset(k, slot), memoryClass: wanted)
    }

    /// The class `size` needs, and the lowest free node of the smallest class
    /// at or above it that has one: a find-first-set on the summary word, then
    /// on that word.
    private func lowestFree(for size: UInt64) throws(PoolError) -> (wanted: MemoryClass, k: Int, slot: Int) {
        let wanted = memoryClass(for: size)
        guard wanted.isValid else { throw .invalidMemoryClass }
        var k = wanted.rawValue
        while k < MemoryClass.count && freeWords[k] == 0 {
            k += 1
        }
        guard k < MemoryClass.count else { throw .notEnoughSpace }
        let word = freeWords[k].trailingZeroBitCount
        return (wanted, k, word << 6 | free[unchecked: Self.base(k) + word].trailingZeroBitCount)
    }

    /// Gives back the region that starts at `offset`, merging four free
    /// buddies into their parent, up the tree.
    @discardableResult
    public mutating func release(offset: UInt64) throws(PoolError) -> Region {
        guard let (found, foundSlot) = Self.allocatedNode(at: offset, in: allocated.span) else { throw .notAllocated }
        var k = found
        var slot = foundSlot
        clearAllocated(k, slot)
        // Climb while the node's three buddies are free: they merge into the
        // parent. Only the node where the climb stops is marked free.
        while k < MemoryClass.largest.rawValue {
            let first = slot & ~3
            let index = Self.word(k, first)
            let buddies: UInt64 = (0xF & ~(1 &<< (slot & 3))) &<< (first & 63)
            guard free[unchecked: index] & buddies == buddies else { break }
            free[unchecked: index] &= ~buddies
            if free[unchecked: index] == 0 { freeWords[unchecked: k] &= ~(1 &<< (first >> 6)) }
            k += 1
            slot >>= 2
            clearSplit(k, slot)
        }
        setFree(k, slot)
        return Region(offset: offset, memoryClass: MemoryClass(rawValue: found))
    }

    /// Marks one aligned region allocated, splitting its ancestors as needed;
    /// used to rebuild a pool from saved state. Changes nothing when it throws.
    public mutating func restore(offset: UInt64, memoryClass: MemoryClass) throws(RestoreError) {
        guard memoryClass.isValid else { throw .invalidMemoryClass(memoryClass) }
        guard offset % memoryClass.validSize == 0 else {
            throw .misaligned(offset: offset, memoryClass: memoryClass)
        }
        guard offset < Self.capacity else { throw .outOfRange(offset: offset, memoryClass: memoryClass) }
        let target = memoryClass.rawValue
        // Walk down from the root through split nodes to the first free node.
        var k = MemoryClass.largest.rawValue
        var slot = 0
        while k > target && isSet(split, k, slot) {
            k -= 1
            slot = Self.slot(k, offset)
        }
        guard isSet(free, k, slot) else { throw .overlaps(offset: offset, memoryClass: memoryClass) }
        clearFree(k, slot)
        while k > target {
            setSplit(k, slot)
            k -= 1
            let child = Self.slot(k, offset)
            setFree(k, buddiesOf: child)
            slot = child
        }
        setAllocated(k, slot)
    }

    /// The allocated region that starts at `offset`, if there is one.
    public func region(at offset: UInt64) -> Region? {
        Self.allocatedNode(at: offset, in: allocated.span).map { Region(offset: offset, memoryClass: MemoryClass(rawValue: $0.class)) }
    }

    /// Every allocated region, in offset order.
    public var regions: [Region] {
        var result: [Region] = []
        result.reserveCapacity(regionCount)
        collect(MemoryClass.largest.rawValue, 0, into: &result)
        return result
    }

    /// Depth-first walk: children in offset order below each split node.
    private func collect(_ k: Int, _ slot: Int, into result: inout [Region]) {
        if isSet(allocated, k, slot) {
            result.append(Region(offset: Self.offset(k, slot), memoryClass: MemoryClass(rawValue: k)))
        } else if k > 0 && isSet(split, k, slot) {
            for child in slot << 2..<(slot << 2 + 4) {
                collect(k - 1, child, into: &result)
            }
        }
    }

    /// The class and slot of the allocated node that starts at `offset`.
    /// Static, reading the bitmap through a `Span`: as a method called from
    /// `release`, or taking the `InlineArray` itself, it made `release` copy
    /// the struct or the bitmap (a `memcpy` of up to 2 KiB) on every call.
    private static func allocatedNode(at offset: UInt64, in allocated: Span<UInt64>) -> (class: Int, slot: Int)? {
        guard offset < capacity, offset % MiB == 0 else { return nil }
        for k in 0..<MemoryClass.count {
            guard offset % MemoryClass(rawValue: k).validSize == 0 else { return nil }
            let slot = slot(k, offset)
            if allocated[base(k) + slot >> 6] & bit(slot) != 0 { return (k, slot) }
        }
        return nil
    }
}

// MARK: - Bitmaps

extension PoolAllocator {
    /// Index of the first word of class `k` in each bitmap.
    @inline(__always)
    private static func base(_ k: Int) -> Int {
        switch k {
        case 0: 0
        case 1: 64
        case 2: 80
        default: 81 + k  // classes 3, 4, 5 and 6 own words 84, 85, 86 and 87 (`base(7)` is the end)
        }
    }

    @inline(__always)
    private static func slot(_ k: Int, _ offset: UInt64) -> Int {
        Int(truncatingIfNeeded: offset >> UInt64(20 + 2 * k))
    }

    @inline(__always)
    private static func offset(_ k: Int, _ slot: Int) -> UInt64 {
        UInt64(slot) << UInt64(20 + 2 * k)
    }

    /// How many bits of class `k` are set in one of the bitmaps.
    private static func population(of bitmap: Span<UInt64>, _ k: Int) -> Int {
        var total = 0
        for index in base(k)..<base(k + 1) {
            total += bitmap[index].nonzeroBitCount
        }
        return total
    }

    /// The bit of `slot` in its bitmap word.
    @inline(__always)
    private static func bit(_ slot: Int) -> UInt64 {
        1 &<< (slot & 63)
    }

    /// Index of the word that holds `slot` of class `k` in each bitmap. The
    /// hot paths read and write that word with `[unchecked:]`: `k` is a valid
    /// class and `slot` one of its slots by construction (the tests run with
    /// this assertion on), and the bounds checks cost more than the bit work.
    @inline(__always)
    private static func word(_ k: Int, _ slot: Int) -> Int {
        let index = base(k) + slot >> 6
        assert(k >= 0 && k < MemoryClass.count && index < base(k + 1), "slot \(slot) is not in class \(k)")
        return index
    }

    @inline(__always)
    private func isSet(_ bitmap: Bitmap, _ k: Int, _ slot: Int) -> Bool {
        bitmap[Self.base(k) + slot >> 6] & Self.bit(slot) != 0
    }

    @inline(__always)
    private mutating func setFree(_ k: Int, _ slot: Int) {
        free[unchecked: Self.word(k, slot)] |= Self.bit(slot)
        freeWords[unchecked: k] |= 1 &<< (slot >> 6)
    }

    /// Marks the three buddies of `slot` free (the four children of a node
    /// just split, but the one that goes on down).
    @inline(__always)
    private mutating func setFree(_ k: Int, buddiesOf slot: Int) {
        let first = slot & ~3
        free[unchecked: Self.word(k, first)] |= (0xF & ~(1 &<< (slot & 3))) &<< (first & 63)
        freeWords[unchecked: k] |= 1 &<< (first >> 6)
    }

    @inline(__always)
    private mutating func clearFree(_ k: Int, _ slot: Int) {
        let index = Self.word(k, slot)
        free[unchecked: index] &= ~(Self.bit(slot))
        if free[unchecked: index] == 0 { freeWords[unchecked: k] &= ~(1 &<< (slot >> 6)) }
    }

    @inline(__always)
    private mutating func setAllocated(_ k: Int, _ slot: Int) {
        allocated[unchecked: Self.word(k, slot)] |= Self.bit(slot)
    }

    @inline(__always)
    private mutating func clearAllocated(_ k: Int, _ slot: Int) {
        allocated[unchecked: Self.word(k, slot)] &= ~(Self.bit(slot))
    }

    @inline(__always)
    private mutating func setSplit(_ k: Int, _ slot: Int) {
        split[unchecked: Self.word(k, slot)] |= Self.bit(slot)
    }

    @inline(__always)
    private mutating func clearSplit(_ k: Int, _ slot: Int) {
        split[unchecked: Self.word(k, slot)] &= ~(Self.bit(slot))
    }
}

// MARK: - Statistics

extension PoolAllocator {
    /// How many regions of one class are free, handed out, and split.
    public struct ClassCounts: Hashable, Sendable {
        public let memoryClass: MemoryClass
        public let free: Int
        public let allocated: Int
        public let split: Int
        /// The size of a region of this class, in bytes.
        public var size: UInt64 { memoryClass.validSize }
    }

    /// Free, allocated and split counts of every class, smallest class first.
    public var classCounts: [ClassCounts] {
        MemoryClass.all.map {
            ClassCounts(
                memoryClass: $0,
                free: Self.population(of: free.span, $0.rawValue),
                allocated: Self.population(of: allocated.span, $0.rawValue),
                split: Self.population(of: split.span, $0.rawValue)
            )
        }
    }

    /// Bytes handed out.
    public var usedBytes: UInt64 {
        MemoryClass.all.reduce(0) { $0 + UInt64(Self.population(of: allocated.span, $1.rawValue)) * $1.validSize }
    }

    /// Bytes not handed out (possibly too fragmented to allocate in one piece).
    public var freeBytes: UInt64 { Self.capacity - usedBytes }

    /// How many regions are allocated.
    public var regionCount: Int { MemoryClass.all.reduce(0) { $0 + Self.population(of: allocated.span, $1.rawValue) } }

    /// Linux's unusable free space index for `memoryClass` (as
    /// `/sys/kernel/debug/extfrag/unusable_index` gives it per order): the
    /// share of the free bytes, from 0 to 1, that lie in free regions too
    /// small to serve a request of this class. 0 when nothing is free.
    public func unusableIndex(for memoryClass: MemoryClass) -> Double {
        let counts = classCounts
        let free = counts.reduce(UInt64(0)) { $0 + UInt64($1.free) * $1.size }
        guard free > 0 else { return 0 }
        let usable = counts.filter { $0.memoryClass >= memoryClass }.reduce(UInt64(0)) { $0 + UInt64($1.free) * $1.size }
        return Double(free - usable) / Double(free)
    }

    /// The size of the largest region that can be allocated now; 0 when full.
    public var largestFree: UInt64 {
        for k in MemoryClass.all.reversed() where freeWords[k.rawValue] != 0 {
            return k.validSize
        }
        return 0
    }
}
