public import Logging
internal import MemoryPool
public import MicroHTTP
public import RegionState

/// The routes of regiond over one ``RegionService`` (each route of
/// ``RegionRoute`` gets its handler here), and the one place that turns a
/// ``RegionError`` into a ``Problem`` with its words.
public enum RegionAPI {
    /// Makes the router. With a `token`, every route but the probes needs
    /// `Authorization: Bearer <token>`. `logger` gets a warning for every
    /// failed request, `metrics` counts them all.
    public static func router(
        service: RegionService, metrics: RegionMetrics, logger: Logger, token: String? = nil
    ) -> Router {
        var router = Router()
        let context = Context(service: service, metrics: metrics, bodies: RegionBodyCache())
        if let token {
            let expected = Array(token.utf8)
            let open = Set(RegionRoute.allCases.filter(\.isOpen).map(\.template))
            router.guardRequest = { (request) throws(HTTPError) in
                guard !open.contains(request.path) else { return }
                guard let given = request.header("Authorization").flatMap(bearerCredentials),
                    constantTimeEquals(Array(given.utf8), expected)
                else {
                    throw Problem.unauthorized.error("a valid bearer token is required", headers: [("WWW-Authenticate", "Bearer")])
                }
            }
        }
        router.refuse = { Problem.error(for: $0).response }
        router.observe = { request, route, response, started in
            observe(request, route: route, response, duration: ContinuousClock.now - started, metrics: metrics, logger: logger)
        }
        for route in RegionRoute.allCases {
            router.on(route.method, route.template, context.handler(for: route))
        }
        return router
    }

    /// Counts a response and logs a warning when it carries a problem: for
    /// every request the router answers and every one the server refuses.
    static func observe(
        _ request: Request, route: String, _ response: Response, duration: Duration, metrics: RegionMetrics, logger: Logger
    ) {
        metrics.recordRequest(route: route, method: request.method, status: response.status, duration: duration)
        if let code = response.problemCode {
            logger.warning(
                "request failed",
                metadata: ["method": "\(request.method)", "route": "\(route)", "status": "\(response.status)", "code": "\(code)"])
        }
    }

    /// What the handlers share.
    struct Context: Sendable {
        let service: RegionService
        let metrics: RegionMetrics
        let bodies: RegionBodyCache
        /// Encoded once: the probes are asked often.
        let ok = Response(status: 200, json: StatusBody(status: "ok"))

        /// The handler of `route`.
        func handler(for route: RegionRoute) -> Router.Handler {
            switch route {
            case .allocate: allocate
            case .list: list
            case .releaseByLabel: releaseByLabel
            case .allocateBatch: allocateBatch
            case .renew: renew
            case .get: get
            case .release: release
            case .dropReference: dropReference
            case .pool: pool
            case .livez, .healthz: { [ok] (request, _, respond) throws(HTTPError) in
                    try checkQuery(request, allowing: [])
                    respond(ok)
                }
            case .readyz: readyz
            case .metrics: metricsExposition
            case .openapi: { (request, _, respond) throws(HTTPError) in
                    try checkQuery(request, allowing: [])
                    respond(Response(status: 200, headers: [("Content-Type", "application/yaml")], body: RegionSpec.openapi))
                }
            }
        }

        func allocate(_ request: Request, _: Router.Parameters, _ respond: @escaping Router.Respond) throws(HTTPError) {
            let body: AllocateBody
            let key: String?
            do throws(HTTPError) {
                try checkQuery(request, allowing: [])
                body = try readBody { () throws(BodyError) in try AllocateBody.read(request.body) }
                key = try idempotencyKey(request)
            } catch {
                metrics.recordAllocationFailure(reason: error.code)
                throw error
            }
            let allocation = RegionService.Request(size: body.size, label: body.label, key: key, share: body.share, ttl: body.ttl)
            service.allocate(allocation) { [bodies, metrics] result in
                switch result {
                case .success(let allocation):
                    let region = allocation.region
                    var headers = [("Location", location(region, ref: allocation.ref))]
                    switch allocation {
                    case .created:
                        metrics.recordAllocation()
                        respond(bodies.response(201, region, ref: allocation.ref, headers: headers))
                    case .replayed:
                        headers.append(("Idempotent-Replayed", "true"))
                        respond(bodies.response(200, region, ref: allocation.ref, headers: headers))
                    case .joined:
                        respond(bodies.response(200, region, ref: allocation.ref, headers: headers))
                    }
                case .failure(let error):
                    let error = httpError(error)
                    metrics.recordAllocationFailure(reason: error.code)
                    respond(error.response)
                }
            }
        }

