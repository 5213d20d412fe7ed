internal import MemoryPool
internal import RegionState

/// The body of `POST /regions`; unknown fields are ignored.
struct AllocateBody {
    let size: UInt64
    let label: String?

    /// Reads `{"size": N, "label": "..."}`: `size` an integer from 0 to
    /// `UInt64.max`, `label` a string when present (`null` is not one).
    init?(_ json: JSONValue) {
        guard case .object = json, let size = json["size"]?.unsignedInteger else { return nil }
        self.size = size
        switch json["label"] {
        case nil: label = nil
        case .string(let text): label = text
        default: return nil
        }
    }
}

/// A region on the wire: `{"offset", "size", "class"}` plus `"label"` when given.
struct RegionBody: Encodable {
    let offset: UInt64
    let size: UInt64
    let memoryClass: Int
    let label: String?

    enum CodingKeys: String, CodingKey {
        case offset, size
        case memoryClass = "class"
        case label
    }

    init(_ region: SavedRegion) {
        offset = region.offset
        size = try! region.memoryClass.size  // saved regions always have a valid class
        memoryClass = region.memoryClass.rawValue
        label = region.label
    }
}

/// `GET /regions`.
struct RegionListBody: Encodable {
    let regions: [RegionBody]
}

/// `GET /pool`: usage, and per class the /proc/buddyinfo-like counts.
struct PoolBody: Encodable {
    struct ClassBody: Encodable {
        let memoryClass: Int
        let size: UInt64
        let free: Int
        let allocated: Int
        let split: Int

        enum CodingKeys: String, CodingKey {
            case memoryClass = "class"
            case size, free, allocated, split
        }
    }

    let capacity: UInt64
    let usedBytes: UInt64
    let freeBytes: UInt64
    let regionCount: Int
    let largestFree: UInt64
    let classes: [ClassBody]

    init(_ pool: PoolAllocator) {
        capacity = PoolAllocator.capacity
        usedBytes = pool.usedBytes
        freeBytes = pool.freeBytes
        regionCount = pool.regionCount
        largestFree = pool.largestFree
        classes = pool.classCounts.map {
            ClassBody(
                memoryClass: $0.memoryClass.rawValue, size: $0.size, free: $0.free, allocated: $0.allocated,
                split: $0.split)
        }
    }
}

/// `GET /livez`, `/healthz`, `/readyz`.
struct StatusBody: Encodable {
    let status: String
}
