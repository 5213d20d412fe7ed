internal import Foundation

/// A failed request, rendered as RFC 9457 problem details. Handlers throw
/// it; the router catches it in one place and turns it into a response.
/// The application says what each status, code and title is (this layer
/// knows none of them).
public struct HTTPError: Error, Sendable {
    /// The status code.
    public var status: Int
    /// A stable snake_case code for programs.
    public var code: String
    /// The problem's title: the status's reason phrase.
    public var title: String
    /// What was wrong, for a human.
    public var detail: String
    /// Extension members of the problem (RFC 9457 §3.2), such as a number a
    /// caller can act on; encoded next to the standard members.
    public var members: [String: UInt64]
    /// Extra header fields (`Allow`, `WWW-Authenticate`).
    public var headers: [(name: String, value: String)]

    /// Makes an error.
    public init(
        status: Int, code: String, title: String, detail: String, members: [String: UInt64] = [:],
        headers: [(name: String, value: String)] = []
    ) {
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.members = members
        self.headers = headers
    }

    /// The problem-details body: `type`, `title`, `status`, `detail`, `code` and the extension members.
    private struct Problem: Encodable {
        let error: HTTPError

        struct Key: CodingKey {
            let stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Key.self)
            try container.encode("about:blank", forKey: Key(stringValue: "type"))
            try container.encode(error.title, forKey: Key(stringValue: "title"))
            try container.encode(error.status, forKey: Key(stringValue: "status"))
            try container.encode(error.detail, forKey: Key(stringValue: "detail"))
            try container.encode(error.code, forKey: Key(stringValue: "code"))
            for (name, value) in error.members {
                try container.encode(value, forKey: Key(stringValue: name))
            }
        }
    }

    /// The response that carries this error.
    public var response: Response {
        var response = Response(status: status, json: Problem(error: self), contentType: "application/problem+json")
        response.headers += headers
        response.problemCode = code
        return response
    }
}
