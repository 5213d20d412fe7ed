public import Logging
internal import MemoryPool
public import MicroHTTP
public import RegionState

/// The routes of regiond over one ``RegionService``, and the one place that
/// turns a ``RegionError`` into a status and a problem `code`.
public enum RegionAPI {
    /// Routes that answer without the bearer token: the probes.
    static let openRoutes: Set<String> = ["/livez", "/healthz", "/readyz"]

    /// Makes the router. With a `token`, every route but the probes needs
    /// `Authorization: Bearer <token>`. `logger` gets a warning for every
    /// failed request, `metrics` counts them all.
    public static func router(
        service: RegionService, metrics: RegionMetrics, logger: Logger, token: String? = nil
    ) -> Router {
        var router = Router()
        let bodies = RegionBodyCache()
        if let token {
            let expected = Array("Bearer \(token)".utf8)
            router.guardRequest = { (request) throws(HTTPError) in
                guard !openRoutes.contains(request.path) else { return }
                guard let given = request.header("Authorization"), constantTimeEquals(Array(given.utf8), expected) else {
                    throw HTTPError(
                        401, "unauthorized", "a valid bearer token is required",
                        headers: [("WWW-Authenticate", "Bearer")])
                }
            }
        }
        router.observe = { request, route, response, started in
            metrics.recordRequest(
                route: route, method: request.method, status: response.status, duration: ContinuousClock.now - started)
            if let code = response.problemCode {
                logger.warning(
                    "request failed",
                    metadata: ["method": "\(request.method)", "route": "\(route)", "status": "\(response.status)", "code": "\(code)"])
            }
        }
        router.on("POST", "/regions") { (request, _, respond) throws(HTTPError) in
            let body: AllocateBody
            let key: String?
            do throws(HTTPError) {
                try checkQuery(request, allowing: [])
                body = try decodeAllocation(request.body)
                key = try idempotencyKey(request)
            } catch {
                metrics.recordAllocationFailure(reason: error.code)
                throw error
            }
            let allocation = RegionService.Request(
                size: body.size, label: body.label, key: key, share: body.share, ttl: body.ttl)
            service.allocate(allocation) { result in
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
        // Before /regions/{offset}, which would take "batch" for an offset.
        router.on("POST", "/regions/batch") { (request, _, respond) throws(HTTPError) in
            guard request.header("Idempotency-Key") == nil else {
                throw HTTPError(400, "invalid_request", "Idempotency-Key is not taken on batches")
            }
            let batch: BatchBody
            switch BatchBody.read(request.body) {
            case .success(let read): batch = read
            case .failure(let error):
                metrics.recordAllocationFailure(reason: error.code)
                throw error
            }
            try checkQuery(request, allowing: [])
            let requests = batch.items.map {
                RegionService.Request(size: $0.size, label: $0.label, share: $0.share, ttl: $0.ttl)
            }
            service.allocate(batch: requests) { result in
                switch result {
                case .success(let allocations):
                    for allocation in allocations {
                        if case .created = allocation { metrics.recordAllocation() }
                    }
                    respond(
                        Response(
                            status: 201,
                            json: RegionListBody(regions: allocations.map { RegionBody($0.region, ref: $0.ref) })))
                case .failure(let error):
                    let error = httpError(error)
                    metrics.recordAllocationFailure(reason: error.code)
                    respond(error.response)
                }
            }
        }
        router.on("POST", "/regions/{offset}/renew") { (request, parameters, respond) throws(HTTPError) in
            let offset = try parseOffset(parameters["offset"]!)
            let (id, ref) = try identity(request)
            guard let body = RenewBody.read(request.body) else {
                throw HTTPError(
                    400, "invalid_request",
                    "the body must be empty or a JSON object with an optional integer \"ttl\" from 1 to 2592000 seconds")
            }
            service.renew(offset: offset, id: id, ref: ref, ttl: body.ttl) { result in
                switch result {
                case .success(let region): respond(bodies.response(200, region, ref: ref))
                case .failure(let error): respond(httpError(error).response)
                }
            }
        }
        router.on("GET", "/regions") { (request, _, respond) throws(HTTPError) in
            try checkQuery(request, allowing: ["label"])
            service.regions(label: request.query["label"]) { result in
                switch result {
                case .success(let regions):
                    respond(Response(status: 200, json: RegionListBody(regions: regions.map { RegionBody($0) })))
                case .failure(let error): respond(httpError(error).response)
                }
            }
        }
        router.on("DELETE", "/regions") { (request, _, respond) throws(HTTPError) in
            try checkQuery(request, allowing: ["label"])
            guard let label = request.query["label"], !label.isEmpty else {
                throw HTTPError(400, "invalid_request", "give the label whose regions and references to release: ?label=<label>")
            }
            service.release(label: label) { result in
                switch result {
                case .success(let regions):
                    respond(Response(status: 200, json: RegionListBody(regions: regions.map { RegionBody($0) })))
                case .failure(let error): respond(httpError(error).response)
                }
            }
        }
        router.on("GET", "/regions/{offset}") { (request, parameters, respond) throws(HTTPError) in
            let offset = try parseOffset(parameters["offset"]!)
            let (id, ref) = try identity(request)
            service.region(at: offset, id: id, ref: ref) { result in
                switch result {
                case .success(let region): respond(bodies.response(200, region, ref: ref))
                case .failure(let error): respond(httpError(error).response)
                }
            }
        }
        router.on("DELETE", "/regions/{offset}") { (request, parameters, respond) throws(HTTPError) in
            let offset = try parseOffset(parameters["offset"]!)
            let (id, ref) = try identity(request)
            service.release(offset: offset, id: id, ref: ref) { result in
                switch result {
                case .success(let release): respond(bodies.response(200, release.region, ref: release.ref))
                case .failure(let error): respond(httpError(error).response)
                }
            }
        }
        router.on("GET", "/pool") { (request, _, respond) throws(HTTPError) in
            try checkQuery(request, allowing: [])
            service.poolFigures { result in
                switch result {
                case .success(let figures):
                    respond(Response(status: 200, json: PoolBody(figures.pool, wastedBytes: figures.wastedBytes)))
                case .failure(let error): respond(httpError(error).response)
                }
            }
        }
        // Encoded once: the probes are asked often.
        let ok = Response(status: 200, json: StatusBody(status: "ok"))
        router.on("GET", "/livez", now: { _, _ in ok })
        router.on("GET", "/healthz", now: { _, _ in ok })
        router.on("GET", "/readyz", now: { (_, _) throws(HTTPError) in
            guard service.isReady else { throw HTTPError(503, "not_ready", "the state is not loaded or not writable") }
            return ok
        })
        router.on("GET", "/metrics") { _, _, respond in
            service.poolFigures { result in
                switch result {
                case .success(let figures):
                    respond(
                        Response(
                            status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                            body: metrics.exposition(figures)))
                case .failure(let error): respond(httpError(error).response)
                }
            }
        }
        router.on("GET", "/openapi.yaml", now: { _, _ in
            Response(status: 200, headers: [("Content-Type", "application/yaml")], body: PackageResources.openapi_yaml)
        })
        return router
    }

    /// Reads `{"size": N, "label": "...", "share": "...", "ttl": S}`; anything else is `invalid_request`.
    static func decodeAllocation(_ body: [UInt8]) throws(HTTPError) -> AllocateBody {
        guard let json = JSONValue.parse(body) else {
            throw HTTPError(
                400, "invalid_request",
                "the body must be a JSON object with an integer \"size\" from 0 to 18446744073709551615 and an optional string \"label\""
            )
        }
        switch AllocateBody.read(json) {
        case .success(let body): return body
        case .failure(let problem): throw HTTPError(400, "invalid_request", problem.detail)
        }
    }

    /// The `Idempotency-Key` header: 1 to 255 visible ASCII characters, or none.
    static func idempotencyKey(_ request: Request) throws(HTTPError) -> String? {
        guard let key = request.header("Idempotency-Key") else { return nil }
        guard (1...255).contains(key.utf8.count), key.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw HTTPError(400, "invalid_request", "Idempotency-Key must be 1 to 255 visible ASCII characters")
        }
        return key
    }

    /// Where an allocation is: its offset with its id, and the reference on a shared region.
    static func location(_ region: SavedRegion, ref: UInt64) -> String {
        region.share == nil ? "/regions/\(region.offset)?id=\(region.id)" : "/regions/\(region.offset)?id=\(region.id)&ref=\(ref)"
    }

    /// Refuses a query argument the route does not take, naming it: a typo
    /// (`?lable=`) must not widen what a request acts on.
    static func checkQuery(_ request: Request, allowing names: Set<String>) throws(HTTPError) {
        if let unknown = request.query.keys.sorted().first(where: { !names.contains($0) }) {
            throw HTTPError(400, "invalid_request", "unknown query parameter \"\(unknown)\"")
        }
    }

    /// The `id` and `ref` query arguments of a route on `/regions/{offset}`:
    /// plain decimal numbers from 1, when given.
    static func identity(_ request: Request) throws(HTTPError) -> (id: UInt64?, ref: UInt64?) {
        try checkQuery(request, allowing: ["id", "ref"])
        func number(_ name: String) throws(HTTPError) -> UInt64? {
            guard let text = request.query[name] else { return nil }
            guard !text.isEmpty, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let value = UInt64(text), value > 0 else {
                throw HTTPError(
                    400, "invalid_request", "\"\(name)\" must be a plain decimal number from 1 to 18446744073709551615")
            }
            return value
        }
        return (try number("id"), try number("ref"))
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
            throw HTTPError(400, "invalid_offset", "the offset must be a plain decimal number from 0 to 18446744073709551615")
        }
        return offset
    }

