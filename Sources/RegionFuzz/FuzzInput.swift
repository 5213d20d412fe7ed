internal import MicroHTTP

/// Turns arbitrary bytes into a ``Request``: the input format of the
/// RegionFuzz target, shared with the tests that replay its crashes.
///
/// ```
/// byte 0       bit 0: use the router with the bearer token; bits 1-4: the method
/// path         a field (below); 0xE0-0xFE instead pick a known path
/// query        1 byte count (mod 4), then name and value fields
/// headers      1 byte count (mod 8); per header 1 byte picks a known name
///              (or reads a name field), then a value field; the known
///              `Authorization: Bearer <token>` takes no value field
/// body         every byte left
/// ```
/// A field is a length byte and that many bytes (0xFF: a 2-byte little-endian
/// length follows). Fields are decoded as UTF-8, invalid bytes replaced. A
/// short input just ends early: every byte string is a request.
enum FuzzInput {
    /// The token of the guarded router, sent by the known Authorization header.
    static let token = "fuzz-token"

    /// Ordinary methods, wrong case, unknown and malformed ones.
    static let methods = [
        "GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "TRACE",
        "CONNECT", "get", "", "GET ", "PROPFIND", "POST\0", "DELETE\u{FFFD}", "BREW",
    ]

    /// Paths the fuzzer would take long to spell out.
    static let paths = [
        "/regions", "/pool", "/livez", "/healthz", "/readyz", "/metrics", "/openapi.yaml",
        "/regions/0", "/regions/1048576", "/regions/4294967296", "/regions/18446744073709551615",
        "/regions/18446744073709551616", "/regions/-1", "/regions/", "/regions/../pool", "//regions",
        "/regions/%2e", "/REGIONS", "/regions/0/", "/regions/00000000000000000000001", "",
        "/regions/batch", "/regions/0/renew", "/regions/1048576/renew", "/regions/batch/renew",
    ]

    /// Header names picked by one byte; the last one reads its name from the input.
    static let headerNames = ["Idempotency-Key", "Authorization", "Content-Length", "Content-Type", "idempotency-key"]

    /// The request the bytes describe, and whether to send it through the
    /// router that wants the bearer token.
    static func request(from bytes: [UInt8]) -> (request: Request, useToken: Bool) {
        var reader = Reader(bytes: bytes)
        let first = reader.byte()
        let method = methods[Int(first >> 1) & 0x0F]
        let pathLength = reader.byte()
        let path =
            (0xE0...0xFE).contains(pathLength)
            ? paths[Int(pathLength - 0xE0) % paths.count] : reader.field(length: pathLength)
        var query: [String: String] = [:]
        for _ in 0..<(reader.byte() % 4) {
            let name = reader.field()
            let value = reader.field()
            if query[name] == nil { query[name] = value }  // the first of repeated names wins
        }
        var headers: [(name: String, value: String)] = []
        for _ in 0..<(reader.byte() % 8) {
            let pick = Int(reader.byte())
            switch pick % (headerNames.count + 2) {
            case headerNames.count:
                headers.append(("Authorization", "Bearer \(token)"))
            case headerNames.count + 1:
                let name = reader.field()
                headers.append((name, reader.field()))
            case let known:
                headers.append((headerNames[known], reader.field()))
            }
        }
        let request = Request(method: method, path: path, query: query, headers: headers, body: reader.rest())
        return (request, first & 1 == 1)
    }

    /// Reads the input front to back; past the end every read is empty.
    private struct Reader {
        let bytes: [UInt8]
        var index = 0

        mutating func byte() -> UInt8 {
            guard index < bytes.count else { return 0 }
            defer { index += 1 }
            return bytes[index]
        }

        mutating func field() -> String {
            field(length: byte())
        }

        mutating func field(length: UInt8) -> String {
            let count = length == 0xFF ? Int(byte()) | Int(byte()) << 8 : Int(length)
            let end = min(bytes.count, index + count)
            defer { index = end }
            return String(decoding: bytes[index..<end], as: UTF8.self)
        }

        mutating func rest() -> [UInt8] {
            defer { index = bytes.count }
            return Array(bytes[index...])
        }
    }
}
