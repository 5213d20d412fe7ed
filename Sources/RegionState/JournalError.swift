/// Why the journal could not open, load, write or recover its state.
public enum JournalError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A system call failed.
    case system(SystemError)
    /// Another process holds the state directory's lock.
    case locked(directory: String, pid: Int32?)
    /// A state file is damaged or of an unknown format; `record` is 1-based,
    /// nil when the file as a whole (its header or its set) is wrong.
    case corrupt(path: String, record: Int?, reason: String)
    /// A label or idempotency key too long for the record format (65,534 bytes).
    case recordTooLarge
    /// The journal is not loaded yet, or already closed.
    case notOpen
    /// An earlier write or fsync failed; nothing is taken until `recover`.
    indirect case failed(JournalError)

    public var description: String {
        switch self {
        case .system(let error):
            "\(error)"
        case .locked(let directory, let pid):
            if let pid {
                "another regiond (pid \(pid)) holds \(directory)"
            } else {
                "another regiond holds \(directory)"
            }
        case .corrupt(let path, let record, let reason):
            if let record {
                "\(path): record \(record): \(reason)"
            } else {
                "\(path): \(reason)"
            }
        case .recordTooLarge:
            "a label or idempotency key is longer than 65,534 bytes"
        case .notOpen:
            "the journal is not open"
        case .failed(let cause):
            "the journal failed and takes no records until it is recovered: \(cause)"
        }
    }
}

/// Runs a system call wrapper, turning its ``SystemError`` into a ``JournalError``.
func system<T>(_ call: @autoclosure () throws(SystemError) -> T) throws(JournalError) -> T {
    do throws(SystemError) {
        return try call()
    } catch {
        throw .system(error)
    }
}
