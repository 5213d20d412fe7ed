/// One MiB, the size of the smallest memory class.
public let MiB: UInt64 = 1 << 20
/// One GiB.
public let GiB: UInt64 = 1 << 30

/// A size class of the pool: class `k` holds regions of `1 MiB << (2 * k)` bytes.
///
/// Values of 7 and above exist (``memoryClass(for:)`` returns them for sizes
/// the pool cannot hold) but have no size.
public struct MemoryClass: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The class number; 0 ... 6 are valid.
    public let rawValue: Int

    /// How many valid classes there are (1 MiB ... 4 GiB).
    public static let count = 7
    /// The largest valid class: one region that spans the whole 4 GiB device.
    public static let largest = MemoryClass(rawValue: count - 1)
    /// Every valid class, smallest first.
    public static let all = (0..<count).map { MemoryClass(rawValue: $0) }

    /// Makes a class from its number; any number is accepted, see ``isValid``.
    public init(rawValue: Int) {
        self.rawValue = rawValue
    }

    /// Whether the class is one of the seven the pool has.
    public var isValid: Bool { rawValue >= 0 && rawValue < Self.count }

    /// The size of a region of this class, in bytes.
    public var size: UInt64 {
        get throws(PoolError) {
            guard isValid else { throw .invalidMemoryClass }
            return MiB << (2 * UInt64(rawValue))
        }
    }

    /// The size of a valid class, for callers that have already checked it.
    var validSize: UInt64 { MiB << (2 * UInt64(rawValue)) }

    public var description: String { String(rawValue) }

    public static func < (lhs: MemoryClass, rhs: MemoryClass) -> Bool {
        lhs.rawValue < rhs.rawValue
    }
}

/// The smallest class that holds `size` bytes, computed as the seed's
/// `GetMemoryClassType` does: `(size - 1) >> 20`, then count the `>> 2` steps
/// that reach 0. There is no validity check: size 0 wraps around to class 22,
/// and anything above 4 GiB lands on class 7 or more.
public func memoryClass(for size: UInt64) -> MemoryClass {
    var s = (size &- 1) >> 20
    var steps = 0
    while s > 0 {
        s >>= 2
        steps += 1
    }
    return MemoryClass(rawValue: steps)
}
