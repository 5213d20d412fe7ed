import ArgumentParser
import Logging

/// The effective settings: each flag, else its `REGIOND_*` variable, else the
/// default, checked by one set of rules whichever source a value came from.
struct Settings: Equatable {
    var host = "127.0.0.1"
    var port = 8080
    var unixSocket: String?
    var stateDirectory = "./regiond-state"
    var inMemory = false
    var tokenFile: String?
    var threads = 2
    var maxConnections = 1000
    var maxConnectionsPerIP = 64
    var connectionTimeout = 30
    var logLevel = Logger.Level.info

    /// The allowed values of each integer setting, for flags and variables alike.
    static let portRange = 0...65535
    static let threadRange = 1...64
    static let maxConnectionRange = 1...100_000
    static let maxConnectionPerIPRange = 0...100_000
    static let connectionTimeoutRange = 1...3600

    /// Resolves `options` against `environment`: a pure function, so tests pass a dictionary.
    ///
    /// Two settings that exclude each other (`--in-memory` and `--state-dir`;
    /// `--unix-socket` and `--host`/`--port`) are an error when both come from
    /// the same source; a flag wins over a variable it excludes, as it wins
    /// over its own variable (so `docker run regiond --in-memory` works in an
    /// image that sets `REGIOND_STATE_DIR`).
    static func resolve(_ options: ServerOptions, environment: [String: String]) throws -> Settings {
        let source = Source(environment: environment)
        var host = source.text(options.host, flag: "--host", variable: "HOST")
        var port = try source.integer(options.port, flag: "--port", variable: "PORT", in: portRange)
        var unixSocket = source.text(options.unixSocket, flag: "--unix-socket", variable: "UNIX_SOCKET")
        var stateDirectory = source.text(options.stateDir, flag: "--state-dir", variable: "STATE_DIR")
        var inMemory = try source.boolean(options.inMemory ? true : nil, flag: "--in-memory", variable: "IN_MEMORY")

        if let unix = unixSocket, let tcp = [host, port.map(\.named)].compactMap({ $0 }).first {
            guard unix.fromFlag != tcp.fromFlag else {
                throw ValidationError("\(unix.name) replaces \(tcp.name); give one or the other")
            }
            if unix.fromFlag {
                (host, port) = (nil, nil)
            } else {
                unixSocket = nil
            }
        }
        if let memory = inMemory, memory.value, let directory = stateDirectory {
            guard memory.fromFlag != directory.fromFlag else {
                throw ValidationError("\(memory.name) and \(directory.name) exclude each other")
            }
            if memory.fromFlag {
                stateDirectory = nil
            } else {
                inMemory = nil
            }
        }

        var settings = Settings()
        settings.host = host?.value ?? settings.host
        settings.port = port?.value ?? settings.port
        settings.unixSocket = unixSocket?.value
        settings.stateDirectory = stateDirectory?.value ?? settings.stateDirectory
        settings.inMemory = inMemory?.value ?? false
        settings.tokenFile = source.text(options.tokenFile, flag: "--token-file", variable: "TOKEN_FILE")?.value
        settings.threads =
            try source.integer(options.threads, flag: "--threads", variable: "THREADS", in: threadRange)?.value
            ?? settings.threads
        settings.maxConnections =
            try source.integer(
                options.maxConnections, flag: "--max-connections", variable: "MAX_CONNECTIONS", in: maxConnectionRange
            )?.value ?? settings.maxConnections
        settings.maxConnectionsPerIP =
            try source.integer(
                options.maxConnectionsPerIP, flag: "--max-connections-per-ip", variable: "MAX_CONNECTIONS_PER_IP",
                in: maxConnectionPerIPRange
            )?.value ?? settings.maxConnectionsPerIP
        settings.connectionTimeout =
            try source.integer(
                options.connectionTimeout, flag: "--connection-timeout", variable: "CONNECTION_TIMEOUT",
                in: connectionTimeoutRange
            )?.value ?? settings.connectionTimeout
        if let level = source.text(options.logLevel, flag: "--log-level", variable: "LOG_LEVEL") {
            guard let parsed = Logger.Level(rawValue: level.value) else {
                throw ValidationError(
                    "\(level.name) must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")), not \(level.value)"
                )
            }
            settings.logLevel = parsed
        }
        return settings
    }

    /// A value and where it came from, for messages and for which of two excluding settings wins.
    struct Given<Value> {
        var value: Value
        /// `--port` or `REGIOND_PORT`.
        var name: String
        var fromFlag: Bool

        /// The same origin without the value, to compare settings of different types.
        var named: Given<String> { Given<String>(value: "\(value)", name: name, fromFlag: fromFlag) }
    }

    /// Takes each setting from its flag, else from its `REGIOND_<NAME>`
    /// variable (an empty one counts as unset).
    private struct Source {
        let environment: [String: String]

        func text(_ flag: String?, flag flagName: String, variable: String) -> Given<String>? {
            if let flag { return Given(value: flag, name: flagName, fromFlag: true) }
            let name = "REGIOND_\(variable)"
            return environment[name].flatMap { $0.isEmpty ? nil : Given(value: $0, name: name, fromFlag: false) }
        }

        func integer(_ flag: Int?, flag flagName: String, variable: String, in range: ClosedRange<Int>) throws -> Given<Int>? {
            let given: Given<Int>?
            if let flag {
                given = Given(value: flag, name: flagName, fromFlag: true)
            } else if let text = text(nil, flag: flagName, variable: variable) {
                guard let value = Int(text.value) else { throw outOfRange(text.name, range, text.value) }
                given = Given(value: value, name: text.name, fromFlag: false)
            } else {
                given = nil
            }
            if let given, !range.contains(given.value) { throw outOfRange(given.name, range, "\(given.value)") }
            return given
        }

        func boolean(_ flag: Bool?, flag flagName: String, variable: String) throws -> Given<Bool>? {
            if let flag { return Given(value: flag, name: flagName, fromFlag: true) }
            guard let text = text(nil, flag: flagName, variable: variable) else { return nil }
            switch text.value.lowercased() {
            case "1", "true", "yes": return Given(value: true, name: text.name, fromFlag: false)
            case "0", "false", "no": return Given(value: false, name: text.name, fromFlag: false)
            default: throw ValidationError("\(text.name) must be true or false, not \(text.value)")
            }
        }

        private func outOfRange(_ name: String, _ range: ClosedRange<Int>, _ text: String) -> ValidationError {
            ValidationError("\(name) must be an integer from \(range.lowerBound) to \(range.upperBound), not \(text)")
        }
    }
}