        func allocateBatch(_ request: Request, _: Router.Parameters, _ respond: @escaping Router.Respond) throws(HTTPError) {
            let batch: BatchBody
            do throws(HTTPError) {
                guard request.header("Idempotency-Key") == nil else {
                    throw Problem.invalidRequest.error("Idempotency-Key is not taken on batches")
                }
                try checkQuery(request, allowing: [])
                batch = try readBody { () throws(BodyError) in try BatchBody.read(request.body) }
            } catch {
                metrics.recordAllocationFailure(reason: error.code)
                throw error
            }
            let requests = batch.items.map { RegionService.Request(size: $0.size, label: $0.label, share: $0.share, ttl: $0.ttl) }
            service.allocate(batch: requests) { [metrics] result in
                switch result {
                case .success(let allocations):
                    for allocation in allocations {
                        if case .created = allocation { metrics.recordAllocation() }
                    }
                    respond(Response(status: 201, json: RegionListBody(regions: allocations.map { RegionBody($0.region, ref: $0.ref) })))
                case .failure(let error):
                    let error = httpError(error)
                    metrics.recordAllocationFailure(reason: error.code)
                    respond(error.response)
                }
            }
        }

        func renew(_ request: Request, _ parameters: Router.Parameters, _ respond: @escaping Router.Respond) throws(HTTPError) {
            let offset = try parseOffset(parameters["offset"]!)
            let (id, ref) = try identity(request)
            let body = try readBody { () throws(BodyError) in try RenewBody.read(request.body) }
            service.renew(offset: offset, id: id, ref: ref, ttl: body.ttl) { [bodies] result in
                respond(result.map { bodies.response(200, $0, ref: ref) }.answer)
            }
        }

        func list(_ request: Request, _: Router.Parameters, _ respond: @escaping Router.Respond) throws(HTTPError) {
            try checkQuery(request, allowing: ["label"])
            service.regions(label: request.query["label"]) { result in
                respond(result.map { Response(status: 200, json: RegionListBody(regions: $0.map { RegionBody($0) })) }.answer)
            }
        }

        func releaseByLabel(_ request: Request, _: Router.Parameters, _ respond: @escaping Router.Respond) throws(HTTPError) {
            try checkQuery(request, allowing: ["label"])
            guard let label = request.query["label"], !label.isEmpty else {
                throw Problem.invalidRequest.error("give the label whose regions and references to release: ?label=<label>")
            }
            service.release(label: label) { result in
                respond(result.map { Response(status: 200, json: RegionListBody(regions: $0.map { RegionBody($0) })) }.answer)
            }
        }

        func get(_ request: Request, _ parameters: Router.Parameters, _ respond: @escaping Router.Respond) throws(HTTPError) {
            let offset = try parseOffset(parameters["offset"]!)
            let (id, ref) = try identity(request)
            service.region(at: offset, id: id, ref: ref) { [bodies] result in
                respond(result.map { bodies.response(200, $0, ref: ref) }.answer)
            }
        }

        func release(_ request: Request, _ parameters: Router.Parameters, _ respond: @escaping Router.Respond) throws(HTTPError) {
            let offset = try parseOffset(parameters["offset"]!)
            let (id, ref) = try identity(request)
            service.release(offset: offset, id: id, ref: ref) { [bodies] result in
                respond(result.map { bodies.response(200, $0.region, ref: $0.ref) }.answer)
            }
        }

        func dropReference(_ request: Request, _ parameters: Router.Parameters, _ respond: @escaping Router.Respond) throws(HTTPError)
        {
            let offset = try parseOffset(parameters["offset"]!)
            let ref = try number("ref", parameters["ref"]!)
            try checkQuery(request, allowing: ["id"])
            let id = try request.query["id"].map { text throws(HTTPError) in try number("id", text) }
            service.release(offset: offset, id: id, ref: ref) { [bodies] result in
                respond(result.map { bodies.response(200, $0.region, ref: $0.ref) }.answer)
            }
        }

        func pool(_ request: Request, _: Router.Parameters, _ respond: @escaping Router.Respond) throws(HTTPError) {
            try checkQuery(request, allowing: [])
            service.poolFigures { result in
                respond(result.map { Response(status: 200, json: PoolBody($0.pool, wastedBytes: $0.wastedBytes)) }.answer)
            }
        }

        func readyz(_ request: Request, _: Router.Parameters, _ respond: @escaping Router.Respond) throws(HTTPError) {
            try checkQuery(request, allowing: [])
            guard service.isReady else { throw Problem.notReady.error("the state is not loaded or not writable") }
            respond(ok)
        }

        func metricsExposition(_ request: Request, _: Router.Parameters, _ respond: @escaping Router.Respond) throws(HTTPError) {
            try checkQuery(request, allowing: [])
            service.poolFigures { [metrics] result in
                respond(
                    result.map {
                        Response(
                            status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                            body: metrics.exposition($0))
                    }.answer)
            }
        }
    }

    /// Reads a body, turning its reader's refusal into `invalid_request`
    /// (with the item's `index` for a batch).
    static func readBody<Body>(_ read: () throws(BodyError) -> Body) throws(HTTPError) -> Body {
        do throws(BodyError) {
            return try read()
        } catch {
            throw Problem.invalidRequest.error(error.detail, members: error.index.map { ["index": UInt64($0)] } ?? [:])
        }
    }

