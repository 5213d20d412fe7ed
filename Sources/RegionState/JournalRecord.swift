public import MemoryPool

/// One change to the pool.
public enum JournalRecord: Hashable, Sendable {
    /// A region was handed out.
    case allocate(SavedRegion)
    /// The region at `offset` was given back.
    case release(offset: UInt64)
}

// MARK: - Binary encoding
//
// Record:  [payload length UInt32 LE][CRC32C of payload UInt32 LE][payload]
// Payload: type (1 allocate, 2 release), offset UInt64 LE, and for allocate:
//          class byte, requested size UInt64 LE (0 when unknown: no request
//          asks for 0 bytes and succeeds), label, idempotency key.
// String:  UInt16 LE byte count (0xFFFF means nil), then the UTF-8 bytes.

extension JournalRecord {
    /// Type byte of an allocate payload.
    static let allocateType: UInt8 = 1
    /// Type byte of a release payload.
    static let releaseType: UInt8 = 2
    /// Bytes before the payload: its length and its checksum.
    static let frameHeaderSize = 8
    /// The shortest payload: a release.
    static let minimumPayloadSize = 9
    /// The longest payload: an allocate with two strings of the longest length.
    static let maximumPayloadSize = 1 + 8 + 1 + 8 + 2 * (2 + Int(UInt16.max - 1))

    /// Whether the label and key fit the format's 16-bit string lengths.
    var isEncodable: Bool {
        guard case .allocate(let region) = self else { return true }
        return region.isEncodable
    }

    /// Appends the framed record (length, checksum, payload) to `bytes`.
    func appendFramed(to bytes: inout [UInt8]) {
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: Self.frameHeaderSize))
        switch self {
        case .allocate(let region):
            bytes.append(Self.allocateType)
            region.append(to: &bytes)
        case .release(let offset):
            bytes.append(Self.releaseType)
            bytes.appendLittleEndian(offset)
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
            record = .allocate(try reader.savedRegion())
        case releaseType:
            record = .release(offset: try reader.uint64())
        default:
            throw MalformedBytes(reason: "unknown record type \(type)")
        }
        guard reader.isAtEnd else {
            throw MalformedBytes(reason: "\(reader.remaining) bytes after the record's fields")
        }
        return record
    }
}

extension SavedRegion {
    /// Whether the label and key fit the format's 16-bit string lengths.
    var isEncodable: Bool {
        (label?.utf8.count ?? 0) < Int(UInt16.max) && (idempotencyKey?.utf8.count ?? 0) < Int(UInt16.max)
    }

    /// Appends offset, class, requested size, label and key: the body of an
    /// allocate record and a snapshot entry.
    func append(to bytes: inout [UInt8]) {
        precondition(isEncodable, "append checks isEncodable before a region is saved")
        bytes.appendLittleEndian(offset)
        bytes.append(UInt8(truncatingIfNeeded: memoryClass.rawValue))
        bytes.appendLittleEndian(requestedSize ?? 0)
        bytes.appendString(label)
        bytes.appendString(idempotencyKey)
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

    /// Reads offset, class, label and key.
    mutating func savedRegion() throws(MalformedBytes) -> SavedRegion {
        let offset = try uint64()
        let memoryClass = MemoryClass(rawValue: Int(try uint8()))
        let requestedSize = try uint64()
        let label = try string()
        let key = try string()
        return SavedRegion(
            offset: offset, memoryClass: memoryClass, label: label, idempotencyKey: key,
            requestedSize: requestedSize == 0 ? nil : requestedSize)
    }
}
