public import MemoryPool

/// One change to the pool.
public enum JournalRecord: Hashable, Sendable {
    /// A region was handed out.
    case allocate(SavedRegion)
    /// The region at `offset` was given back (its last reference, or its lease ended).
    case release(offset: UInt64)
    /// One more reference was taken on the shared region at `offset`.
    case addReference(offset: UInt64, SavedRegion.Sharer)
    /// The newest reference on the shared region at `offset` was dropped; others remain.
    case dropReference(offset: UInt64)
    /// The lease of the region at `offset` was renewed.
    case renew(offset: UInt64, SavedRegion.Lease)
}

// MARK: - Binary encoding
//
// Record:  [payload length UInt32 LE][CRC32C of payload UInt32 LE][payload]
// Payload: type, offset UInt64 LE, then by type:
//   1 allocate   class byte, requested size UInt64 LE (0 when unknown: no
//                request asks for 0 bytes and succeeds), label, idempotency key
//   2 release    nothing
//   3 allocate   as 1, then the extension: share key, lease (seconds UInt32
//                LE, 0 for none; expiry Int64 LE ms since 1970), sharer
//                count UInt16 LE and each sharer (key, requested size, label)
//   4 add a reference      key, requested size UInt64 LE, label
//   5 drop a reference     nothing
//   6 renew                seconds UInt32 LE, expiry Int64 LE
// String:  UInt16 LE byte count (0xFFFF means nil), then the UTF-8 bytes.
// Types 3-6 appear from journal format 3 on; a region without a share key,
// sharers or lease is still written as type 1.

extension JournalRecord {
    /// Type byte of an allocate payload.
    static let allocateType: UInt8 = 1
    /// Type byte of a release payload.
    static let releaseType: UInt8 = 2
    /// Type byte of an allocate payload with the extension.
    static let extendedAllocateType: UInt8 = 3
    static let addReferenceType: UInt8 = 4
    static let dropReferenceType: UInt8 = 5
    static let renewType: UInt8 = 6
    /// Bytes before the payload: its length and its checksum.
    static let frameHeaderSize = 8
    /// The shortest payload: a release.
    static let minimumPayloadSize = 9
    /// The longest payload: an extended allocate with three strings of the longest length.
    static let maximumPayloadSize = 1 + 8 + 1 + 8 + 3 * (2 + Int(UInt16.max - 1)) + 4 + 8 + 2

    /// Whether the strings fit the format's 16-bit string lengths.
    var isEncodable: Bool {
        switch self {
        case .allocate(let region): region.isEncodable && region.sharers.isEmpty
        case .addReference(_, let sharer): sharer.isEncodable
        case .release, .dropReference, .renew: true
        }
    }

    /// Appends the framed record (length, checksum, payload) to `bytes`.
    func appendFramed(to bytes: inout [UInt8]) {
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: Self.frameHeaderSize))
        switch self {
        case .allocate(let region):
            bytes.append(region.needsExtension ? Self.extendedAllocateType : Self.allocateType)
            region.append(to: &bytes, extended: region.needsExtension)
        case .release(let offset):
            bytes.append(Self.releaseType)
            bytes.appendLittleEndian(offset)
        case .addReference(let offset, let sharer):
            bytes.append(Self.addReferenceType)
            bytes.appendLittleEndian(offset)
            sharer.append(to: &bytes)
        case .dropReference(let offset):
            bytes.append(Self.dropReferenceType)
            bytes.appendLittleEndian(offset)
        case .renew(let offset, let lease):
            bytes.append(Self.renewType)
            bytes.appendLittleEndian(offset)
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
            record = .allocate(try reader.savedRegion(extended: false))
        case releaseType:
            record = .release(offset: try reader.uint64())
        case extendedAllocateType:
            record = .allocate(try reader.savedRegion(extended: true))
        case addReferenceType:
            record = .addReference(offset: try reader.uint64(), try reader.sharer())
        case dropReferenceType:
            record = .dropReference(offset: try reader.uint64())
        case renewType:
            record = .renew(offset: try reader.uint64(), try reader.lease())
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

extension SavedRegion {
    /// Whether every string fits the format's 16-bit string lengths.
    var isEncodable: Bool {
        fits(label) && fits(idempotencyKey) && fits(share) && sharers.allSatisfy(\.isEncodable)
            && sharers.count < Int(UInt16.max)
    }

    /// Whether the region needs the extension (type 3, snapshot format 2).
    var needsExtension: Bool {
        share != nil || !sharers.isEmpty || lease != nil
    }

    /// Appends offset, class, requested size, label and key, then with
    /// `extended` the share key, lease and sharers: the body of an allocate
    /// record and a snapshot entry.
    func append(to bytes: inout [UInt8], extended: Bool) {
        precondition(isEncodable, "append checks isEncodable before a region is saved")
        bytes.appendLittleEndian(offset)
        bytes.append(UInt8(truncatingIfNeeded: memoryClass.rawValue))
        bytes.appendLittleEndian(requestedSize ?? 0)
        bytes.appendString(label)
        bytes.appendString(idempotencyKey)
        guard extended else { return }
        bytes.appendString(share)
        bytes.appendLittleEndian(lease?.seconds ?? 0)
        bytes.appendLittleEndian(lease?.expiresAt ?? 0)
        bytes.appendLittleEndian(UInt16(sharers.count))
        for sharer in sharers { sharer.append(to: &bytes) }
    }
}

extension SavedRegion.Sharer {
    var isEncodable: Bool { fits(idempotencyKey) && fits(label) }

    func append(to bytes: inout [UInt8]) {
        bytes.appendString(idempotencyKey)
        bytes.appendLittleEndian(requestedSize)
        bytes.appendString(label)
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

    /// Reads what `SavedRegion.append(to:extended:)` wrote.
    mutating func savedRegion(extended: Bool) throws(MalformedBytes) -> SavedRegion {
        let offset = try uint64()
        let memoryClass = MemoryClass(rawValue: Int(try uint8()))
        let requestedSize = try uint64()
        let label = try string()
        let key = try string()
        var region = SavedRegion(
            offset: offset, memoryClass: memoryClass, label: label, idempotencyKey: key,
            requestedSize: requestedSize == 0 ? nil : requestedSize)
        guard extended else { return region }
        region.share = try string()
        let lease = try lease()
        region.lease = lease.seconds == 0 ? nil : lease
        let count: UInt16 = try integer()
        for _ in 0..<count { region.sharers.append(try sharer()) }
        return region
    }

    /// Reads what `SavedRegion.Sharer.append(to:)` wrote.
    mutating func sharer() throws(MalformedBytes) -> SavedRegion.Sharer {
        let key = try string()
        let requestedSize = try uint64()
        return SavedRegion.Sharer(idempotencyKey: key, requestedSize: requestedSize, label: try string())
    }

    /// Reads a lease: seconds and expiry.
    mutating func lease() throws(MalformedBytes) -> SavedRegion.Lease {
        let seconds = try uint32()
        return SavedRegion.Lease(seconds: seconds, expiresAt: Int64(bitPattern: try uint64()))
    }
}
