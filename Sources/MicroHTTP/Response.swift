internal import Foundation

/// An HTTP response as the router makes it; the server turns it into bytes.
public struct Response: Sendable {
    /// The status code.
    public var status: Int
    /// Header fields to send besides `Content-Length`, which the server adds.
    public var headers: [(name: String, value: String)]
    /// The body bytes.
    public var body: [UInt8]
    /// The problem's `code` when this response carries an ``HTTPError``, for logs and metrics.
    public var problemCode: String?

    /// Makes a response.
    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A response carrying `value` encoded by Foundation's `JSONEncoder`
    /// (sorted keys, slashes unescaped), with its `Content-Type`.
    public init(
        status: Int, json value: some Encodable, contentType: String = "application/json",
        headers: [(name: String, value: String)] = []
    ) {
        self.init(status: status, headers: [("Content-Type", contentType)] + headers, body: Self.encode(value))
    }

    /// The value of the first header field called `name`, ignoring case.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveEquals(name) }?.value
    }

    // A configured JSONEncoder is thread-safe; sharing one saves building one per response.
    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// Encodes a value as JSON bytes; a server's own body types always encode.
    public static func encode(_ value: some Encodable) -> [UInt8] {
        do {
            return Array(try encoder.encode(value))
        } catch {
            preconditionFailure("cannot encode \(type(of: value)): \(error)")
        }
    }
}
