public import MemoryPool

/// A region as saved: what restore needs, plus the operator's label and
/// idempotency key, its share key and the references held on it, and its lease.
public struct SavedRegion: Hashable, Sendable {
    /// Byte offset of the region on the device.
    public var offset: UInt64
    /// The region's class.
    public var memoryClass: MemoryClass
    /// The label the operator gave when allocating, if any.
    public var label: String?
    /// The `Idempotency-Key` of the request that allocated it, if any.
    public var idempotencyKey: String?
    /// The size that request asked for (a repeat must ask for the same), if known.
    public var requestedSize: UInt64?
    /// The key under which callers share the region, if it is shared.
    public var share: String?
    /// The references taken after the first, oldest first; a release drops the newest.
    public var sharers: [Sharer] = []
    /// When the region expires, if it has a lease.
    public var lease: Lease?

    /// How many references are held: the first request's, and one per sharer.
    public var refs: Int { 1 + sharers.count }

    /// A reference taken on a shared region by a later request.
    public struct Sharer: Hashable, Sendable {
        /// That request's `Idempotency-Key`, if any.
        public var idempotencyKey: String?
        /// The size it asked for.
        public var requestedSize: UInt64
        /// The label it gave, if any (the region keeps the first request's).
        public var label: String?

        public init(idempotencyKey: String?, requestedSize: UInt64, label: String?) {
            self.idempotencyKey = idempotencyKey
            self.requestedSize = requestedSize
            self.label = label
        }
    }

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
        offset: UInt64, memoryClass: MemoryClass, label: String? = nil, idempotencyKey: String? = nil,
        requestedSize: UInt64? = nil, share: String? = nil, sharers: [Sharer] = [], lease: Lease? = nil
    ) {
        self.share = share
        self.sharers = sharers
        self.lease = lease
        self.offset = offset
        self.memoryClass = memoryClass
        self.label = label
        self.idempotencyKey = idempotencyKey
        self.requestedSize = requestedSize
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
