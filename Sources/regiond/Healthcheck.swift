import ArgumentParser
import Foundation

/// `regiond healthcheck`: asks a running regiond's `GET /readyz` and exits 0
/// when it answers 200, 1 otherwise, with one line saying why.
struct Healthcheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Exits 0 when a running regiond is ready (GET /readyz answers 200), 1 otherwise.",
        discussion: """
            It finds regiond by the same flags and REGIOND_* variables as the server. Given no --host, \
            --port or --unix-socket, and PID 1 is this same executable (a container whose entrypoint is \
            regiond), it reads PID 1's command line and environment instead: the image's HEALTHCHECK \
            follows `docker run regiond --port 9000` without being told. /readyz needs no token.
            """
    )

    @OptionGroup var options: ServerOptions

    @Option(help: "Ask the regiond running as this process: its command line and environment say where it listens.")
    var pid: Int32?

    @Option(help: "Seconds to wait for the answer.")
    var timeout: Int = 3

    func run() throws {
        do {
            try ReadinessProbe(target: try target(), timeout: .seconds(timeout)).check()
        } catch {
            print("regiond healthcheck: \(error)")
            throw ExitCode(1)
        }
    }

    /// Where the server listens, by the rules above.
    func target() throws -> ReadinessProbe.Target {
        let settings: Settings
        let given = options.host != nil || options.port != nil || options.unixSocket != nil
        if let pid {
            settings = try Self.settings(ofProcess: pid)
        } else if !given, Self.isThisExecutable(pid: 1) {
            settings = try Self.settings(ofProcess: 1)
        } else {
            settings = try Settings.resolve(options, environment: ProcessInfo.processInfo.environment)
        }
        return try Self.target(settings)
    }

    /// The address to connect to for `settings`: a wildcard host is asked on loopback.
    static func target(_ settings: Settings) throws -> ReadinessProbe.Target {
        if let path = settings.unixSocket { return .unix(path: path) }
        guard settings.port != 0 else {
            throw ValidationError("regiond listens on port 0 (a free port): give the port it chose with --port")
        }
        let host = switch settings.host {
        case "0.0.0.0", "": "127.0.0.1"
        case "::", "[::]": "::1"
        default: settings.host
        }
        return .tcp(host: host, port: settings.port)
    }

    /// The settings process `pid` runs regiond with: its arguments through
    /// the same parser, its environment through the same resolution.
    static func settings(ofProcess pid: Int32) throws -> Settings {
        func fields(_ name: String) throws -> [String] {
            let path = "/proc/\(pid)/\(name)"
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ValidationError("cannot read \(path)")
            }
            return data.split(separator: 0, omittingEmptySubsequences: false).dropLast().map {
                String(decoding: $0, as: UTF8.self)
            }
        }
        let arguments = Array(try fields("cmdline").dropFirst())
        var environment: [String: String] = [:]
        for assignment in try fields("environ") {
            guard let equals = assignment.firstIndex(of: "=") else { continue }
            environment[String(assignment[..<equals])] = String(assignment[assignment.index(after: equals)...])
        }
        let command: any ParsableCommand
        do {
            command = try Regiond.parseAsRoot(arguments)
        } catch {
            throw ValidationError("process \(pid) has arguments regiond does not take: \(Regiond.message(for: error))")
        }
        guard let serve = command as? Serve else { throw ValidationError("process \(pid) is not a regiond server") }
        return try Settings.resolve(serve.options, environment: environment)
    }

    /// Whether process `pid` runs the same file as this one (false when it
    /// cannot be told, e.g. another user's process).
    static func isThisExecutable(pid: Int32) -> Bool {
        var mine = stat()
        var theirs = stat()
        guard stat("/proc/self/exe", &mine) == 0, stat("/proc/\(pid)/exe", &theirs) == 0 else { return false }
        return mine.st_dev == theirs.st_dev && mine.st_ino == theirs.st_ino
    }
}
