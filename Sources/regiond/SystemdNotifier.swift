import Glibc

/// Tells a supervisor how start-up and shutdown go, by the sd_notify(3)
/// protocol: each message is one datagram of `NAME=value` lines sent to the
/// Unix socket named by `NOTIFY_SOCKET` (a path, or an abstract name when it
/// starts with `@`). No libsystemd: the protocol is this one datagram.
struct SystemdNotifier: Sendable {
    /// Why a message was not sent.
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// `NOTIFY_SOCKET` as given.
    let socketName: String

    /// The notifier `environment` asks for, or nil when `NOTIFY_SOCKET` is unset or empty.
    init?(environment: [String: String]) {
        guard let name = environment["NOTIFY_SOCKET"], !name.isEmpty else { return nil }
        socketName = name
    }

    /// Sends `assignments` (such as `READY=1`, `STATUS=...`) as one datagram.
    func notify(_ assignments: [String]) throws(Failure) {
        // "@name" is the abstract namespace: a leading NUL, no terminating one.
        var path = Array(socketName.utf8)
        guard path.first == UInt8(ascii: "/") || path.first == UInt8(ascii: "@") else {
            throw Failure(description: "NOTIFY_SOCKET=\(socketName): only a path or an @abstract name is supported")
        }
        let abstract = path.first == UInt8(ascii: "@")
        if abstract { path[0] = 0 } else { path.append(0) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.count <= capacity else {
            throw Failure(description: "NOTIFY_SOCKET=\(socketName) is longer than \(capacity - 1) bytes")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + path.count)

        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        let message = Array(assignments.joined(separator: "\n").utf8)
        while true {
            let sent = message.withUnsafeBytes { bytes in
                withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(descriptor, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), $0, length)
                    }
                }
            }
            if sent >= 0 { return }
            if errno != EINTR {
                throw Failure(description: "sendto \(socketName): \(String(cString: strerror(errno)))")
            }
        }
    }
}
