/// Why the server refused a connection before reading a request on it.
public enum ConnectionRefusal: String, Sendable, CaseIterable {
    /// The client's address already has the most connections one address may.
    case perIP = "per_ip"
    /// The server already has the most connections it serves at once.
    case total
}

/// The connections open now, in total and by client address, and the rule
/// that admits a new one or refuses it. A value: the server keeps it behind
/// a lock and calls ``open(from:)`` for every accepted connection and
/// ``close(from:)`` when an admitted one ends.
struct ConnectionLimits {
    /// Connections served at once.
    let maxTotal: Int
    /// Connections from one address at once; 0 means no limit.
    let maxPerAddress: Int
    private(set) var total = 0
    private(set) var byAddress: [[UInt8]: Int] = [:]

    init(maxTotal: Int, maxPerAddress: Int) {
        self.maxTotal = maxTotal
        self.maxPerAddress = maxPerAddress
    }

    /// Admits a connection from `address` (nil when it has none, as on a
    /// Unix socket: only the total applies) and counts it, or says why not.
    mutating func open(from address: [UInt8]?) -> ConnectionRefusal? {
        if total >= maxTotal { return .total }
        if let address, maxPerAddress > 0 {
            let count = byAddress[address, default: 0]
            if count >= maxPerAddress { return .perIP }
            byAddress[address] = count + 1
        }
        total += 1
        return nil
    }

    /// Ends an admitted connection.
    mutating func close(from address: [UInt8]?) {
        total -= 1
        if let address, maxPerAddress > 0, let count = byAddress[address] {
            byAddress[address] = count > 1 ? count - 1 : nil
        }
    }
}
