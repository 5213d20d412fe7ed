public import MemoryPool

/// Why the region service refused a request. It says nothing about HTTP:
/// the routes map each case to a status and a code.
public indirect enum RegionError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The size is 0 or over 4 GiB: no class fits it.
    case invalidMemoryClass
    /// No free region of the class or larger; `largestFree` is the largest size that can be allocated now.
    case notEnoughSpace(largestFree: UInt64)
    /// Nothing is allocated at the offset.
    case notAllocated
    /// The idempotency key was used for a request with another size or label.
    case keyReused(key: String)
    /// The journal could not take the change; it was not made.
    case unavailable
    /// The state is still loading.
    case loading
    /// The share key names a region of another class.
    case shareConflict(share: String, memoryClass: MemoryClass)
    /// A renewal of a region that has no lease.
    case notLeased
    /// The shared region holds as many references as it may.
    case tooManyReferences(limit: Int)
    /// A release of a whole allocation that more than one reference holds.
    case referencesHeld(Int)
    /// The item at `index` of a batch failed; the batch did nothing.
    case batchItem(index: Int, RegionError)

    public var description: String {
        switch self {
        case .invalidMemoryClass: "\(PoolError.invalidMemoryClass): the size must be from 1 byte to 4 GiB"
        case .notEnoughSpace: "\(PoolError.notEnoughSpace)"
        case .notAllocated: "\(PoolError.notAllocated)"
        case .keyReused(let key): "key \(key) is bound to a request with another size, label, share or ttl"
        case .unavailable: "the change could not be written to the journal; it was not made"
        case .loading: "the state is still loading"
        case .shareConflict(let share, let memoryClass):
            "share \(share) is a class \(memoryClass) region; this size needs another class"
        case .notLeased: "the region has no lease"
        case .tooManyReferences(let limit): "the region holds \(limit) references, the most it may"
        case .referencesHeld(let count): "\(count) references are held on the region"
        case .batchItem(let index, let error): "item \(index): \(error); nothing in the batch was allocated"
        }
    }
}
