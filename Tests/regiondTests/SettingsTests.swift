import ArgumentParser
import Logging
import Testing

@testable import regiond

/// `Settings.resolve`: flags, then `REGIOND_*` variables, then defaults.
@Suite struct SettingsTests {
    func resolve(_ arguments: [String], _ environment: [String: String] = [:]) throws -> Settings {
        try Settings.resolve(try ServerOptions.parse(arguments), environment: environment)
    }

    @Test func withNothingGivenTheDefaultsApply() throws {
        let settings = try resolve([])
        #expect(settings == Settings())
        #expect(settings.host == "127.0.0.1")
        #expect(settings.port == 8080)
        #expect(settings.unixSocket == nil)
        #expect(settings.stateDirectory == "./regiond-state")
        #expect(settings.inMemory == false)
        #expect(settings.tokenFile == nil)
        #expect(settings.threads == 2)
        #expect(settings.maxConnections == 1000)
        #expect(settings.maxConnectionsPerIP == 64)
        #expect(settings.connectionTimeout == 30)
        #expect(settings.logLevel == .info)
    }

    @Test func everyVariableIsRead() throws {
        let settings = try resolve([], [
            "REGIOND_HOST": "0.0.0.0", "REGIOND_PORT": "9000",
            "REGIOND_STATE_DIR": "/var/lib/regiond", "REGIOND_TOKEN_FILE": "/etc/token",
            "REGIOND_THREADS": "8", "REGIOND_MAX_CONNECTIONS": "50", "REGIOND_MAX_CONNECTIONS_PER_IP": "0",
            "REGIOND_CONNECTION_TIMEOUT": "5", "REGIOND_LOG_LEVEL": "debug",
        ])
        var expected = Settings()
        expected.host = "0.0.0.0"
        expected.port = 9000
        expected.stateDirectory = "/var/lib/regiond"
        expected.tokenFile = "/etc/token"
        expected.threads = 8
        expected.maxConnections = 50
        expected.maxConnectionsPerIP = 0
        expected.connectionTimeout = 5
        expected.logLevel = .debug
        #expect(settings == expected)
    }

    @Test func flagsWinOverVariables() throws {
        let environment = [
            "REGIOND_HOST": "0.0.0.0", "REGIOND_PORT": "9000", "REGIOND_STATE_DIR": "/env", "REGIOND_TOKEN_FILE": "/env-token",
            "REGIOND_THREADS": "8", "REGIOND_MAX_CONNECTIONS": "50", "REGIOND_MAX_CONNECTIONS_PER_IP": "3",
            "REGIOND_CONNECTION_TIMEOUT": "5", "REGIOND_LOG_LEVEL": "debug",
        ]
        let settings = try resolve(
            [
                "--host", "::1", "--port", "0", "--state-dir", "/flag", "--token-file", "/flag-token", "--threads", "3",
                "--max-connections", "7", "--max-connections-per-ip", "9", "--connection-timeout", "11",
                "--log-level", "error",
            ], environment)
        #expect(settings.host == "::1")
        #expect(settings.port == 0)
        #expect(settings.stateDirectory == "/flag")
        #expect(settings.tokenFile == "/flag-token")
        #expect(settings.threads == 3)
        #expect(settings.maxConnections == 7)
        #expect(settings.maxConnectionsPerIP == 9)
        #expect(settings.connectionTimeout == 11)
        #expect(settings.logLevel == .error)
        #expect(try resolve(["--unix-socket", "/flag.sock"], ["REGIOND_UNIX_SOCKET": "/env.sock"]).unixSocket == "/flag.sock")
        #expect(try resolve(["--in-memory"], ["REGIOND_IN_MEMORY": "false"]).inMemory)
    }

    @Test(arguments: [
        ("REGIOND_HOST", "10.0.0.1"), ("REGIOND_PORT", "1"), ("REGIOND_UNIX_SOCKET", "/tmp/r.sock"),
        ("REGIOND_STATE_DIR", "/srv/state"), ("REGIOND_TOKEN_FILE", "/run/secrets/token"), ("REGIOND_THREADS", "64"),
        ("REGIOND_MAX_CONNECTIONS", "100000"), ("REGIOND_MAX_CONNECTIONS_PER_IP", "100000"),
        ("REGIOND_CONNECTION_TIMEOUT", "3600"), ("REGIOND_LOG_LEVEL", "trace"),
    ])
    func aVariableWinsOverTheDefault(name: String, value: String) throws {
        let settings = try resolve([], [name: value])
        let fields: [String: String] = [
            "REGIOND_HOST": settings.host, "REGIOND_PORT": "\(settings.port)",
            "REGIOND_UNIX_SOCKET": settings.unixSocket ?? "", "REGIOND_STATE_DIR": settings.stateDirectory,
            "REGIOND_TOKEN_FILE": settings.tokenFile ?? "", "REGIOND_THREADS": "\(settings.threads)",
            "REGIOND_MAX_CONNECTIONS": "\(settings.maxConnections)",
            "REGIOND_MAX_CONNECTIONS_PER_IP": "\(settings.maxConnectionsPerIP)",
            "REGIOND_CONNECTION_TIMEOUT": "\(settings.connectionTimeout)", "REGIOND_LOG_LEVEL": settings.logLevel.rawValue,
        ]
        #expect(fields[name] == value)
    }

    @Test(arguments: ["1", "true", "TRUE", "yes"])
    func inMemoryAcceptsTrueSpellings(value: String) throws {
        #expect(try resolve([], ["REGIOND_IN_MEMORY": value]).inMemory)
    }

    @Test(arguments: ["0", "false", "No"])
    func inMemoryAcceptsFalseSpellings(value: String) throws {
        #expect(try !resolve([], ["REGIOND_IN_MEMORY": value]).inMemory)
    }

