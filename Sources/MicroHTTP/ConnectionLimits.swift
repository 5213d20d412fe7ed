/// Why the server refused a connection: it was over a limit.
public enum ConnectionRefusal: String, Sendable, CaseIterable {
    /// The client's address already has the most connections one address may.
    case perIP = "per_ip"
    /// The server already has the most connections it serves at once.
    case total
}

/// The connections open now, in total, by client address, and over a limit
/// (kept only to answer their first request with 503), and the rules that
/// admit a new one. A value: the server keeps it behind a lock.
///
/// libmicrohttpd asks twice: its accept policy (address only) may drop a
/// connection unread, ``drop(from:)``; its start notification (the
/// connection) counts it, ``open(from:)``, and the close notification
/// uncounts it, ``close(from:refused:)``.
struct ConnectionLimits {
    /// Connections served at once.
    let maxTotal: Int
    /// Connections from one address at once; 0 means no limit.
    let maxPerAddress: Int
    /// Connections over a limit kept open at once to be answered 503 (each
    /// until its first request or the connection timeout); more are dropped
    /// unread, so a flood cannot hold many.
    let maxRefused: Int
    private(set) var total = 0
    private(set) var byAddress: [[UInt8]: Int] = [:]
    private(set) var refused = 0

    init(maxTotal: Int, maxPerAddress: Int, maxRefused: Int) {
        self.maxTotal = maxTotal
        self.maxPerAddress = maxPerAddress
        self.maxRefused = maxRefused
    }

    /// The limit a new connection from `address` (nil when it has none, as
    /// on a Unix socket: only the total applies) would be over, if any.
    func limit(for address: [UInt8]?) -> ConnectionRefusal? {
        if total >= maxTotal { return .total }
        if let address, maxPerAddress > 0, byAddress[address, default: 0] >= maxPerAddress { return .perIP }
        return nil
    }

    /// The limit a new connection is over when there is no room left to
    /// answer it: it is to be closed unread.
    func drop(from address: [UInt8]?) -> ConnectionRefusal? {
        refused >= maxRefused ? limit(for: address) : nil
    }

    /// Counts a new connection: nil when it is admitted, or the limit it
    /// is over (its first request is then answered 503 and it is closed).
    mutating func open(from address: [UInt8]?) -> ConnectionRefusal? {
        if let over = limit(for: address) {
            refused += 1
            return over
        }
        total += 1
        if let address, maxPerAddress > 0 { byAddress[address, default: 0] += 1 }
        return nil
    }

    /// Uncounts a connection that ``open(from:)`` counted; `refused` is
    /// whether it was over a limit.
    mutating func close(from address: [UInt8]?, refused wasRefused: Bool) {
        if wasRefused {
            refused -= 1
            return
        }
        total -= 1
        if let address, maxPerAddress > 0, let count = byAddress[address] {
            byAddress[address] = count > 1 ? count - 1 : nil
        }
    }
}