    /// Where an allocation is: its offset with its id, and the reference on a shared region.
    static func location(_ region: SavedRegion, ref: UInt64) -> String {
        region.share == nil ? "/regions/\(region.offset)?id=\(region.id)" : "/regions/\(region.offset)?id=\(region.id)&ref=\(ref)"
    }

    /// Refuses a query argument the route does not take, naming it: a typo
    /// (`?lable=`) must not widen what a request acts on.
    static func checkQuery(_ request: Request, allowing names: Set<String>) throws(HTTPError) {
        if let unknown = request.query.keys.sorted().first(where: { !names.contains($0) }) {
            throw Problem.invalidRequest.error("unknown query parameter \"\(unknown)\"")
        }
    }

    /// The `id` and `ref` query arguments of a route on `/regions/{offset}`:
    /// plain decimal numbers from 1, when given.
    static func identity(_ request: Request) throws(HTTPError) -> (id: UInt64?, ref: UInt64?) {
        try checkQuery(request, allowing: ["id", "ref"])
        return (
            try request.query["id"].map { text throws(HTTPError) in try number("id", text) },
            try request.query["ref"].map { text throws(HTTPError) in try number("ref", text) }
        )
    }

    /// An id: a plain decimal number from 1.
    static func number(_ name: String, _ text: String) throws(HTTPError) -> UInt64 {
        guard !text.isEmpty, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let value = UInt64(text), value > 0 else {
            throw Problem.invalidRequest.error("\"\(name)\" must be a plain decimal number from 1 to 18446744073709551615")
        }
        return value
    }

    /// The `Idempotency-Key` header: 1 to 255 visible ASCII characters, or none.
    static func idempotencyKey(_ request: Request) throws(HTTPError) -> String? {
        guard let key = request.header("Idempotency-Key") else { return nil }
        guard (1...255).contains(key.utf8.count), key.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw Problem.invalidRequest.error("Idempotency-Key must be 1 to 255 visible ASCII characters")
        }
        return key
    }

    /// The credentials of an `Authorization` value in the `Bearer` scheme,
    /// whose name is matched whatever its case (RFC 9110 §11.1), after the
    /// spaces that follow it; nil for another scheme. The credentials are
    /// returned as given: the token itself is compared exactly.
    static func bearerCredentials(_ authorization: String) -> Substring? {
        let bytes = authorization.utf8
        // For letters, `| 0x20` folds exactly the upper case onto the lower.
        guard let space = bytes.firstIndex(of: UInt8(ascii: " ")),
            bytes[..<space].map({ $0 | 0x20 }).elementsEqual("bearer".utf8)
        else { return nil }
        return Substring(bytes[space...].drop { $0 == UInt8(ascii: " ") })
    }

    /// Compares without stopping at the first difference, so the time taken
    /// tells nothing about how much of a guessed token was right.
    static func constantTimeEquals(_ given: [UInt8], _ expected: [UInt8]) -> Bool {
        var difference = UInt8(given.count == expected.count ? 0 : 1)
        for index in expected.indices {
            difference |= expected[index] ^ (index < given.count ? given[index] : 0)
        }
        return difference == 0
    }

    /// A plain decimal UInt64: digits only, no sign, no spaces.
    static func parseOffset(_ text: String) throws(HTTPError) -> UInt64 {
        guard !text.isEmpty, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let offset = UInt64(text) else {
            throw Problem.invalidOffset.error("the offset must be a plain decimal number from 0 to 18446744073709551615")
        }
        return offset
    }

    /// The problem and words of each ``RegionError``: the only such mapping.
    static func httpError(_ error: RegionError) -> HTTPError {
        switch error {
        case .invalidMemoryClass: Problem.invalidMemoryClass.error("\(error)")
        case .notEnoughSpace(let largestFree): Problem.notEnoughSpace.error("\(error)", members: ["largestFree": largestFree])
        case .notAllocated: Problem.notAllocated.error("\(error)")
        case .keyReused(let key):
            Problem.idempotencyKeyReused.error("Idempotency-Key \(key) was used for a request with another size, label, share or ttl")
        case .unavailable, .loading: Problem.stateUnavailable.error("\(error)")
        case .shareConflict: Problem.shareConflict.error("\(error)")
        case .notLeased: Problem.notLeased.error("the region has no lease: only a leased region can be renewed")
        case .tooManyReferences(let limit):
            Problem.tooManyReferences.error("the shared region already holds \(limit) references, the most it may", members: ["limit": UInt64(limit)])
        case .referencesHeld(let count):
            Problem.referencesHeld.error(
                "\(count) references are held on this shared region: drop yours with DELETE /regions/<offset>/refs/<ref>",
                members: ["refs": UInt64(count)])
        case .batchItem(let index, let inner):
            {
                var mapped = httpError(inner)
                mapped.detail = "item \(index): \(mapped.detail); nothing in the batch was allocated"
                mapped.members["index"] = UInt64(index)
                return mapped
            }()
        }
    }
}

extension Result<Response, RegionError> {
    /// The response, or the problem of the error.
    var answer: Response {
        switch self {
        case .success(let response): response
        case .failure(let error): RegionAPI.httpError(error).response
        }
    }
}
