import ArgumentParser
import Dispatch
import Foundation
import Logging
import RegionServer

/// regiond: hands out regions of a 4 GiB VPMem device over JSON and HTTP.
@main
struct Regiond: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Hands out regions of a 4 GiB VPMem device over JSON and HTTP.",
        discussion: "Every option falls back to a REGIOND_<NAME> environment variable, e.g. REGIOND_PORT."
    )

    @Option(help: "Address to listen on (REGIOND_HOST; default 127.0.0.1).")
    var host: String?

    @Option(help: "TCP port; 0 picks a free one (REGIOND_PORT; default 8080).")
    var port: Int?

    @Option(help: "Listen on this Unix socket instead of TCP, mode 0600 (REGIOND_UNIX_SOCKET).")
    var unixSocket: String?

    @Option(help: "Directory for the journal and snapshots (REGIOND_STATE_DIR; default ./regiond-state).")
    var stateDir: String?

    @Flag(help: "Keep no state on disk: everything is lost on exit (REGIOND_IN_MEMORY).")
    var inMemory = false

    @Option(help: "File holding the bearer token every route but the probes requires (REGIOND_TOKEN_FILE).")
    var tokenFile: String?

    @Option(help: "HTTP polling threads (REGIOND_THREADS; default 2).")
    var threads: Int?

    @Option(help: "Connections served at once (REGIOND_MAX_CONNECTIONS; default 1000).")
    var maxConnections: Int?

    @Option(help: "Connections from one IP address at once, 0 for no limit (REGIOND_MAX_CONNECTIONS_PER_IP; default 64).")
    var maxConnectionsPerIP: Int?

    @Option(help: "Seconds before an idle connection is closed, at least 1 (REGIOND_CONNECTION_TIMEOUT; default 30).")
    var connectionTimeout: Int?

    @Option(help: "trace, debug, info, notice, warning, error or critical (REGIOND_LOG_LEVEL; default info).")
    var logLevel: String?

    @Flag(help: "Print every route as METHOD /path and exit.")
    var printRoutes = false

    func validate() throws {
        if let port, !(0...65535).contains(port) { throw ValidationError("--port must be from 0 to 65535") }
        if let threads, !(1...64).contains(threads) { throw ValidationError("--threads must be from 1 to 64") }
        if let maxConnections, maxConnections < 1 { throw ValidationError("--max-connections must be at least 1") }
        if let maxConnectionsPerIP, maxConnectionsPerIP < 0 {
            throw ValidationError("--max-connections-per-ip must be 0 or more")
        }
        if let connectionTimeout, connectionTimeout < 1 {
            throw ValidationError("--connection-timeout must be at least 1 second")
        }
        if inMemory && stateDir != nil { throw ValidationError("--in-memory and --state-dir exclude each other") }
        if unixSocket != nil && (host != nil || port != nil) {
            throw ValidationError("--unix-socket replaces --host and --port; give one or the other")
        }
    }

    func run() throws {
        let settings = try Settings.resolve(self, environment: ProcessInfo.processInfo.environment)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = settings.logLevel
            return handler
        }
        let logger = Logger(label: "regiond")
        let service = RegionService(logger: logger)
        let router = RegionAPI.router(service: service, logger: logger)
        if printRoutes {
            router.routeTable.forEach { print($0) }
            return
        }
        let endpoint: HTTPServer.Configuration.Endpoint =
            settings.unixSocket.map { .unix(path: $0) } ?? .tcp(host: settings.host, port: settings.port)
        let server = HTTPServer(
            configuration: .init(
                endpoint: endpoint,
                threads: settings.threads,
                maxConnections: settings.maxConnections,
                maxConnectionsPerIP: settings.maxConnectionsPerIP,
                connectionTimeout: settings.connectionTimeout
            ),
            logger: logger
        ) { request, respond in
            router.handle(request, respond: respond)
        }
        // Handlers first: a supervisor may signal as soon as it reads the
        // address, and a signal before them would kill us or be lost.
        let stop: @Sendable (Int32) -> Void = { signal in
            logger.info("stopping", metadata: ["signal": "\(signal)"])
            server.shutdown()
            logger.info("stopped")
            Foundation.exit(0)
        }
        let sources = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .main)
            source.setEventHandler { stop(number) }
            source.resume()
            return source
        }
        do {
            try server.start()
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(1)
        }
        print("listening on \(server.address)")
        fflush(nil)
        withExtendedLifetime(sources) { dispatchMain() }
    }
}
