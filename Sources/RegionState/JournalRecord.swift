internal import MemoryPool

/// One change to the book of regions. Records written since journal
/// format 4 name the region (and reference) they act on by id; records of
/// older formats name only an offset (their ids are `nil`, and the ids of
/// what they allocate are 0), and the ``RegionBook`` gives their regions
/// and references ids as it replays them, in order, the same ones each time.
public enum JournalRecord: Hashable, Sendable {
    /// A region was handed out, with the references taken on it (one, except
    /// in records of older formats and when undoing a release).
    case allocate(RegionEntry)
    /// The region `id` at `offset` was given back (its last reference, or its lease ended).
    case release(offset: UInt64, id: UInt64? = nil)
    /// One more reference was taken on the shared region `id` at `offset`.
    case addReference(offset: UInt64, id: UInt64?, Reference)
    /// The reference `ref` on the region `id` at `offset` was dropped; others
    /// remain. Without `ref` (older formats), the newest one.
    case dropReference(offset: UInt64, id: UInt64?, ref: UInt64?)
    /// The lease of the region `id` at `offset` was renewed.
    case renew(offset: UInt64, id: UInt64?, SavedRegion.Lease)
}

// MARK: - Binary encoding
//
// Record:  [payload length UInt32 LE][CRC32C of payload UInt32 LE][payload]
// Payload: type, then by type (integers little-endian):
//   1 allocate   offset UInt64, class byte, requested size UInt64 (0 when
//                unknown: no request asks for 0 bytes and succeeds), label,
//                idempotency key
//   2 release    offset UInt64
//   3 allocate   as 1, then share key, lease (seconds UInt32, 0 for none;
//                expiry Int64 ms since 1970), sharer count UInt16 and each
//                sharer (key, requested size UInt64, label)
//   4 add a reference      offset UInt64, key, requested size UInt64, label
//   5 drop a reference     offset UInt64 (the newest reference)
//   6 renew                offset UInt64, seconds UInt32, expiry Int64
//   7 allocate   an entry: id UInt64, offset UInt64, class byte, requested
//                size UInt64, label, share key, lease seconds UInt32 and
//                expiry Int64, reference count UInt32 and each reference
//   8 release              offset UInt64, id UInt64
//   9 add a reference      offset UInt64, id UInt64, a reference
//  10 drop a reference     offset UInt64, id UInt64, reference id UInt64
//  11 renew                offset UInt64, id UInt64, seconds UInt32, expiry Int64
// An id of 0 in records 8 to 11 names no particular region or reference
// (whatever is at the offset; the newest reference); in an entry or a
// reference, it is one for the book to give when it applies the record.
// Reference: id UInt64, key, requested size UInt64 (0 unknown), label, ttl UInt32 (0 none).
// String:  UInt16 byte count (0xFFFF means nil), then the UTF-8 bytes.
// Types 1-6 were written before ids (journal formats 1 to 3) and are only
// read; types 7-11 are what this code writes, in files of every format.

extension JournalRecord {
    static let allocateType: UInt8 = 1
    static let releaseType: UInt8 = 2
    static let extendedAllocateType: UInt8 = 3
    static let addReferenceType: UInt8 = 4
    static let dropReferenceType: UInt8 = 5
    static let renewType: UInt8 = 6
    static let identifiedAllocateType: UInt8 = 7
    static let identifiedReleaseType: UInt8 = 8
    static let identifiedAddReferenceType: UInt8 = 9
    static let identifiedDropReferenceType: UInt8 = 10
    static let identifiedRenewType: UInt8 = 11
    /// Bytes before the payload: its length and its checksum.
    static let frameHeaderSize = 8
    /// The shortest payload: a release of format 1.
    static let minimumPayloadSize = 9
    /// The longest payload: an allocate with one reference and five strings of the longest length.
    static let maximumPayloadSize = 128 + 5 * (2 + Int(UInt16.max - 1))

    /// Whether the strings fit the format's 16-bit string lengths.
    var isEncodable: Bool {
        switch self {
        case .allocate(let entry): entry.isEncodable && entry.references.count == 1
        case .addReference(_, _, let reference): reference.isEncodable
        case .release, .dropReference, .renew: true
        }
    }

