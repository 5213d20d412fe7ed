import Foundation
import Glibc

/// Where regiond's log lines go: standard error, written in batches by a
/// thread of its own, so that a request pays for formatting one line and
/// appending it to a buffer, not for a write(2) per line.
///
/// Lines at `warning` and above are written at once (with everything
/// before them), so trouble is never held back; info lines wait at most
/// `interval`, and `flush()` at exit writes the rest. A `kill -9` can lose
/// the info lines of the last interval; no answer ever waits for the log.
final class LogSink: @unchecked Sendable {
    // @unchecked: `pending`, `cachedSecond` and `cachedStamp` are only
    // touched while holding `lock`; `descriptor` and `interval` never change.
    private let lock = NSCondition()
    private var pending: [UInt8] = []
    private var cachedSecond = -1
    private var cachedStamp: [UInt8] = []
    private let descriptor: Int32
    private let interval: Duration

    /// The sink of the process: standard error.
    static let standardError = LogSink(descriptor: 2)

    init(descriptor: Int32, interval: Duration = .milliseconds(20)) {
        self.descriptor = descriptor
        self.interval = interval
        pending.reserveCapacity(64 * 1024)
        let writer = Thread { [self] in runWriter() }
        writer.name = "regiond-log"
        writer.start()
    }

    /// Appends one line, after the current timestamp: `format` appends the
    /// rest to the pending bytes (holding the lock, so it must be quick);
    /// `urgent` writes it, and all before it, now.
    func append(urgent: Bool, _ format: (inout [UInt8]) -> Void) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        lock.lock()
        defer { lock.unlock() }
        if now.tv_sec != cachedSecond { stamp(now.tv_sec) }
        pending.append(contentsOf: cachedStamp)
        format(&pending)
        if urgent {
            // Written under the lock so lines keep their order.
            write(pending)
            pending.removeAll(keepingCapacity: true)
        }
    }

    /// Writes every pending line now.
    func flush() {
        lock.lock()
        let bytes = pending
        pending.removeAll(keepingCapacity: true)
        write(bytes)
        lock.unlock()
    }

    /// Formats `seconds` as local time, `2026-12-04T04:12:15+0000`
    /// (swift-log's StreamLogHandler format); called once per second, with the lock held.
    private func stamp(_ seconds: Int) {
        var seconds = seconds
        var parts = tm()
        localtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        cachedStamp = buffer[..<count].map { UInt8(bitPattern: $0) }
        cachedSecond = seconds
    }

    private func runWriter() {
        while true {
            Thread.sleep(forTimeInterval: Double(interval.components.attoseconds) / 1e18 + Double(interval.components.seconds))
            flush()
        }
    }

    /// write(2) until every byte is out; a log that cannot be written is dropped, never retried forever.
    private func write(_ bytes: [UInt8]) {
        var done = 0
        while done < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + done, $0.count - done) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            done += written
        }
    }
}
