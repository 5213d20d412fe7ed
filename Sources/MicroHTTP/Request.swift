/// An HTTP request as the router sees it: no sockets, no C.
public struct Request: Sendable {
    /// The method, as sent (`GET`, `POST`, ...).
    public var method: String
    /// The path, percent-decoded, without the query.
    public var path: String
    /// Query arguments, percent-decoded; the first of repeated names wins.
    public var query: [String: String]
    /// Header fields; names are compared case-insensitively by ``header(_:)``.
    public var headers: [(name: String, value: String)]
    /// The body bytes (at most ``HTTPServer/Configuration/bodyLimit``).
    public var body: [UInt8]

    /// Makes a request.
    public init(
        method: String,
        path: String,
        query: [String: String] = [:],
        headers: [(name: String, value: String)] = [],
        body: [UInt8] = []
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    /// The value of the first header field called `name`, ignoring case.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveEquals(name) }?.value
    }
}

extension String {
    /// ASCII case-insensitive comparison, enough for header names.
    func caseInsensitiveEquals(_ other: String) -> Bool {
        utf8.count == other.utf8.count
            && zip(utf8, other.utf8).allSatisfy { ($0 | 0x20) == ($1 | 0x20) }
    }
}

extension Request {
    /// A request from its target as sent (`/path?name=value`): the path and
    /// the query arguments percent-decoded here, byte for byte, so a `%00`
    /// stays in the string (and fails whatever check the route makes)
    /// instead of cutting it short. In the query `+` is a space, as in forms.
    init(target: [UInt8], method: String, headers: [(name: String, value: String)], body: [UInt8]) {
        let question = target.firstIndex(of: UInt8(ascii: "?")) ?? target.endIndex
        var query: [String: String] = [:]
        if question < target.endIndex {
            for pair in target[(question + 1)...].split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
                let equals = pair.firstIndex(of: UInt8(ascii: "=")) ?? pair.endIndex
                let name = Self.percentDecoded(pair[..<equals], plusIsSpace: true)
                let value = equals < pair.endIndex ? Self.percentDecoded(pair[(equals + 1)...], plusIsSpace: true) : ""
                if query[name] == nil { query[name] = value }  // the first of repeated names wins
            }
        }
        self.init(
            method: method, path: Self.percentDecoded(target[..<question], plusIsSpace: false), query: query,
            headers: headers, body: body)
    }

    /// `%XX` to its byte; a `%` not followed by two hex digits stays as it is.
    static func percentDecoded(_ bytes: ArraySlice<UInt8>, plusIsSpace: Bool) -> String {
        // Most paths have nothing to decode: no copy then.
        if !bytes.contains(where: { $0 == UInt8(ascii: "%") || (plusIsSpace && $0 == UInt8(ascii: "+")) }) {
            return String(decoding: bytes, as: UTF8.self)
        }
        var decoded: [UInt8] = []
        decoded.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%"), index + 2 < bytes.endIndex,
                let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2])
            {
                decoded.append(high << 4 | low)
                index += 3
            } else {
                decoded.append(plusIsSpace && byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
                index += 1
            }
        }
        return String(decoding: decoded, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