    /// Appends the framed record (length, checksum, payload) to `bytes`.
    func appendFramed(to bytes: inout [UInt8]) {
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: Self.frameHeaderSize))
        switch self {
        case .allocate(let entry):
            bytes.append(Self.identifiedAllocateType)
            entry.append(to: &bytes)
        case .release(let offset, let id):
            bytes.append(Self.identifiedReleaseType)
            bytes.appendLittleEndian(offset)
            bytes.appendLittleEndian(id ?? 0)
        case .addReference(let offset, let id, let reference):
            bytes.append(Self.identifiedAddReferenceType)
            bytes.appendLittleEndian(offset)
            bytes.appendLittleEndian(id ?? 0)
            reference.append(to: &bytes)
        case .dropReference(let offset, let id, let ref):
            bytes.append(Self.identifiedDropReferenceType)
            bytes.appendLittleEndian(offset)
            bytes.appendLittleEndian(id ?? 0)
            bytes.appendLittleEndian(ref ?? 0)
        case .renew(let offset, let id, let lease):
            bytes.append(Self.identifiedRenewType)
            bytes.appendLittleEndian(offset)
            bytes.appendLittleEndian(id ?? 0)
            bytes.appendLittleEndian(lease.seconds)
            bytes.appendLittleEndian(lease.expiresAt)
        }
        let payload = bytes[(start + Self.frameHeaderSize)...]
        bytes.storeLittleEndian(UInt32(payload.count), at: start)
        bytes.storeLittleEndian(CRC32C.checksum(payload), at: start + 4)
    }

    /// Decodes one payload whose checksum has been checked.
    static func decode(payload: ArraySlice<UInt8>) throws(MalformedBytes) -> JournalRecord {
        var reader = ByteReader(payload)
        let type = try reader.uint8()
        let record: JournalRecord
        switch type {
        case allocateType:
            record = .allocate(try reader.legacyEntry(extended: false))
        case releaseType:
            record = .release(offset: try reader.uint64(), id: nil)
        case extendedAllocateType:
            record = .allocate(try reader.legacyEntry(extended: true))
        case addReferenceType:
            record = .addReference(offset: try reader.uint64(), id: nil, try reader.legacyReference())
        case dropReferenceType:
            record = .dropReference(offset: try reader.uint64(), id: nil, ref: nil)
        case renewType:
            record = .renew(offset: try reader.uint64(), id: nil, try reader.lease())
        case identifiedAllocateType:
            record = .allocate(try reader.entry())
        case identifiedReleaseType:
            record = .release(offset: try reader.uint64(), id: try reader.identifier())
        case identifiedAddReferenceType:
            record = .addReference(offset: try reader.uint64(), id: try reader.identifier(), try reader.reference())
        case identifiedDropReferenceType:
            record = .dropReference(offset: try reader.uint64(), id: try reader.identifier(), ref: try reader.identifier())
        case identifiedRenewType:
            record = .renew(offset: try reader.uint64(), id: try reader.identifier(), try reader.lease())
        default:
            throw MalformedBytes(reason: "unknown record type \(type)")
        }
        guard reader.isAtEnd else {
            throw MalformedBytes(reason: "\(reader.remaining) bytes after the record's fields")
        }
        return record
    }
}

/// Whether a string fits the format's 16-bit lengths (0xFFFF means nil).
private func fits(_ string: String?) -> Bool {
    (string?.utf8.count ?? 0) < Int(UInt16.max)
}

extension RegionEntry {
    /// Whether every string fits the format's 16-bit string lengths.
    var isEncodable: Bool {
        fits(region.label) && fits(region.share) && references.allSatisfy(\.isEncodable)
            && references.count <= Int(UInt32.max)
    }

