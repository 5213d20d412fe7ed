import Foundation
import RegionServer
import Testing

@testable import regiond

#if canImport(Glibc)
import Glibc
#endif

/// One run of the built regiond to its end: exit status and output.
struct Run {
    let status: Int32
    let output: String
    let errors: String

    /// Runs `regiond arguments` in a temporary directory and waits for it to exit.
    init(_ arguments: [String]) throws {
        guard let executable = RegiondProcess.executable else {
            throw RegiondProcess.Failure(description: "regiond is not built: run `swift build` first")
        }
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let directory = try temporaryDirectory()
        process.currentDirectoryURL = directory
        // Files, not pipes: read once the process has ended, nothing is in flight.
        let output = directory.appendingPathComponent("stdout")
        let errors = directory.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: output)
        process.standardError = try FileHandle(forWritingTo: errors)
        try process.run()
        process.waitUntilExit()
        status = process.terminationStatus
        self.output = try String(contentsOf: output, encoding: .utf8)
        self.errors = try String(contentsOf: errors, encoding: .utf8)
    }
}

/// A fresh directory under the temporary directory.
func temporaryDirectory() throws -> URL {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("regiond-test-\(UUID())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory
}

/// A datagram Unix socket the test owns, standing in for systemd's notify socket.
final class NotifySocket {
    let descriptor: Int32
    /// The name to put in `NOTIFY_SOCKET`: a path, or `@name` for the abstract namespace.
    let name: String

    init(name: String) throws {
        self.name = name
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var path = Array(name.utf8)
        if path.first == UInt8(ascii: "@") { path[0] = 0 }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + path.count)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
        }
        guard descriptor >= 0, bound == 0 else {
            throw RegiondProcess.Failure(description: "cannot bind \(name): \(String(cString: strerror(errno)))")
        }
        // The wait for the next datagram gives up after this: a failed test, not a hung one.
        var time = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit {
        close(descriptor)
        if !name.hasPrefix("@") { unlink(name) }
    }

    /// The next datagram, or nil when none came within the timeout.
    func receive() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            return count < 0 ? nil : String(decoding: buffer[..<count], as: UTF8.self)
        }
    }
}

/// Exit statuses, `--version`, `regiond healthcheck` and sd_notify, against
/// the built binary: child processes, one at a time.
@Suite(.serialized) struct OperationTests {
    @Test func versionPrintsTheOneVersion() throws {
        let run = try Run(["--version"])
        #expect(run.status == 0)
        #expect(run.output == RegionDaemon.version + "\n")
    }

    @Test(arguments: [
        ["--port", "70000"], ["--no-such-flag"], ["--unix-socket", "s", "--port", "1"], ["--in-memory", "--state-dir", "d"],
        ["serve", "--threads", "0"], ["healthcheck", "--port", "-1"],
    ])
    func badFlagsExit64(_ arguments: [String]) throws {
        let run = try Run(arguments)
        #expect(run.status == 64, "\(run.errors)")
    }

    @Test func aStateDirectoryThatIsAFileExits1() throws {
        let file = try temporaryDirectory().appendingPathComponent("file")
        try Data().write(to: file)
        let run = try Run(["--port", "0", "--state-dir", file.path])
        #expect(run.status == 1)
        #expect(run.errors.contains("cannot use the state directory"), "\(run.errors)")
    }

    @Test func anAddressThatCannotBeListenedOnExits1() throws {
        let file = try temporaryDirectory().appendingPathComponent("file")
        try Data().write(to: file)
        let run = try Run(["--in-memory", "--unix-socket", file.path])
        #expect(run.status == 1)
        #expect(run.errors.contains("cannot listen: \(file.path) exists and is not a socket"), "\(run.errors)")
    }

    @Test func aStateThatDoesNotLoadExits2() throws {
        let directory = try temporaryDirectory()
        try Data(repeating: 0x5A, count: 4096).write(to: directory.appendingPathComponent("journal-0000000000000000"))
        let run = try Run(["--port", "0", "--state-dir", directory.path])
        #expect(run.status == 2)
        #expect(run.errors.contains("cannot load the state: "), "\(run.errors)")
    }

    @Test func theListeningLineIsALogLineOnStandardError() throws {
        let regiond = try RegiondProcess(["--in-memory"])
        #expect(regiond.transcript.text.contains(" notice regiond: [regiond] listening on http://127.0.0.1:\(regiond.port)\n"))
        regiond.signal(SIGTERM)
        regiond.process.waitUntilExit()
    }

