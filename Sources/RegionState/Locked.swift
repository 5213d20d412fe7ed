internal import Foundation

/// A value behind a lock, used like the standard library's `Mutex`.
///
/// Why not `Mutex`: on Linux it locks with a futex inside the uninstrumented
/// standard library, so ThreadSanitizer sees none of its synchronization and
/// reports every access it guards as a race. `NSLock` is a pthread mutex,
/// which ThreadSanitizer understands, so `swift test --sanitize=thread` can
/// find real races.
public final class Locked<Value>: @unchecked Sendable {
    // @unchecked: `value` is only touched while `lock` is held.
    private let lock = NSLock()
    private var value: Value

    /// Wraps `value`.
    public init(_ value: Value) {
        self.value = value
    }

    /// Runs `body` with the value, holding the lock.
    public func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
