public import MemoryPool
internal import Glibc

/// An allocated region as the book keeps it and every answer shows it: its
/// identity, place, label, share key, lease and how many references are
/// held. The references themselves (who holds them, with which key) stay in
/// the ``RegionBook``, so that copying a region into an answer never copies
/// them.
public struct SavedRegion: Hashable, Sendable {
    /// The allocation's identity: unique within the state directory, never reused.
    public var id: UInt64
    /// Byte offset of the region on the device.
    public var offset: UInt64
    /// The region's class.
    public var memoryClass: MemoryClass
    /// The label the first request gave, if any.
    public var label: String?
    /// The size the first request asked for, if known (for the bytes lost to rounding up).
    public var requestedSize: UInt64?
    /// The key under which callers share the region, if it is shared.
    public var share: String?
    /// When the region expires, if it has a lease.
    public var lease: Lease?
    /// How many references are held; the last one dropped releases the region.
    public var refs: Int

    /// A lease: the region is released when it ends unless renewed.
    public struct Lease: Hashable, Sendable {
        /// Its length in seconds, used again by a renewal that gives none.
        public var seconds: UInt32
        /// When it ends, in milliseconds since 1970 (wall clock: it survives a restart).
        public var expiresAt: Int64

        public init(seconds: UInt32, expiresAt: Int64) {
            self.seconds = seconds
            self.expiresAt = expiresAt
        }
    }

    /// Makes a saved region.
    public init(
        id: UInt64, offset: UInt64, memoryClass: MemoryClass, label: String? = nil, requestedSize: UInt64? = nil,
        share: String? = nil, lease: Lease? = nil, refs: Int = 1
    ) {
        self.id = id
        self.offset = offset
        self.memoryClass = memoryClass
        self.label = label
        self.requestedSize = requestedSize
        self.share = share
        self.lease = lease
        self.refs = refs
    }
}

extension SavedRegion {
    /// The class size minus the size asked for: what rounding up to a class
    /// costs; 0 when the size asked for is not known.
    public var wastedBytes: UInt64 {
        guard let requestedSize, let size = try? memoryClass.size, requestedSize <= size else { return 0 }
        return size - requestedSize
    }
}

/// One reference held on a region: the request that took it. The first
/// reference is the allocation itself (its id is the region's); each caller
/// that joins a shared region takes one more.
public struct Reference: Hashable, Sendable {
    /// The reference's identity, from the same sequence as region ids.
    public var id: UInt64
    /// That request's `Idempotency-Key`, if any: bound while the reference is held.
    public var key: String?
    /// The size it asked for.
    public var requestedSize: UInt64?
    /// The label it gave, if any.
    public var label: String?
    /// The lease length it asked for, if any (a replay compares it, not the current lease).
    public var ttl: UInt32?

    public init(id: UInt64, key: String? = nil, requestedSize: UInt64? = nil, label: String? = nil, ttl: UInt32? = nil) {
        self.id = id
        self.key = key
        self.requestedSize = requestedSize
        self.label = label
        self.ttl = ttl
    }
}

/// A region with every reference held on it, oldest first: what a snapshot
/// and an allocate record hold.
public struct RegionEntry: Hashable, Sendable {
    public var region: SavedRegion
    public var references: [Reference]

    public init(_ region: SavedRegion, references: [Reference]) {
        self.region = region
        self.references = references
    }
}

extension SavedRegion.Lease {
    /// When the lease ends, in RFC 3339 (UTC, milliseconds): `2026-12-04T04:12:15.250Z`.
    public var expiresAtText: String {
        Self.rfc3339(expiresAt)
    }

    /// Milliseconds since 1970 as `2026-12-04T04:12:15.250Z`.
    static func rfc3339(_ milliseconds: Int64) -> String {
        let (quotient, remainder) = milliseconds.quotientAndRemainder(dividingBy: 1000)
        var seconds = Int(remainder < 0 ? quotient - 1 : quotient)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        let fraction = Int32(milliseconds - Int64(seconds) * 1000)
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(fraction, 3))Z"
    }
}