    /// Appends the entry: the body of an allocate record (type 7) and of a
    /// snapshot entry (format 3).
    func append(to bytes: inout [UInt8]) {
        precondition(isEncodable, "append checks isEncodable before a region is saved")
        bytes.appendLittleEndian(region.id)
        bytes.appendLittleEndian(region.offset)
        bytes.append(UInt8(truncatingIfNeeded: region.memoryClass.rawValue))
        bytes.appendLittleEndian(region.requestedSize ?? 0)
        bytes.appendString(region.label)
        bytes.appendString(region.share)
        bytes.appendLittleEndian(region.lease?.seconds ?? 0)
        bytes.appendLittleEndian(region.lease?.expiresAt ?? 0)
        bytes.appendLittleEndian(UInt32(references.count))
        for reference in references { reference.append(to: &bytes) }
    }
}

extension Reference {
    var isEncodable: Bool { fits(key) && fits(label) }

    func append(to bytes: inout [UInt8]) {
        bytes.appendLittleEndian(id)
        bytes.appendString(key)
        bytes.appendLittleEndian(requestedSize ?? 0)
        bytes.appendString(label)
        bytes.appendLittleEndian(ttl ?? 0)
    }
}

/// Bytes that do not decode, and why.
struct MalformedBytes: Error {
    /// What was wrong, for the error that names the file and record.
    var reason: String
}

extension [UInt8] {
    /// Appends an integer, least significant byte first.
    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        var value = value.littleEndian
        Swift.withUnsafeBytes(of: &value) { append(contentsOf: $0) }
    }

    /// Overwrites `MemoryLayout<T>.size` bytes at `index` with an integer, least significant byte first.
    mutating func storeLittleEndian<T: FixedWidthInteger>(_ value: T, at index: Int) {
        for byte in 0..<MemoryLayout<T>.size {
            self[index + byte] = UInt8(truncatingIfNeeded: value >> (8 * byte))
        }
    }

    /// Appends a string as its UInt16 byte count and UTF-8 bytes; nil is the count 0xFFFF.
    mutating func appendString(_ string: String?) {
        guard let string else {
            appendLittleEndian(UInt16.max)
            return
        }
        appendLittleEndian(UInt16(string.utf8.count))
        append(contentsOf: string.utf8)
    }
}

/// Reads little-endian fields from a slice of bytes, throwing at its end.
struct ByteReader {
    /// The bytes being read.
    private let bytes: ArraySlice<UInt8>
    /// Index of the next unread byte.
    private(set) var position: Int

