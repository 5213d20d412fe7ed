internal import Glibc
internal import MemoryPool
internal import MicroHTTP
internal import RegionState

/// Why a request body was refused: the detail of a 400 `invalid_request`,
/// and for a batch the index of the item. Every body reader throws it.
struct BodyError: Error, Equatable {
    var detail: String
    var index: Int?
}

/// The body of `POST /regions` and of each batch item; unknown fields are ignored.
struct AllocateBody {
    let size: UInt64
    let label: String?
    let share: String?
    let ttl: UInt32?

    /// The longest label or share key, in Unicode scalars: what JSON
    /// Schema's `maxLength` counts (at most 1,024 UTF-8 bytes).
    static let maximumText = 256
    /// The longest lease: 30 days.
    static let ttlRange: ClosedRange<UInt64> = 1...2_592_000
    /// What a body that is no allocation request is told.
    static let shape =
        "the body must be a JSON object with an integer \"size\" from 0 to 18446744073709551615 and an optional string \"label\""

    /// Reads `{"size": N, "label": "...", "share": "...", "ttl": S}` from bytes.
    static func read(_ bytes: [UInt8]) throws(BodyError) -> AllocateBody {
        guard let json = JSONValue.parse(bytes) else { throw BodyError(detail: shape) }
        return try read(json)
    }

    /// Reads `{"size": N, "label": "...", "share": "...", "ttl": S}`: `size`
    /// an integer from 0 to `UInt64.max`; `label` a string of at most 256
    /// characters and `share` one of 1 to 256, when present
    /// (`null` is not a string); `ttl` an integer from 1 to 2592000 seconds
    /// when present.
    static func read(_ json: JSONValue) throws(BodyError) -> AllocateBody {
        guard case .object = json, let size = json["size"]?.unsignedInteger else { throw BodyError(detail: shape) }
        var texts: [String: String] = [:]
        for name in ["label", "share"] {
            switch json[name] {
            case nil: continue
            case .string(let text) where ((name == "label" ? 0 : 1)...maximumText).contains(text.unicodeScalars.count):
                texts[name] = text
            case .string:
                throw BodyError(
                    detail: name == "label"
                        ? "the label is longer than \(maximumText) characters" : "the share key must be 1 to \(maximumText) characters")
            default:
                throw BodyError(detail: "\"\(name)\" must be a string")
            }
        }
        var ttl: UInt32?
        if let given = json["ttl"] {
            guard let seconds = given.unsignedInteger, ttlRange.contains(seconds) else {
                throw BodyError(detail: "\"ttl\" must be an integer number of seconds from 1 to 2592000 (30 days)")
            }
            ttl = UInt32(seconds)
        }
        return AllocateBody(size: size, label: texts["label"], share: texts["share"], ttl: ttl)
    }
}

/// A region on the wire: `{"id", "offset", "size", "class"}` plus `"label"`
/// when given, `"share"` and `"refs"` when shared, `"expiresAt"` (RFC 3339,
/// UTC) when leased, and `"ref"` when the answer concerns one reference (the
/// one a `POST` took or a `DELETE` dropped).
struct RegionBody: Encodable {
    let id: UInt64
    let ref: UInt64?
    let offset: UInt64
    let size: UInt64
    let memoryClass: Int
    let label: String?
    let share: String?
    let refs: Int?
    let expiresAt: String?

    enum CodingKeys: String, CodingKey {
        case id, ref, offset, size
        case memoryClass = "class"
        case label, share, refs, expiresAt
    }

    /// The region as it is (`refs` 0 for a shared region just released), with the reference `ref`.
    init(_ region: SavedRegion, ref: UInt64? = nil) {
        id = region.id
        self.ref = ref
        offset = region.offset
        size = try! region.memoryClass.size  // saved regions always have a valid class
        memoryClass = region.memoryClass.rawValue
        label = region.label
        share = region.share
        refs = region.share == nil ? nil : region.refs
        expiresAt = region.lease?.expiresAtText
    }
}

/// `POST /regions/{offset}/renew`: an optional `{"ttl": S}`.
struct RenewBody {
    let ttl: UInt32?

    static func read(_ bytes: [UInt8]) throws(BodyError) -> RenewBody {
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) { return RenewBody(ttl: nil) }
        let refused = BodyError(
            detail: "the body must be empty or a JSON object with an optional integer \"ttl\" from 1 to 2592000 seconds")
        guard let json = JSONValue.parse(bytes), case .object = json else { throw refused }
        guard let given = json["ttl"] else { return RenewBody(ttl: nil) }
        guard let seconds = given.unsignedInteger, AllocateBody.ttlRange.contains(seconds) else { throw refused }
        return RenewBody(ttl: UInt32(seconds))
    }
}

/// `POST /regions/batch`: `{"regions": [item, ...]}`, 1 to 1024 items.
struct BatchBody {
    let items: [AllocateBody]

    static let itemLimit = 1024

    static func read(_ bytes: [UInt8]) throws(BodyError) -> BatchBody {
        guard let json = JSONValue.parse(bytes), case .object = json, case .array(let items)? = json["regions"],
            (1...itemLimit).contains(items.count)
        else {
            throw BodyError(detail: "the body must be a JSON object with \"regions\": an array of 1 to \(itemLimit) items")
        }
        var read: [AllocateBody] = []
        for (index, item) in items.enumerated() {
            do throws(BodyError) {
                read.append(try AllocateBody.read(item))
            } catch {
                throw BodyError(detail: "item \(index): \(error.detail)", index: index)
            }
        }
        return BatchBody(items: read)
    }
}

/// `GET /regions`.
struct RegionListBody: Encodable {
    let regions: [RegionBody]
}

/// `GET /pool`: usage, per class the /proc/buddyinfo-like counts and the
/// unusable free space index, and the bytes lost to rounding up to a class.
struct PoolBody: Encodable {
    struct ClassBody: Encodable {
        let memoryClass: Int
        let size: UInt64
        let free: Int
        let allocated: Int
        let split: Int
        let unusableIndex: Double

        enum CodingKeys: String, CodingKey {
            case memoryClass = "class"
            case size, free, allocated, split, unusableIndex
        }
    }

    let capacity: UInt64
    let usedBytes: UInt64
    let freeBytes: UInt64
    let regionCount: Int
    let largestFree: UInt64
    let wastedBytes: UInt64
    let classes: [ClassBody]

    init(_ pool: PoolAllocator, wastedBytes: UInt64) {
        self.wastedBytes = wastedBytes
        capacity = PoolAllocator.capacity
        usedBytes = pool.usedBytes
        freeBytes = pool.freeBytes
        regionCount = pool.regionCount
        largestFree = pool.largestFree
        classes = pool.classCounts.map {
            ClassBody(
                memoryClass: $0.memoryClass.rawValue, size: $0.size, free: $0.free, allocated: $0.allocated,
                split: $0.split, unusableIndex: pool.unusableIndex(for: $0.memoryClass))
        }
    }
}

/// `GET /livez`, `/healthz`, `/readyz`.
struct StatusBody: Encodable {
    let status: String
}
