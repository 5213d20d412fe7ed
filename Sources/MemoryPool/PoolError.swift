/// The seed's three allocator errors, with its messages.
public enum PoolError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The size maps to no class (0 bytes, or more than 4 GiB).
    case invalidMemoryClass
    /// No free region of the class or of any larger class.
    case notEnoughSpace
    /// The offset is not the start of a region that is allocated now.
    case notAllocated

    public var description: String {
        switch self {
        case .invalidMemoryClass: "invalid memory class"
        case .notEnoughSpace: "not enough space"
        case .notAllocated: "no memory allocated at the given offset"
        }
    }
}

/// Why ``PoolAllocator/restore(offset:memoryClass:)`` refused a region.
public enum RestoreError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The class is not one of the seven.
    case invalidMemoryClass(MemoryClass)
    /// The offset is not a multiple of the class size.
    case misaligned(offset: UInt64, memoryClass: MemoryClass)
    /// The region does not end within the 4 GiB device.
    case outOfRange(offset: UInt64, memoryClass: MemoryClass)
    /// The region overlaps one that is already allocated.
    case overlaps(offset: UInt64, memoryClass: MemoryClass)

    public var description: String {
        switch self {
        case .invalidMemoryClass(let memoryClass):
            "invalid memory class \(memoryClass)"
        case .misaligned(let offset, let memoryClass):
            "offset \(offset) is not aligned to the size of class \(memoryClass)"
        case .outOfRange(let offset, let memoryClass):
            "a class \(memoryClass) region at offset \(offset) does not fit on the device"
        case .overlaps(let offset, let memoryClass):
            "a class \(memoryClass) region at offset \(offset) overlaps an allocated region"
        }
    }
}
