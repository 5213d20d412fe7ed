/// CRC-32C (Castagnoli), the checksum of journal records and snapshots:
/// table-driven, one byte per step, no dependency.
enum CRC32C {
    /// The 256 remainders of the reflected polynomial 0x82F63B78.
    private static let table: [UInt32] = (0..<256).map { index in
        var remainder = UInt32(index)
        for _ in 0..<8 {
            remainder = remainder & 1 != 0 ? (remainder >> 1) ^ 0x82F6_3B78 : remainder >> 1
        }
        return remainder
    }

    /// The checksum of `bytes`; with `previous`, the checksum of the bytes
    /// `previous` was the checksum of followed by `bytes` (a chained checksum,
    /// as etcd's WAL chains each record's from the one before).
    static func checksum(_ bytes: ArraySlice<UInt8>, continuing previous: UInt32 = 0) -> UInt32 {
        table.withUnsafeBufferPointer { table in
            bytes.withUnsafeBufferPointer { bytes in
                var crc = ~previous
                for byte in bytes {
                    crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
                }
                return ~crc
            }
        }
    }

    /// The checksum of all of `bytes`.
    static func checksum(_ bytes: [UInt8], continuing previous: UInt32 = 0) -> UInt32 {
        checksum(bytes[...], continuing: previous)
    }
}
