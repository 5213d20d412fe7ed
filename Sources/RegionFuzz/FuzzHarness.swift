internal import Foundation
internal import Locking
internal import Logging
internal import MicroHTTP
internal import RegionServer
internal import RegionState

/// One in-memory service behind two routers (open and token-guarded) that
/// answers decoded fuzz inputs and checks the server's promises after each.
/// State persists from one input to the next, so sequences matter.
final class FuzzHarness: Sendable {
    /// Above this many regions the harness releases them all, so inputs stay cheap.
    static let regionLimit = 256
    /// The one harness of the fuzzer process: its state carries over between inputs.
    static let shared = FuzzHarness()

    let open: Router
    let guarded: Router

    init() {
        let logger = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
        let service = RegionService(journal: nil, logger: logger)
        let metrics = RegionMetrics()
        open = RegionAPI.router(service: service, metrics: metrics, logger: logger)
        guarded = RegionAPI.router(service: service, metrics: metrics, logger: logger, token: FuzzInput.token)
    }

    /// Answers the request the bytes describe and returns the first broken
    /// promise, or nil when all hold.
    func run(_ bytes: [UInt8]) -> String? {
        let (request, useToken) = FuzzInput.request(from: bytes)
        let response: Response
        switch answer(request, by: useToken ? guarded : open) {
        case .success(let answered): response = answered
        case .failure(let violation): return violation.message
        }
        if let violation = check(response, to: request, guarded: useToken) {
            return "\(violation) (request: \(describe(request)), status \(response.status), body: \(text(response.body)))"
        }
        return checkPool()
    }

    /// A broken promise; `Error` only so it fits in a `Result`.
    struct Violation: Error {
        let message: String
    }

    /// Handles `request`; a violation unless exactly one response came back before `handle` returned.
    func answer(_ request: Request, by router: Router) -> Result<Response, Violation> {
        let responses = Locked<[Response]>([])
        router.handle(request) { response in responses.withLock { $0.append(response) } }
        let answered = responses.withLock { $0 }
        guard answered.count == 1 else {
            return .failure(Violation(message: "\(answered.count) responses to \(describe(request))"))
        }
        return .success(answered[0])
    }

    /// The promises every single response keeps.
    func check(_ response: Response, to request: Request, guarded: Bool) -> String? {
        guard (200..<600).contains(response.status) else { return "status out of range" }
        let openRoute = RegionRoute.allCases.contains { $0.isOpen && $0.template == request.path }
        if guarded && !openRoute && request.header("Authorization") != "Bearer \(FuzzInput.token)"
            && response.status != 401
        {
            return "no 401 without the token"
        }
        if response.status == 401 && (!guarded || request.header("Authorization") == "Bearer \(FuzzInput.token)") {
            return "401 although no token was needed or the right one was sent"
        }
        if response.status >= 400 {
            guard response.header("Content-Type") == "application/problem+json" else {
                return "error without application/problem+json"
            }
            guard let problem = object(response.body), problem["code"] is String,
                (problem["status"] as? Int) == response.status
            else {
                return "error body without a code and the matching status"
            }
            return nil
        }
        guard (200..<300).contains(response.status) else { return "unexpected status" }
        return checkSuccess(response, to: request)
    }