    /// The status and problem code of each ``RegionError``: the only such mapping.
    static func httpError(_ error: RegionError) -> HTTPError {
        switch error {
        case .invalidMemoryClass: HTTPError(400, "invalid_memory_class", "\(error)")
        case .notEnoughSpace(let largestFree):
            HTTPError(409, "not_enough_space", "\(error)", members: ["largestFree": largestFree])
        case .notAllocated: HTTPError(404, "not_allocated", "\(error)")
        case .keyReused: HTTPError(422, "idempotency_key_reused", "\(error)")
        case .unavailable, .loading: HTTPError(503, "state_unavailable", "\(error)")
        case .shareConflict: HTTPError(409, "share_conflict", "\(error)")
        case .notLeased: HTTPError(409, "not_leased", "\(error)")
        case .tooManyReferences(let limit):
            HTTPError(409, "too_many_references", "\(error)", members: ["limit": UInt64(limit)])
        case .batchItem(let index, let inner):
            {
                var mapped = httpError(inner)
                mapped.detail = "\(error)"
                mapped.members["index"] = UInt64(index)
                return mapped
            }()
        }
    }

    /// Runs a service call, turning its ``RegionError`` into the ``HTTPError`` the router renders.
    private static func mapped<T>(_ call: () throws(RegionError) -> T) throws(HTTPError) -> T {
        do throws(RegionError) {
            return try call()
        } catch {
            throw httpError(error)
        }
    }
}
