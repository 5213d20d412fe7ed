import ArgumentParser

/// The flags that say where regiond listens and how it runs: the server
/// takes them, and `regiond healthcheck` takes the same ones to find it.
struct ServerOptions: ParsableArguments {
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

    /// The flags alone, by the same rules ``Settings/resolve(_:environment:)``
    /// applies to flags and variables together when a command runs.
    func validate() throws {
        _ = try Settings.resolve(self, environment: [:])
    }
}
