internal import Foundation

/// A failed request, rendered as RFC 9457 problem details. Handlers throw
/// it; the router catches it in one place and turns it into a response.
public struct HTTPError: Error, Sendable {
    /// The status code.
    public var status: Int
    /// The snake_case code of DESIGN §2 (`not_enough_space`, ...).
    public var code: String
    /// What was wrong, for a human.
    public var detail: String
    /// The size of the largest region that can be allocated now, on `not_enough_space`.
    public var largestFree: UInt64?
    /// Extra header fields (`Allow`, `WWW-Authenticate`).
    public var headers: [(name: String, value: String)] = []

    /// Makes an error.
    public init(_ status: Int, _ code: String, _ detail: String, largestFree: UInt64? = nil) {
        self.status = status
        self.code = code
        self.detail = detail
        self.largestFree = largestFree
    }

    /// The problem-details body: `type`, `title`, `status`, `detail`, `code`.
    private struct Problem: Encodable {
        let type = "about:blank"
        let title: String
        let status: Int
        let detail: String
        let code: String
        let largestFree: UInt64?
    }

    /// The response that carries this error.
    public var response: Response {
        let problem = Problem(
            title: Self.reason(status), status: status, detail: detail, code: code, largestFree: largestFree)
        var response = Response(
            status: status,
            headers: [("Content-Type", "application/problem+json")] + headers,
            body: JSON.encode(problem)
        )
        response.problemCode = code
        return response
    }

    /// The reason phrase of a status code, used as the problem's title.
    static func reason(_ status: Int) -> String {
        switch status {
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 409: "Conflict"
        case 413: "Content Too Large"
        case 422: "Unprocessable Content"
        case 500: "Internal Server Error"
        case 503: "Service Unavailable"
        default: "Error"
        }
    }
}

/// The one JSON encoder and decoder of the server.
enum JSON {
    // JSONEncoder and JSONDecoder are thread-safe once configured; sharing
    // them saves building one per request.
    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
    private static let decoder = JSONDecoder()

    /// Encodes a value; the server's own types always encode.
    static func encode(_ value: some Encodable) -> [UInt8] {
        do {
            return Array(try encoder.encode(value))
        } catch {
            preconditionFailure("cannot encode \(type(of: value)): \(error)")
        }
    }

    /// Decodes a request body.
    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try decoder.decode(type, from: Data(bytes))
    }

    /// A 200-style response carrying `value` as JSON.
    static func response(_ status: Int, _ value: some Encodable, headers: [(name: String, value: String)] = []) -> Response {
        Response(status: status, headers: [("Content-Type", "application/json")] + headers, body: encode(value))
    }
}
