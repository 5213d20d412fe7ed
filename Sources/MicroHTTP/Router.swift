/// Routes requests by path template and method, and turns every thrown
/// ``HTTPError`` into its problem-details response, in one place.
public struct Router: Sendable {
    /// Delivers a handler's response; called exactly once per request.
    public typealias Respond = @Sendable (Response) -> Void
    /// Answers a request, now or later (after the journal has the change on disk).
    public typealias Handler = @Sendable (Request, Parameters, @escaping Respond) throws(HTTPError) -> Void

    /// Path parameters by name, such as `offset` in `/regions/{offset}`.
    public typealias Parameters = [String: String]

    private struct Route: Sendable {
        let template: String
        /// The template's segments; `{name}` segments capture.
        let segments: [Substring]
        var methods: [(method: String, handler: Handler)]

        /// The handler of `method`; HEAD is answered by the GET handler
        /// (RFC 9110 §9.3.2: the same status and header fields, no content;
        /// libmicrohttpd sends no body on a HEAD and keeps the Content-Length).
        func handler(for method: String) -> Handler? {
            methods.first { $0.method == method }?.handler
                ?? (method == "HEAD" ? methods.first { $0.method == "GET" }?.handler : nil)
        }

        /// The methods it answers, for `Allow`: HEAD after GET.
        var allowed: [String] {
            methods.flatMap { $0.method == "GET" && !methods.contains { $0.method == "HEAD" } ? ["GET", "HEAD"] : [$0.method] }
        }
    }

    private var routes: [Route] = []
    /// Runs before routing; throws to refuse the request (the bearer token).
    public var guardRequest: @Sendable (Request) throws(HTTPError) -> Void = { _ in }

    /// Renders a request no handler takes (no route, or not that method).
    public var refuse: @Sendable (Refusal) -> Response = Refusal.bare

    /// Sees every response with the route template it matched (`unmatched`
    /// when none did) and when the request started: metrics and logs.
    public var observe: @Sendable (Request, _ route: String, Response, _ started: ContinuousClock.Instant) -> Void = {
        _, _, _, _ in
    }

    /// Makes an empty router.
    public init() {}

    /// Adds a handler that may answer later.
    public mutating func on(_ method: String, _ template: String, _ handler: @escaping Handler) {
        if let index = routes.firstIndex(where: { $0.template == template }) {
            routes[index].methods.append((method, handler))
        } else {
            let segments = template.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
            routes.append(Route(template: template, segments: Array(segments), methods: [(method, handler)]))
        }
    }

    /// Adds a handler that answers at once.
    public mutating func on(
        _ method: String,
        _ template: String,
        now handler: @escaping @Sendable (Request, Parameters) throws(HTTPError) -> Response
    ) {
        on(method, template) { (request, parameters, respond) throws(HTTPError) in
            respond(try handler(request, parameters))
        }
    }

    /// Every route as `METHOD /template`, in the order they were added
    /// (HEAD, answered wherever GET is, is not listed).
    public var routeTable: [String] {
        routes.flatMap { route in route.methods.map { "\($0.method) \(route.template)" } }
    }

    /// Answers `request` through `respond`, exactly once.
    public func handle(_ request: Request, respond: @escaping Respond) {
        let started = ContinuousClock.now
        let matched = match(request.path)
        let observe = self.observe
        let respond: Respond = { response in
            observe(request, matched?.0.template ?? "unmatched", response, started)
            respond(response)
        }
        do throws(HTTPError) {
            try guardRequest(request)
            guard let (route, parameters) = matched else {
                return respond(refuse(.noRoute(path: request.path)))
            }
            guard let handler = route.handler(for: request.method) else {
                return respond(refuse(.methodNotAllowed(method: request.method, template: route.template, allowed: route.allowed)))
            }
            try handler(request, parameters, respond)
        } catch {
            respond(error.response)
        }
    }

    /// The template of the route the path fits, if any (for oracles and tests).
    public func template(matching path: String) -> String? {
        match(path)?.0.template
    }

    /// The route whose template the path fits, and its parameters: of
    /// several, the one with the most literal segments (`/regions/batch`
    /// before `/regions/{offset}`), so the order routes are added in does
    /// not matter. Walks the path's bytes once per route, without splitting it.
    private func match(_ path: String) -> (Route, Parameters)? {
        let bytes = path.utf8
        guard bytes.first == UInt8(ascii: "/") else { return nil }
        var best: (route: Route, parameters: Parameters, literals: Int)?
        for route in routes {
            var parameters: Parameters = [:]
            var position = bytes.index(after: bytes.startIndex)
            var matched = true
            for (number, pattern) in route.segments.enumerated() {
                let end = bytes[position...].firstIndex(of: UInt8(ascii: "/")) ?? bytes.endIndex
                let segment = Substring(path.utf8[position..<end])
                if pattern.first == "{" {
                    guard !segment.isEmpty else { matched = false; break }
                    parameters[String(pattern.dropFirst().dropLast())] = String(segment)
                } else if pattern != segment {
                    matched = false
                    break
                }
                let last = number == route.segments.count - 1
                // The path must end exactly where the template does.
                guard last ? end == bytes.endIndex : end != bytes.endIndex else { matched = false; break }
                position = last ? end : bytes.index(after: end)
            }
            let literals = route.segments.count - parameters.count
            if matched && literals > best?.literals ?? -1 { best = (route, parameters, literals) }
        }
        return best.map { ($0.route, $0.parameters) }
    }
}