    @Test func emptyVariablesCountAsUnset() throws {
        let names = [
            "HOST", "PORT", "UNIX_SOCKET", "STATE_DIR", "IN_MEMORY", "TOKEN_FILE", "THREADS", "MAX_CONNECTIONS",
            "MAX_CONNECTIONS_PER_IP", "CONNECTION_TIMEOUT", "LOG_LEVEL",
        ]
        let environment = Dictionary(uniqueKeysWithValues: names.map { ("REGIOND_\($0)", "") })
        #expect(try resolve([], environment) == Settings())
    }

    @Test(arguments: [
        ("REGIOND_PORT", "http"), ("REGIOND_PORT", "-1"), ("REGIOND_PORT", "65536"), ("REGIOND_PORT", " 80"),
        ("REGIOND_THREADS", "0"), ("REGIOND_THREADS", "65"), ("REGIOND_MAX_CONNECTIONS", "0"),
        ("REGIOND_MAX_CONNECTIONS", "many"), ("REGIOND_MAX_CONNECTIONS_PER_IP", "-1"),
        ("REGIOND_CONNECTION_TIMEOUT", "0"), ("REGIOND_CONNECTION_TIMEOUT", "1.5"), ("REGIOND_IN_MEMORY", "maybe"),
        ("REGIOND_LOG_LEVEL", "loud"),
    ])
    func aBadVariableIsAValidationErrorNamingIt(name: String, value: String) {
        do {
            let settings = try resolve([], [name: value])
            Issue.record("\(name)=\(value) was accepted: \(settings)")
        } catch let error as ValidationError {
            let message = error.message
            #expect(message.contains(value))
            if name != "REGIOND_LOG_LEVEL" { #expect(message.contains(name)) }
        } catch {
            Issue.record("not a ValidationError: \(error)")
        }
    }

    @Test func aBadLogLevelVariableIsNamed() {
        #expect {
            try resolve([], ["REGIOND_LOG_LEVEL": "loud"])
        } throws: { error in
            "\(error)".contains("REGIOND_LOG_LEVEL")
        }
    }

    @Test func aBadLogLevelFlagIsNamed() {
        #expect {
            try resolve(["--log-level", "loud"], ["REGIOND_LOG_LEVEL": "debug"])
        } throws: { error in
            "\(error)".contains("--log-level") && "\(error)".contains("loud")
        }
    }

    /// One rule per setting, whichever source gives it: each bad value as a
    /// flag and as a variable, refused with the name of where it came from.
    @Test(arguments: [
        ("port", "70000"), ("port", "-1"), ("threads", "0"), ("threads", "65"), ("max-connections", "0"),
        ("max-connections", "100001"), ("connection-timeout", "0"), ("connection-timeout", "3601"),
        ("max-connections-per-ip", "-1"), ("max-connections-per-ip", "100001"), ("log-level", "loud"),
    ])
    func aBadValueIsRefusedTheSameWayAsAFlagAndAsAVariable(option: String, value: String) {
        let variable = "REGIOND_" + option.uppercased().replacingOccurrences(of: "-", with: "_")
        #expect { try ServerOptions.parse(["--\(option)=\(value)"]) } throws: { error in
            let message = ServerOptions.message(for: error)
            return message.contains("--\(option)") && message.contains(value)
        }
        #expect { try resolve([], [variable: value]) } throws: { error in
            (error as? ValidationError).map { $0.message.contains(variable) && $0.message.contains(value) } ?? false
        }
    }

    /// Settings that exclude each other are refused when they come from the same source.
    @Test(arguments: [
        (["--in-memory", "--state-dir", "x"], [String: String]()),
        (["--unix-socket", "/s", "--port", "1"], [:]),
        (["--unix-socket", "/s", "--host", "::1"], [:]),
        ([], ["REGIOND_IN_MEMORY": "true", "REGIOND_STATE_DIR": "x"]),
        ([], ["REGIOND_UNIX_SOCKET": "/s", "REGIOND_PORT": "1"]),
        ([], ["REGIOND_UNIX_SOCKET": "/s", "REGIOND_HOST": "::1"]),
    ])
    func excludingSettingsFromOneSourceAreRefused(arguments: [String], environment: [String: String]) {
        #expect { try resolve(arguments, environment) } throws: { error in
            ServerOptions.message(for: error).contains(arguments.isEmpty ? "REGIOND_" : "--")
        }
    }

    /// A flag wins over a variable it excludes, as over its own variable.
    @Test func aFlagWinsOverAVariableItExcludes() throws {
        let image = ["REGIOND_HOST": "0.0.0.0", "REGIOND_PORT": "8080", "REGIOND_STATE_DIR": "/var/lib/regiond"]
        let inMemory = try resolve(["--in-memory"], image)
        #expect(inMemory.inMemory)
        #expect(inMemory.host == "0.0.0.0")
        let unix = try resolve(["--unix-socket", "/run/r.sock"], image)
        #expect(unix.unixSocket == "/run/r.sock")
        #expect(unix.host == Settings().host && unix.port == Settings().port)
        let tcp = try resolve(["--port", "9000"], ["REGIOND_UNIX_SOCKET": "/run/r.sock"])
        #expect(tcp.unixSocket == nil)
        #expect(tcp.port == 9000)
        let durable = try resolve(["--state-dir", "/srv"], ["REGIOND_IN_MEMORY": "true"])
        #expect(!durable.inMemory)
        #expect(durable.stateDirectory == "/srv")
        #expect(try resolve([], ["REGIOND_IN_MEMORY": "false", "REGIOND_STATE_DIR": "/srv"]).stateDirectory == "/srv")
    }
}