    /// Starts reading at the beginning of `bytes`.
    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.position = bytes.startIndex
    }

    /// Whether every byte has been read.
    var isAtEnd: Bool { position == bytes.endIndex }
    /// How many bytes are left.
    var remaining: Int { bytes.endIndex - position }

    /// Takes the next `count` bytes.
    mutating func take(_ count: Int) throws(MalformedBytes) -> ArraySlice<UInt8> {
        guard count <= remaining else {
            throw MalformedBytes(reason: "ends \(count - remaining) bytes short")
        }
        defer { position += count }
        return bytes[position..<(position + count)]
    }

    /// Reads an unsigned integer stored least significant byte first.
    mutating func integer<T: FixedWidthInteger & UnsignedInteger>(_: T.Type = T.self) throws(MalformedBytes) -> T {
        let field = try take(MemoryLayout<T>.size)
        var value: T = 0
        for (shift, byte) in field.enumerated() {
            value |= T(byte) << (8 * shift)
        }
        return value
    }

    /// Reads one byte.
    mutating func uint8() throws(MalformedBytes) -> UInt8 { try integer() }
    /// Reads a UInt32.
    mutating func uint32() throws(MalformedBytes) -> UInt32 { try integer() }
    /// Reads a UInt64.
    mutating func uint64() throws(MalformedBytes) -> UInt64 { try integer() }

    /// Reads a string written by `appendString`.
    mutating func string() throws(MalformedBytes) -> String? {
        let count: UInt16 = try integer()
        if count == UInt16.max { return nil }
        guard let string = String(validating: try take(Int(count)), as: UTF8.self) else {
            throw MalformedBytes(reason: "a string is not valid UTF-8")
        }
        return string
    }

    /// Reads the id of the region or reference a record acts on: 0 is none (any).
    mutating func identifier() throws(MalformedBytes) -> UInt64? {
        let id = try uint64()
        return id == 0 ? nil : id
    }

    /// Reads what `RegionEntry.append(to:)` wrote.
    mutating func entry() throws(MalformedBytes) -> RegionEntry {
        let id = try uint64()  // 0: one for the book to give, as to older formats
        let offset = try uint64()
        let memoryClass = MemoryClass(rawValue: Int(try uint8()))
        let requestedSize = try uint64()
        let label = try string()
        let share = try string()
        let lease = try lease()
        let count = try uint32()
        guard count > 0 else { throw MalformedBytes(reason: "a region without references") }
        var references: [Reference] = []
        references.reserveCapacity(Int(min(count, 1 << 16)))
        for _ in 0..<count { references.append(try reference()) }
        let region = SavedRegion(
            id: id, offset: offset, memoryClass: memoryClass, label: label,
            requestedSize: requestedSize == 0 ? nil : requestedSize, share: share,
            lease: lease.seconds == 0 ? nil : lease, refs: Int(count))
        return RegionEntry(region, references: references)
    }

    /// Reads what `Reference.append(to:)` wrote.
    mutating func reference() throws(MalformedBytes) -> Reference {
        let id = try uint64()  // 0: one for the book to give
        let key = try string()
        let requestedSize = try uint64()
        let label = try string()
        let ttl = try uint32()
        return Reference(
            id: id, key: key, requestedSize: requestedSize == 0 ? nil : requestedSize, label: label,
            ttl: ttl == 0 ? nil : ttl)
    }

    /// Reads a region of the formats before ids (allocate records of types 1
    /// and 3, snapshot formats 1 and 2): the first request's key becomes the
    /// first reference, each sharer one more; every id is 0, for the book to give.
    mutating func legacyEntry(extended: Bool) throws(MalformedBytes) -> RegionEntry {
        let offset = try uint64()
        let memoryClass = MemoryClass(rawValue: Int(try uint8()))
        let requested = try uint64()
        let requestedSize = requested == 0 ? nil : requested
        let label = try string()
        let key = try string()
        var region = SavedRegion(id: 0, offset: offset, memoryClass: memoryClass, label: label, requestedSize: requestedSize)
        var references = [Reference(id: 0, key: key, requestedSize: requestedSize, label: label)]
        if extended {
            region.share = try string()
            let lease = try lease()
            region.lease = lease.seconds == 0 ? nil : lease
            // Those regionds compared a replay with the current lease: the best guess of what was asked.
            references[0].ttl = region.lease?.seconds
            let count: UInt16 = try integer()
            for _ in 0..<count { references.append(try legacyReference()) }
        }
        region.refs = references.count
        return RegionEntry(region, references: references)
    }

    /// Reads a sharer of the formats before ids (key, requested size, label), with id 0.
    mutating func legacyReference() throws(MalformedBytes) -> Reference {
        let key = try string()
        let requestedSize = try uint64()
        return Reference(id: 0, key: key, requestedSize: requestedSize, label: try string())
    }

    /// Reads a lease: seconds and expiry.
    mutating func lease() throws(MalformedBytes) -> SavedRegion.Lease {
        let seconds = try uint32()
        return SavedRegion.Lease(seconds: seconds, expiresAt: Int64(bitPattern: try uint64()))
    }
}

extension JournalRecord: CustomStringConvertible {
    /// What the record does, in words, for logs: `allocate region 5 at offset 0`.
    public var description: String {
        func region(_ id: UInt64?, _ offset: UInt64) -> String {
            id.map { "region \($0) at offset \(offset)" } ?? "the region at offset \(offset)"
        }
        switch self {
        case .allocate(let entry): return "allocate \(region(entry.region.id, entry.region.offset))"
        case .release(let offset, let id): return "release \(region(id, offset))"
        case .addReference(let offset, let id, let reference):
            return "add reference \(reference.id) to \(region(id, offset))"
        case .dropReference(let offset, let id, let ref):
            return "drop \(ref.map { "reference \($0)" } ?? "the newest reference") of \(region(id, offset))"
        case .renew(let offset, let id, let lease): return "renew \(region(id, offset)) until \(lease.expiresAtText)"
        }
    }
}
