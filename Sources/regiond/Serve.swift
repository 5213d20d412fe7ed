import ArgumentParser
import Dispatch
import Foundation
import Logging
import MicroHTTP
import RegionLog
import RegionServer
import RegionState

/// `regiond serve`, the default command: listens, loads the state, serves
/// until SIGTERM or SIGINT.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serves the region API (the default command).",
        discussion: "Every option falls back to a REGIOND_<NAME> environment variable, e.g. REGIOND_PORT."
    )

    @OptionGroup var options: ServerOptions

    @Flag(help: "Print every route as METHOD /path and exit.")
    var printRoutes = false

    /// The token in `path`, without one trailing newline.
    static func readToken(_ path: String) throws -> String {
        let contents: String
        do {
            contents = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ValidationError("cannot read the token file \(path): \(error.localizedDescription)")
        }
        // On bytes: "\r\n" is one Character, so String's hasSuffix("\n") misses it.
        var token = Array(contents.utf8)
        if token.last == UInt8(ascii: "\n") { token.removeLast() }
        if token.last == UInt8(ascii: "\r") { token.removeLast() }
        guard !token.isEmpty, token.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw ValidationError("the token file \(path) must hold one token of visible ASCII characters")
        }
        return String(decoding: token, as: UTF8.self)
    }

    func run() throws {
        // Block SIGTERM and SIGINT before any thread starts (every thread
        // inherits the mask); the main thread takes them with sigwait at the end.
        var stopSignals = sigset_t()
        sigemptyset(&stopSignals)
        sigaddset(&stopSignals, SIGTERM)
        sigaddset(&stopSignals, SIGINT)
        pthread_sigmask(SIG_BLOCK, &stopSignals, nil)
        let environment = ProcessInfo.processInfo.environment
        let settings = try Settings.resolve(options, environment: environment)
        LoggingSystem.bootstrap { label in
            BatchedLogHandler(label: label, sink: .standardError, logLevel: settings.logLevel)
        }
        // Whatever way run() ends, the lines still waiting are written.
        defer { LogSink.standardError.close() }
        let logger = Logger(label: "regiond")
        let token = try settings.tokenFile.map(Self.readToken)
        if printRoutes {
            RegionRoute.allCases.forEach { print($0.rawValue) }
            return
        }
        let notifier = SystemdNotifier(environment: environment)
        /// Tells the supervisor, if there is one; a failure is worth a warning, not a stop.
        func notify(_ assignments: String...) {
            do {
                try notifier?.notify(assignments)
            } catch {
                logger.warning("cannot notify the supervisor", metadata: ["error": "\(error)"])
            }
        }
        if settings.inMemory {
            logger.notice("running in memory: no state is kept on disk, every allocation is forgotten on exit")
        }
        let endpoint: HTTPServer.Configuration.Endpoint =
            settings.unixSocket.map { .unix(path: $0) } ?? .tcp(host: settings.host, port: settings.port)
        let configuration = RegionDaemon.Configuration(
            server: .init(
                endpoint: endpoint, threads: settings.threads, maxConnections: settings.maxConnections,
                maxConnectionsPerIP: settings.maxConnectionsPerIP, connectionTimeout: settings.connectionTimeout),
            stateDirectory: settings.inMemory ? nil : settings.stateDirectory, token: token)
        let daemon: RegionDaemon
        do {
            daemon = try RegionDaemon(configuration: configuration, logger: logger)
            try daemon.listen()
        } catch {
            logger.critical("\(error)")
            notify("STATUS=\(error)")
            throw ExitCode(1)
        }
        // A log line like every other; scripts wait for readiness, not for it
        // (README, "Scripts").
        logger.notice("listening on \(daemon.address)")
        notify("STATUS=loading the state")
        do {
            try daemon.load()
        } catch {
            logger.critical("\(error)")
            notify("STATUS=\(error)")
            daemon.stop()
            throw ExitCode(2)
        }
        notify("READY=1", "STATUS=serving on \(daemon.address)")

        // SIGTERM and SIGINT have been blocked since start-up, so one sent at
        // any moment waits here instead of killing us or getting lost.
        var received: Int32 = 0
        sigwait(&stopSignals, &received)
        let name = received == SIGTERM ? "SIGTERM" : "SIGINT"
        logger.info("stopping", metadata: ["signal": "\(name)"])
        notify("STOPPING=1", "STATUS=stopping on \(name)")
        daemon.stop()
        logger.info("stopped")
    }
}
