import Dispatch
import MicroHTTP
import Locking

@testable import TestSupport

/// A small router that knows nothing of regions, for testing the HTTP layer
/// alone: `GET /ping` answers `pong`, `POST /echo` answers its body,
/// `GET /held` answers only when the test calls ``answerHeld(_:)``, and
/// `GET /echo/{value}` answers the path parameter.
final class ToyRoutes: Sendable {
    /// The responders of `/held` requests not answered yet.
    private let held = Locked<[Router.Respond]>([])

    var router: Router {
        var router = Router()
        router.refuse = render
        router.on("GET", "/ping", now: { _, _ in Response(status: 200, body: Array("pong".utf8)) })
        router.on("POST", "/echo", now: { request, _ in Response(status: 200, body: request.body) })
        router.on("GET", "/echo/{value}", now: { _, parameters in
            Response(status: 200, body: Array(parameters["value", default: ""].utf8))
        })
        router.on("GET", "/held") { [self] _, _, respond in
            held.withLock { $0.append(respond) }
            held.wakeWaiters()
        }
        return router
    }

    /// Waits until `count` `/held` requests wait for an answer (each one
    /// wakes the wait); 5 s is the failure bound only. Returns how many wait.
    func waitForHeld(_ count: Int) -> Int {
        held.withLock(waitingUntil: { $0.count >= count }, deadline: .now + .seconds(5)) { $0.count }
    }

    /// Answers every held request with `response`.
    func answerHeld(_ response: Response) {
        for respond in held.withLock({ list in defer { list = [] }; return list }) {
            respond(response)
        }
    }
}

/// Renders a refusal as its Swift description, so a test sees which one came.
let render: @Sendable (Refusal) -> Response = { refusal in
    Response(status: refusal.status, headers: refusal.headers, body: Array("\(refusal)".utf8))
}

/// Starts a server for `routes` on 127.0.0.1, port 0.
func startServer(_ routes: ToyRoutes, timeout: Int = 5) throws -> (HTTPServer, port: Int) {
    let router = routes.router
    let server = HTTPServer(
        configuration: .init(endpoint: .tcp(host: "127.0.0.1", port: 0), connectionTimeout: timeout),
        logger: quietLogger,
        refuse: { refusal, _ in render(refusal) }
    ) { request, respond in
        router.handle(request, respond: respond)
    }
    try server.start()
    let port = Int(server.address.split(separator: ":").last ?? "") ?? 0
    return (server, port)
}
