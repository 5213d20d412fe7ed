import ArgumentParser
import RegionServer

/// regiond: hands out regions of a 4 GiB VPMem device over JSON and HTTP.
///
/// `regiond [serve] [options]` runs the server (`serve` is the default, so
/// `regiond --port 9000` is the server); `regiond healthcheck [options]`
/// asks a running one whether it is ready.
@main
struct Regiond: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Hands out regions of a 4 GiB VPMem device over JSON and HTTP.",
        discussion: """
            Every option falls back to a REGIOND_<NAME> environment variable, e.g. REGIOND_PORT.
            Exit status: 0 stopped by SIGTERM or SIGINT; 1 cannot start (the state directory \
            or the address); 2 the state does not load; 64 bad flags or variables.
            """,
        version: RegionDaemon.version,
        subcommands: [Serve.self, Healthcheck.self],
        defaultSubcommand: Serve.self
    )
}
