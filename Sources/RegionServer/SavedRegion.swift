public import MemoryPool

/// A region as saved: what restore needs, plus the operator's label and idempotency key.
public struct SavedRegion: Hashable, Sendable {
    public var offset: UInt64
    public var memoryClass: MemoryClass
    public var label: String?
    public var idempotencyKey: String?

    public init(offset: UInt64, memoryClass: MemoryClass, label: String? = nil, idempotencyKey: String? = nil) {
        self.offset = offset
        self.memoryClass = memoryClass
        self.label = label
        self.idempotencyKey = idempotencyKey
    }
}
