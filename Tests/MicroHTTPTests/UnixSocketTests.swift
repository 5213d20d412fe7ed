import Foundation
import Glibc
import MicroHTTP
import Testing

@testable import TestSupport

@Suite(.serialized) struct UnixSocketTests {
    let path = NSTemporaryDirectory() + "regiond-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"

    func server() -> HTTPServer {
        let router = ToyRoutes().router
        return HTTPServer(configuration: .init(endpoint: .unix(path: path)), logger: quietLogger) { request, respond in
            router.handle(request, respond: respond)
        }
    }

    /// Runs `call` (connect or bind) on `fd` with the socket path's address.
    func withAddress(_ fd: Int32, _ call: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }

    /// Sends one HTTP/1.0 request over the socket and returns the whole reply.
    func ask(_ request: String) throws -> String {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        guard withAddress(fd, connect) == 0 else { throw POSIXError(.ECONNREFUSED) }
        _ = request.withCString { write(fd, $0, strlen($0)) }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(fd, &buffer, buffer.count)
            guard count > 0 else { break }
            reply += buffer[0..<count]
        }
        return String(decoding: reply, as: UTF8.self)
    }

    @Test func itServesOnASocketOnlyItsOwnerCanUse() throws {
        let server = server()
        try server.start()
        defer { server.shutdown() }
        #expect(server.address == "unix:\(path)")
        var info = stat()
        #expect(lstat(path, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        let reply = try ask("POST /echo HTTP/1.0\r\nContent-Length: 16\r\n\r\n{\"size\":1048576}")
        #expect(reply.hasPrefix("HTTP/1.0 200") || reply.hasPrefix("HTTP/1.1 200"))
        #expect(reply.hasSuffix("\r\n\r\n{\"size\":1048576}"))
    }

    @Test func theSocketFileIsRemovedOnExit() throws {
        let server = server()
        try server.start()
        server.shutdown()
        #expect(access(path, F_OK) != 0)
    }

    @Test func aStaleSocketIsReplacedButALiveOneIsNot() throws {
        // A socket file nobody listens on: bound, then closed.
        let stale = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        #expect(withAddress(stale, bind) == 0)
        close(stale)
        let first = server()
        try first.start()
        defer { first.shutdown() }
        #expect(try ask("GET /ping HTTP/1.0\r\n\r\n").hasSuffix("pong"))
        // A second server must not take the socket from the live one.
        let second = server()
        #expect(throws: HTTPServer.StartError.self) { try second.start() }
        #expect(try ask("GET /ping HTTP/1.0\r\n\r\n").hasSuffix("pong"))
    }

    @Test func aFileThatIsNotASocketIsLeftAlone() throws {
        _ = FileManager.default.createFile(atPath: path, contents: Data("keep me".utf8))
        defer { unlink(path) }
        let server = server()
        #expect(throws: HTTPServer.StartError.self) { try server.start() }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "keep me")
    }
}
