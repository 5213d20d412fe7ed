internal import Glibc

/// A value behind a lock, and the one way in regiond to wait until shared
/// state changes: ``withLock(waitingUntil:deadline:_:)`` sleeps on a
/// condition variable until the value is as wanted, and whoever changes it
/// calls ``wakeWaiters()``.
///
/// A pthread mutex and condition variable, allocated with the value in one
/// block (as swift-nio's `NIOLockedValueBox` does). Why not the standard
/// library's `Mutex`: on Linux it locks with a futex inside the
/// uninstrumented standard library, so ThreadSanitizer sees none of its
/// synchronization and reports every access it guards as a race; pthread
/// mutexes and condition variables are what ThreadSanitizer understands.
/// Why not `NSLock`/`NSCondition`: the same pthread calls, but three
/// allocations per lock instead of one.
///
/// A copy of a `Locked` is the same lock and the same value.
public struct Locked<Value> {
    private let storage: Storage<Value>

    /// Puts `value` behind a new lock.
    public init(_ value: Value) {
        storage = Storage.make(value)
    }

    /// Runs `body` with the value, holding the lock. Call ``wakeWaiters()``
    /// afterwards if the change may be what a waiter waits for.
    public func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        storage.lock()
        defer { storage.unlock() }
        return try body(&storage.header)
    }

    /// Waits, the lock released meanwhile, until `ready` holds for the value
    /// or `deadline` (if any) has passed, then runs `body` with the value,
    /// holding the lock. After a deadline, `body` may see a value for which
    /// `ready` is false: it checks again if that matters.
    public func withLock<Result, Failure: Error>(
        waitingUntil ready: (Value) -> Bool, deadline: ContinuousClock.Instant? = nil,
        _ body: (inout Value) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        storage.lock()
        defer { storage.unlock() }
        while !ready(storage.header) {
            if let deadline {
                let left = deadline - ContinuousClock.now
                if left <= .zero { break }
                storage.wait(for: left)
            } else {
                storage.wait()
            }
        }
        return try body(&storage.header)
    }

    /// Wakes every thread waiting in ``withLock(waitingUntil:deadline:_:)``
    /// so it looks at the value again. Cheap when nobody waits.
    public func wakeWaiters() {
        storage.broadcast()
    }
}

// @unchecked: the value is only touched while the lock is held.
extension Locked: @unchecked Sendable where Value: Sendable {}

/// The mutex and condition variable, tail-allocated after the value so their
/// addresses never change (a pthread mutex must not move).
private struct Primitives {
    var mutex = pthread_mutex_t()
    var condition = pthread_cond_t()
}

/// The value (header) and its primitives (one element) in one allocation.
private final class Storage<Value>: ManagedBuffer<Value, Primitives> {
    static func make(_ value: Value) -> Storage {
        let buffer = create(minimumCapacity: 1) { _ in value }
        let storage = unsafeDowncast(buffer, to: Storage.self)
        storage.withUnsafeMutablePointerToElements { primitives in
            primitives.initialize(to: Primitives())
            var attributes = pthread_condattr_t()
            pthread_condattr_init(&attributes)
            // Timed waits measure against the monotonic clock, which no one sets.
            pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
            precondition(pthread_mutex_init(storage.mutex, nil) == 0, "pthread_mutex_init failed")
            precondition(pthread_cond_init(storage.condition, &attributes) == 0, "pthread_cond_init failed")
            pthread_condattr_destroy(&attributes)
        }
        return storage
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        _ = withUnsafeMutablePointerToElements { $0.deinitialize(count: 1) }
    }

    // The fields' addresses inside the element, which stays where it is for the object's life.
    var mutex: UnsafeMutablePointer<pthread_mutex_t> {
        withUnsafeMutablePointerToElements {
            (UnsafeMutableRawPointer($0) + MemoryLayout<Primitives>.offset(of: \.mutex)!)
                .assumingMemoryBound(to: pthread_mutex_t.self)
        }
    }

    var condition: UnsafeMutablePointer<pthread_cond_t> {
        withUnsafeMutablePointerToElements {
            (UnsafeMutableRawPointer($0) + MemoryLayout<Primitives>.offset(of: \.condition)!)
                .assumingMemoryBound(to: pthread_cond_t.self)
        }
    }

    func lock() {
        let result = pthread_mutex_lock(mutex)
        precondition(result == 0, "pthread_mutex_lock failed: \(result)")
    }

    func unlock() {
        let result = pthread_mutex_unlock(mutex)
        precondition(result == 0, "pthread_mutex_unlock failed: \(result)")
    }

    /// Waits for a broadcast (or a spurious wake-up); called holding the lock.
    func wait() {
        let result = pthread_cond_wait(condition, mutex)
        precondition(result == 0, "pthread_cond_wait failed: \(result)")
    }

    /// Waits for a broadcast, at most `duration`; called holding the lock.
    func wait(for duration: Duration) {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let (seconds, attoseconds) = duration.components
        let nanoseconds = Int(deadline.tv_nsec) + Int(attoseconds / 1_000_000_000)
        deadline.tv_sec += Int(seconds) + nanoseconds / 1_000_000_000
        deadline.tv_nsec = nanoseconds % 1_000_000_000
        let result = pthread_cond_timedwait(condition, mutex, &deadline)
        precondition(result == 0 || result == ETIMEDOUT, "pthread_cond_timedwait failed: \(result)")
    }

    func broadcast() {
        pthread_cond_broadcast(condition)
    }
}
