/// Every route regiond serves, in the order `--print-routes` lists them:
/// the one place a route is declared. The router, the probes that need no
/// token, `--print-routes` (and through it the openapi check) and the fuzz
/// oracle all read this table.
public enum RegionRoute: String, CaseIterable, Sendable {
    case allocate = "POST /regions"
    case list = "GET /regions"
    case releaseByLabel = "DELETE /regions"
    case allocateBatch = "POST /regions/batch"
    case renew = "POST /regions/{offset}/renew"
    case get = "GET /regions/{offset}"
    case release = "DELETE /regions/{offset}"
    case dropReference = "DELETE /regions/{offset}/refs/{ref}"
    case pool = "GET /pool"
    case livez = "GET /livez"
    case healthz = "GET /healthz"
    case readyz = "GET /readyz"
    case metrics = "GET /metrics"
    case openapi = "GET /openapi.yaml"

    /// The method.
    public var method: String { String(rawValue.prefix { $0 != " " }) }

    /// The path template, with `{name}` for a parameter.
    public var template: String { String(rawValue.drop { $0 != " " }.dropFirst()) }

    /// Whether it answers without the bearer token: the probes.
    public var isOpen: Bool {
        switch self {
        case .livez, .healthz, .readyz: true
        default: false
        }
    }

    /// The route with this method and template, if regiond serves it.
    public init?(method: String, template: String) {
        self.init(rawValue: method + " " + template)
    }
}