    /// A 2xx answer: the body its route promises. Only these routes answer
    /// 2xx at all; the router matches paths exactly.
    func checkSuccess(_ response: Response, to request: Request) -> String? {
        let json = response.header("Content-Type") == "application/json" ? object(response.body) : nil
        // HEAD is answered by the GET route (with its body, until libmicrohttpd drops it).
        let method = request.method == "HEAD" ? "GET" : request.method
        guard let template = open.template(matching: request.path), let route = RegionRoute(method: method, template: template)
        else {
            return "2xx from \(request.method) \(request.path), which no route takes"
        }
        switch route {
        case .allocate, .get, .release, .dropReference, .renew:
            return checkRegion(json)
        case .list, .allocateBatch, .releaseByLabel:
            guard let regions = json?["regions"] as? [[String: Any]] else { return "region list body does not decode" }
            return regions.lazy.compactMap(checkRegion).first
        case .pool:
            return poolFigures(json) == nil ? "pool body does not decode" : nil
        case .livez, .healthz, .readyz:
            return json?["status"] as? String == "ok" ? nil : "probe body is not {\"status\":\"ok\"}"
        case .metrics:
            guard response.header("Content-Type")?.hasPrefix("text/plain") == true,
                String(validating: response.body, as: UTF8.self)?.contains("# TYPE regiond_") == true
            else {
                return "metrics body is not the text exposition"
            }
            return nil
        case .openapi:
            guard response.header("Content-Type") == "application/yaml", response.body.starts(with: Array("openapi:".utf8))
            else {
                return "openapi.yaml body is not the spec"
            }
            return nil
        }
    }

    /// A region body: an id, and offset, size and class that agree and fit in the 4 GiB device.
    func checkRegion(_ region: [String: Any]?) -> String? {
        guard let region, let offset = region["offset"] as? UInt64, let size = region["size"] as? UInt64,
            let memoryClass = region["class"] as? Int
        else {
            return "region body does not decode"
        }
        guard let id = region["id"] as? UInt64, id > 0 else { return "region \(region) has no id" }
        guard (0...12).contains(memoryClass), size == UInt64(1 << 20) << (2 * UInt64(memoryClass)),
            offset % size == 0, offset + size <= 1 << 32
        else {
            return "region \(region) is not a valid buddy region"
        }
        return nil
    }

    /// GET /pool adds up, agrees with GET /regions, and the harness keeps the pool small.
    func checkPool() -> String? {
        guard case .success(let poolResponse) = answer(Request(method: "GET", path: "/pool"), by: open),
            poolResponse.status == 200, let (capacity, used, free, count) = poolFigures(object(poolResponse.body))
        else {
            return "GET /pool failed"
        }
        guard used + free == capacity, capacity == 1 << 32 else {
            return "pool does not add up: used \(used) + free \(free) != capacity \(capacity)"
        }
        guard case .success(let listResponse) = answer(Request(method: "GET", path: "/regions"), by: open),
            listResponse.status == 200, let regions = object(listResponse.body)?["regions"] as? [[String: Any]]
        else {
            return "GET /regions failed"
        }
        guard regions.count == count else { return "GET /regions lists \(regions.count), GET /pool counts \(count)" }
        var listedBytes: UInt64 = 0
        for region in regions {
            if let violation = checkRegion(region) { return violation }
            listedBytes += region["size"] as! UInt64  // checked just above
        }
        guard listedBytes == used else { return "regions add up to \(listedBytes) bytes, pool says \(used) used" }
        if count > Self.regionLimit {
            for region in regions {
                let request = Request(method: "DELETE", path: "/regions/\(region["offset"] as! UInt64)")
                guard case .success(let response) = answer(request, by: open), response.status == 200 else {
                    return "cannot release a listed region: \(describe(request))"
                }
            }
        }
        return nil
    }

    /// The figures of a `GET /pool` body; nil unless it has them all.
    private func poolFigures(_ pool: [String: Any]?) -> (capacity: UInt64, used: UInt64, free: UInt64, count: Int)? {
        guard let pool, let capacity = pool["capacity"] as? UInt64, let used = pool["usedBytes"] as? UInt64,
            let free = pool["freeBytes"] as? UInt64, let count = pool["regionCount"] as? Int
        else {
            return nil
        }
        return (capacity, used, free, count)
    }

    private func object(_ body: [UInt8]) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
    }

    private func text(_ bytes: [UInt8]) -> String {
        String(decoding: bytes.prefix(300), as: UTF8.self)
    }

    private func describe(_ request: Request) -> String {
        "\(request.method.debugDescription) \(request.path.debugDescription) query \(request.query) "
            + "headers \(request.headers) body \(text(request.body).debugDescription)"
    }
}
