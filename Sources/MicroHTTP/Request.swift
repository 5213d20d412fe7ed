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
