import ArgumentParser
import Logging

/// The effective settings: each flag, else its `REGIOND_*` variable, else the default.
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

    /// Resolves `options` against `environment`: a pure function, so tests pass a dictionary.
    static func resolve(_ options: Regiond, environment: [String: String]) throws -> Settings {
        var settings = Settings()
        let lookup = Lookup(environment: environment)
        settings.host = options.host ?? lookup.string("HOST") ?? settings.host
        settings.port = try options.port ?? lookup.integer("PORT", in: 0...65535) ?? settings.port
        settings.unixSocket = options.unixSocket ?? lookup.string("UNIX_SOCKET")
        settings.stateDirectory = options.stateDir ?? lookup.string("STATE_DIR") ?? settings.stateDirectory
        settings.inMemory = try options.inMemory || (lookup.boolean("IN_MEMORY") ?? false)
        settings.tokenFile = options.tokenFile ?? lookup.string("TOKEN_FILE")
        settings.threads = try options.threads ?? lookup.integer("THREADS", in: 1...64) ?? settings.threads
        settings.maxConnections =
            try options.maxConnections ?? lookup.integer("MAX_CONNECTIONS", in: 1...100_000) ?? settings.maxConnections
        settings.maxConnectionsPerIP =
            try options.maxConnectionsPerIP ?? lookup.integer("MAX_CONNECTIONS_PER_IP", in: 0...100_000)
            ?? settings.maxConnectionsPerIP
        settings.connectionTimeout =
            try options.connectionTimeout ?? lookup.integer("CONNECTION_TIMEOUT", in: 1...3600)
            ?? settings.connectionTimeout
        let (levelSource, level) =
            options.logLevel.map { ("--log-level", $0) } ?? lookup.string("LOG_LEVEL").map { ("REGIOND_LOG_LEVEL", $0) }
            ?? ("", nil)
        if let level {
            guard let parsed = Logger.Level(rawValue: level) else {
                throw ValidationError(
                    "\(levelSource) must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")), not \(level)")
            }
            settings.logLevel = parsed
        }
        return settings
    }

    /// Reads `REGIOND_<NAME>` variables; empty values count as unset.
    private struct Lookup {
        let environment: [String: String]

        func string(_ name: String) -> String? {
            environment["REGIOND_\(name)"].flatMap { $0.isEmpty ? nil : $0 }
        }

        func integer(_ name: String, in range: ClosedRange<Int>) throws -> Int? {
            guard let text = string(name) else { return nil }
            guard let value = Int(text), range.contains(value) else {
                throw ValidationError("REGIOND_\(name) must be an integer from \(range.lowerBound) to \(range.upperBound), not \(text)")
            }
            return value
        }

        func boolean(_ name: String) throws -> Bool? {
            guard let text = string(name) else { return nil }
            switch text.lowercased() {
            case "1", "true", "yes": return true
            case "0", "false", "no": return false
            default: throw ValidationError("REGIOND_\(name) must be true or false, not \(text)")
            }
        }
    }
}
