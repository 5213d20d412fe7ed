/// A region handed out by the pool: the seed's `MappedRegion`.
public struct Region: Hashable, Sendable {
    /// Byte offset of the region on the device; a multiple of ``size``.
    public let offset: UInt64
    /// The region's class.
    public let memoryClass: MemoryClass

    /// Makes a region of a valid class.
    public init(offset: UInt64, memoryClass: MemoryClass) {
        precondition(memoryClass.isValid, "a region needs a valid memory class")
        self.offset = offset
        self.memoryClass = memoryClass
    }

    /// The size of the region's class, in bytes: the whole class is handed out.
    public var size: UInt64 { memoryClass.validSize }
}
