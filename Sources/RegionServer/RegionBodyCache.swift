internal import Locking
internal import MicroHTTP
internal import RegionState

/// The JSON of each live region, encoded once by `JSONEncoder` when it is
/// allocated and reused by the `GET` and `DELETE` that answer the same
/// region (and reference). An entry is used only when it was made from exactly the region
/// being answered, so a region released and allocated again at the same
/// offset is never answered with the old one's bytes. At most one entry per
/// offset (4,096 1 MiB offsets on the device), so it never grows past that.
final class RegionBodyCache: Sendable {
    private let entries = Locked<[UInt64: (region: SavedRegion, ref: UInt64?, body: [UInt8])]>([:])

    init() {
        entries.withLock { $0.reserveCapacity(4096) }
    }

    /// A response carrying `region` with the reference `ref`, with its cached bytes when they match.
    func response(
        _ status: Int, _ region: SavedRegion, ref: UInt64? = nil, headers: [(name: String, value: String)] = []
    ) -> Response {
        let cached = entries.withLock { entries in
            entries[region.offset].flatMap { Self.sameBody($0.region, region) && $0.ref == ref ? $0.body : nil }
        }
        let body = cached ?? Response.encode(RegionBody(region, ref: ref))
        if cached == nil {
            entries.withLock { $0[region.offset] = (region, ref, body) }
        }
        var fields: [(name: String, value: String)] = []
        fields.reserveCapacity(1 + headers.count)
        fields.append(("Content-Type", "application/json"))
        fields += headers
        return Response(status: status, headers: fields, body: body)
    }

    /// Whether two regions have the same JSON: `refs` is written only for a
    /// shared region, so the `DELETE` that releases a plain region (refs 1
    /// to 0) reuses the bytes its `POST` encoded.
    static func sameBody(_ cached: SavedRegion, _ region: SavedRegion) -> Bool {
        guard cached.share == nil, region.share == nil else { return cached == region }
        var cached = cached
        cached.refs = region.refs
        return cached == region
    }
}