    @Test func healthcheckIsZeroForARegiondOnAPort() throws {
        let regiond = try RegiondProcess(["--in-memory"])
        #expect(try Run(["healthcheck", "--port", "\(regiond.port)"]).status == 0)
        // The process's own flags and variables, as a container's HEALTHCHECK reads PID 1's.
        #expect(try Run(["healthcheck", "--pid", "\(regiond.process.processIdentifier)"]).status == 1,
            "it was started with --port 0: the port is not known from its flags")
        regiond.signal(SIGTERM)
        regiond.process.waitUntilExit()
    }

    @Test func healthcheckFollowsTheFlagsOfTheProcessItAsks() throws {
        let socket = try temporaryDirectory().appendingPathComponent("regiond.sock").path
        let regiond = try NotifiedRegiond(["--in-memory", "--unix-socket", socket])
        #expect(try Run(["healthcheck", "--unix-socket", socket]).status == 0)
        #expect(try Run(["healthcheck", "--pid", "\(regiond.process.processIdentifier)"]).status == 0)
        regiond.process.terminate()
        regiond.process.waitUntilExit()
        let stopped = try Run(["healthcheck", "--unix-socket", socket])
        #expect(stopped.status == 1)
        #expect(stopped.output == "regiond healthcheck: cannot connect to unix:\(socket): No such file or directory\n")
    }

    @Test func healthcheckIsOneForAStoppedRegiond() throws {
        let regiond = try RegiondProcess(["--in-memory"])
        regiond.signal(SIGTERM)
        regiond.process.waitUntilExit()
        let run = try Run(["healthcheck", "--port", "\(regiond.port)"])
        #expect(run.status == 1)
        #expect(run.output == "regiond healthcheck: cannot connect to 127.0.0.1:\(regiond.port): Connection refused\n")
    }

    @Test func healthcheckIsOneForAnotherStatusOrSilence() throws {
        // A listener that accepts and never answers: the probe gives up after its timeout.
        let silent = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(silent) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                _ = bind(silent, $0, length)
                _ = listen(silent, 8)
                _ = getsockname(silent, $0, &length)
            }
        }
        let port = Int(UInt16(bigEndian: address.sin_port))
        let probe = ReadinessProbe(target: .tcp(host: "127.0.0.1", port: port), timeout: .milliseconds(200))
        #expect { try probe.check() } throws: { "\($0)" == "no answer from 127.0.0.1:\(port) within 0.2 seconds" }
    }

    @Test func healthcheckAsksLoopbackForAWildcardHost() throws {
        var settings = Settings()
        settings.host = "0.0.0.0"
        settings.port = 9000
        #expect(try Healthcheck.target(settings) == .tcp(host: "127.0.0.1", port: 9000))
        settings.host = "::"
        #expect(try Healthcheck.target(settings) == .tcp(host: "::1", port: 9000))
        settings.unixSocket = "/run/regiond.sock"
        #expect(try Healthcheck.target(settings) == .unix(path: "/run/regiond.sock"))
    }

    @Test(arguments: ["path", "@abstract"])
    func theNotifierSendsOneDatagram(_ kind: String) throws {
        let name = kind == "path"
            ? try temporaryDirectory().appendingPathComponent("notify").path
            : "@regiond-test-\(UUID())"
        let socket = try NotifySocket(name: name)
        let notifier = try #require(SystemdNotifier(environment: ["NOTIFY_SOCKET": name]))
        try notifier.notify(["READY=1", "STATUS=serving on unix:/x"])
        #expect(socket.receive() == "READY=1\nSTATUS=serving on unix:/x")
        #expect(SystemdNotifier(environment: [:]) == nil)
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": ""]) == nil)
    }

    @Test func aRegiondUnderSystemdSaysLoadingReadyAndStopping() throws {
        let name = try temporaryDirectory().appendingPathComponent("notify").path
        let socket = try NotifySocket(name: name)
        var environment = ProcessInfo.processInfo.environment
        environment["NOTIFY_SOCKET"] = name
        let regiond = try RegiondProcess(["--in-memory"], environment: environment)
        #expect(socket.receive() == "STATUS=loading the state")
        #expect(socket.receive() == "READY=1\nSTATUS=serving on http://127.0.0.1:\(regiond.port)")
        regiond.signal(SIGTERM)
        #expect(socket.receive() == "STOPPING=1\nSTATUS=stopping on SIGTERM")
        regiond.process.waitUntilExit()
        #expect(regiond.process.terminationStatus == 0)
    }
}

/// A regiond started with `arguments`, returned once it sent READY=1 to a
/// notify socket of the test's: for addresses the log line does not give a port for.
final class NotifiedRegiond {
    let process = Process()

    init(_ arguments: [String]) throws {
        guard let executable = RegiondProcess.executable else {
            throw RegiondProcess.Failure(description: "regiond is not built: run `swift build` first")
        }
        let socket = try NotifySocket(name: try temporaryDirectory().appendingPathComponent("notify").path)
        var environment = ProcessInfo.processInfo.environment
        environment["NOTIFY_SOCKET"] = socket.name
        process.executableURL = executable
        process.arguments = arguments
        process.environment = environment
        process.standardError = Transcript().pipe()
        try process.run()
        while let message = socket.receive() {
            if message.split(separator: "\n").contains("READY=1") { return }
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        throw RegiondProcess.Failure(description: "regiond sent no READY=1")
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}
