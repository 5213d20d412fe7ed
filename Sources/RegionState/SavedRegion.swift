public import MemoryPool

/// A region as saved: what restore needs, plus the operator's label and idempotency key.
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

    /// Makes a saved region.
    public init(
        offset: UInt64, memoryClass: MemoryClass, label: String? = nil, idempotencyKey: String? = nil,
        requestedSize: UInt64? = nil
    ) {
        self.offset = offset
        self.memoryClass = memoryClass
        self.label = label
        self.idempotencyKey = idempotencyKey
        self.requestedSize = requestedSize
    }
}
