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

    /// The value of the first header field called `name`, ignoring case.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveEquals(name) }?.value
    }
}
