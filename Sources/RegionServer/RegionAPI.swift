public import Logging
internal import MemoryPool

/// The routes of DESIGN §2 over one ``RegionService``.
public enum RegionAPI {
    /// Makes the router; `logger` gets a warning for every failed request.
    public static func router(service: RegionService, logger: Logger) -> Router {
        var router = Router()
        router.on("POST", "/regions") { (request, _, respond) throws(HTTPError) in
            let body = try decodeAllocation(request.body)
            let key = try idempotencyKey(request)
            service.allocate(size: body.size, label: body.label, key: key) { result in
                switch result {
                case .success(.created(let region)):
                    respond(JSON.response(201, RegionBody(region), headers: [("Location", "/regions/\(region.offset)")]))
                case .success(.replayed(let region)):
                    respond(
                        JSON.response(
                            200, RegionBody(region),
                            headers: [("Location", "/regions/\(region.offset)"), ("Idempotent-Replayed", "true")]))
                case .failure(let error):
                    respond(error.response)
                }
            }
        }
        router.on("GET", "/regions", now: { request, _ in
            JSON.response(200, RegionListBody(regions: service.regions(label: request.query["label"]).map(RegionBody.init)))
        })
        router.on("GET", "/regions/{offset}", now: { (_, parameters) throws(HTTPError) in
            let offset = try parseOffset(parameters["offset"]!)
            guard let region = service.region(at: offset) else {
                throw HTTPError(404, "not_allocated", "\(PoolError.notAllocated)")
            }
            return JSON.response(200, RegionBody(region))
        })
        router.on("DELETE", "/regions/{offset}") { (_, parameters, respond) throws(HTTPError) in
            let offset = try parseOffset(parameters["offset"]!)
            service.release(offset: offset) { result in
                respond(result.map { JSON.response(200, RegionBody($0)) }.get(or: \.response))
            }
        }
        router.on("GET", "/pool", now: { _, _ in JSON.response(200, PoolBody(service.poolSnapshot)) })
        router.on("GET", "/livez", now: { _, _ in JSON.response(200, StatusBody(status: "ok")) })
        router.on("GET", "/healthz", now: { _, _ in JSON.response(200, StatusBody(status: "ok")) })
        router.on("GET", "/readyz", now: { (_, _) throws(HTTPError) in
            guard service.isReady else { throw HTTPError(503, "not_ready", "the state is not loaded or not writable") }
            return JSON.response(200, StatusBody(status: "ok"))
        })
        router.on("GET", "/openapi.yaml", now: { _, _ in
            Response(status: 200, headers: [("Content-Type", "application/yaml")], body: PackageResources.openapi_yaml)
        })
        return router
    }

    /// Reads `{"size": N, "label": "..."}`; anything else is `invalid_request`.
    static func decodeAllocation(_ body: [UInt8]) throws(HTTPError) -> AllocateBody {
        let decoded: AllocateBody
        do {
            decoded = try JSON.decode(AllocateBody.self, from: body)
        } catch {
            throw HTTPError(
                400, "invalid_request",
                "the body must be a JSON object with an integer \"size\" from 0 to 18446744073709551615 and an optional string \"label\""
            )
        }
        if let label = decoded.label, label.utf8.count > 256 {
            throw HTTPError(400, "invalid_request", "the label is longer than 256 bytes")
        }
        return decoded
    }

    /// The `Idempotency-Key` header: 1 to 255 visible ASCII characters, or none.
    static func idempotencyKey(_ request: Request) throws(HTTPError) -> String? {
        guard let key = request.header("Idempotency-Key") else { return nil }
        guard (1...255).contains(key.utf8.count), key.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw HTTPError(400, "invalid_request", "Idempotency-Key must be 1 to 255 visible ASCII characters")
        }
        return key
    }

    /// A plain decimal UInt64: digits only, no sign, no spaces.
    static func parseOffset(_ text: String) throws(HTTPError) -> UInt64 {
        guard !text.isEmpty, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let offset = UInt64(text) else {
            throw HTTPError(400, "invalid_offset", "the offset must be a plain decimal number from 0 to 18446744073709551615")
        }
        return offset
    }
}

extension Result {
    /// The success value, or what `transform` makes of the failure.
    func get(or transform: (Failure) -> Success) -> Success {
        switch self {
        case .success(let value): value
        case .failure(let error): transform(error)
        }
    }
}
