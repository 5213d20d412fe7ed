public import MicroHTTP

/// Every problem regiond answers, with its status, code and title: the one
/// table. A new error code is a new case here (and in openapi.yaml).
public enum Problem: String, CaseIterable, Sendable {
    case invalidRequest = "invalid_request"
    case invalidOffset = "invalid_offset"
    case invalidMemoryClass = "invalid_memory_class"
    case unauthorized
    case notAllocated = "not_allocated"
    case notFound = "not_found"
    case methodNotAllowed = "method_not_allowed"
    case notEnoughSpace = "not_enough_space"
    case shareConflict = "share_conflict"
    case notLeased = "not_leased"
    case tooManyReferences = "too_many_references"
    case referencesHeld = "references_held"
    case payloadTooLarge = "payload_too_large"
    case idempotencyKeyReused = "idempotency_key_reused"
    case stateUnavailable = "state_unavailable"
    case notReady = "not_ready"
    case shuttingDown = "shutting_down"
    case tooManyConnections = "too_many_connections"

    /// The problem's `code`.
    public var code: String { rawValue }

    /// The status it is answered with.
    public var status: Int {
        switch self {
        case .invalidRequest, .invalidOffset, .invalidMemoryClass: 400
        case .unauthorized: 401
        case .notAllocated, .notFound: 404
        case .methodNotAllowed: 405
        case .notEnoughSpace, .shareConflict, .notLeased, .tooManyReferences, .referencesHeld: 409
        case .payloadTooLarge: 413
        case .idempotencyKeyReused: 422
        case .stateUnavailable, .notReady, .shuttingDown, .tooManyConnections: 503
        }
    }

    /// The title: the status's reason phrase (RFC 9110).
    public var title: String {
        switch status {
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 409: "Conflict"
        case 413: "Content Too Large"
        case 422: "Unprocessable Content"
        default: "Service Unavailable"
        }
    }

    /// The error to throw or answer: this problem with a `detail`.
    public func error(
        _ detail: String, members: [String: UInt64] = [:], headers: [(name: String, value: String)] = []
    ) -> HTTPError {
        HTTPError(status: status, code: code, title: title, detail: detail, members: members, headers: headers)
    }

    /// The problem a refusal of the HTTP layer is answered with.
    public static func error(for refusal: Refusal) -> HTTPError {
        switch refusal {
        case .ambiguousFraming(let detail):
            invalidRequest.error(detail)
        case .bodyTooLarge(let limit):
            payloadTooLarge.error("the body is larger than \(limit) bytes")
        case .shuttingDown:
            shuttingDown.error("the server stopped before this request was answered; it may or may not have taken effect")
        case .connectionLimit(.perIP):
            tooManyConnections.error("this address has as many connections open as it may", headers: [("Retry-After", "1")])
        case .connectionLimit(.total):
            tooManyConnections.error("the server has as many connections open as it serves", headers: [("Retry-After", "1")])
        case .noRoute(let path):
            notFound.error("no route for \(path)")
        case .methodNotAllowed(let method, let template, _):
            methodNotAllowed.error("\(method) is not allowed on \(template)", headers: refusal.headers)
        }
    }
}
