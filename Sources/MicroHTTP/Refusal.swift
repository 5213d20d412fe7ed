/// Why the HTTP layer answered a request without the application's handler.
/// The server and the router report these as values; the application
/// renders each (its status, code and words) and sees it in its observer,
/// so a refusal is logged and counted like any other failed request.
public enum Refusal: Sendable, Equatable {
    /// The request's framing can be read two ways (RFC 9112 §6): refused
    /// before its body is read, and the connection is closed. The detail says what.
    case ambiguousFraming(String)
    /// The body is longer than the server reads.
    case bodyTooLarge(limit: Int)
    /// The server stopped before the handler answered.
    case shuttingDown
    /// The request came on a connection over a limit; it is closed after the answer.
    case connectionLimit(ConnectionRefusal)
    /// No route has the path.
    case noRoute(path: String)
    /// A route has the path but not the method; `allowed` are the methods it has.
    case methodNotAllowed(method: String, template: String, allowed: [String])
}

extension Refusal {
    /// The status HTTP gives the refusal.
    public var status: Int {
        switch self {
        case .ambiguousFraming: 400
        case .noRoute: 404
        case .methodNotAllowed: 405
        case .bodyTooLarge: 413
        case .shuttingDown, .connectionLimit: 503
        }
    }

    /// Header fields HTTP requires with it: `Allow` on a 405.
    public var headers: [(name: String, value: String)] {
        guard case .methodNotAllowed(_, _, let allowed) = self else { return [] }
        return [("Allow", allowed.joined(separator: ", "))]
    }

    /// A bare answer: the status and required headers, no body (for servers
    /// that render nothing themselves).
    public static let bare: @Sendable (Refusal) -> Response = { refusal in
        Response(status: refusal.status, headers: refusal.headers)
    }
}
