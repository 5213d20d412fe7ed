import ArgumentParser
import Dispatch
import Foundation
import Logging
import MicroHTTP
import RegionLog
import RegionServer
import RegionState

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

    /// The flags alone, by the same rules ``Settings/resolve(_:environment:)``
    /// applies to flags and variables together in ``run()``.
    func validate() throws {
        _ = try Settings.resolve(self, environment: [:])
    }

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
        let settings = try Settings.resolve(self, environment: ProcessInfo.processInfo.environment)
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
            throw ExitCode(1)
        }
        print("listening on \(daemon.address)")
        fflush(nil)
        do {
            try daemon.load()
        } catch {
            logger.critical("\(error)")
            daemon.stop()
            throw ExitCode(2)
        }

        // SIGTERM and SIGINT have been blocked since start-up, so one sent at
        // any moment waits here instead of killing us or getting lost.
        var received: Int32 = 0
        sigwait(&stopSignals, &received)
        logger.info("stopping", metadata: ["signal": "\(received == SIGTERM ? "SIGTERM" : "SIGINT")"])
        daemon.stop()
        logger.info("stopped")
    }
}
