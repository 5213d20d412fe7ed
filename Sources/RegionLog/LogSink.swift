import Foundation
import Glibc

/// Where log lines go: a file descriptor (standard error for regiond),
/// written in batches by a thread of its own, so that a request pays for
/// formatting one line into a buffer, not for a write(2) per line.
///
/// Info lines wait at most `interval` and go out together; a line at
/// `warning` or above is written at once, with every line before it, in
/// order. Two buffers take turns: lines are appended to one while the other
/// is written, so an append never waits for a write(2) (only a warning
/// does, for the write of its own batch). `close()` writes the rest and
/// joins the writer thread; lines appended after it are written at once.
/// A `kill -9` can lose the info lines of the last interval.
public final class LogSink: @unchecked Sendable {
    // @unchecked: every `var` below is touched only while holding
    // `condition`, except `writer`, set in init before the sink is shared,
    // and the batch being written, owned by whoever set `writing`.
    //
    // One NSCondition is both the lock and the wake-up (lines arrived, a
    // batch was written, closing). Not `Mutex`: NSCondition is a pthread
    // mutex and condition variable, which ThreadSanitizer understands
    // (see RegionState's Locked.swift).
    private let condition = NSCondition()
    /// Lines not yet taken by a write.
    private var pending: [UInt8] = []
    /// The other buffer, empty, while no batch is being written.
    private var spare: [UInt8] = []
    /// True while a batch is written (outside the lock): batches go out one at a time, in order.
    private var writing = false
    private var closing = false
    private var joined = false
    private var timestamp = LogTimestamp()
    private var writer = pthread_t()
    private let interval: Duration
    private let output: @Sendable ([UInt8]) -> Void

    /// The sink of the process: standard error.
    public static let standardError = LogSink(descriptor: 2)

    /// A sink writing to `descriptor`, which it neither owns nor closes; info lines wait at most `interval`.
    public convenience init(descriptor: Int32, interval: Duration = .milliseconds(20)) {
        self.init(interval: interval) { Self.write($0, to: descriptor) }
    }

    /// A sink handing each batch of whole lines to `output`, on the writer
    /// thread or, for warnings, flushes and closes, on the caller's.
    init(interval: Duration, output: @escaping @Sendable ([UInt8]) -> Void) {
        self.interval = interval
        self.output = output
        pending.reserveCapacity(64 * 1024)
        spare.reserveCapacity(64 * 1024)
        // The thread holds the sink until it ends (in close()).
        let context = Unmanaged.passRetained(self).toOpaque()
        let created = pthread_create(&writer, nil, { context in
            let sink = Unmanaged<LogSink>.fromOpaque(context!).takeRetainedValue()
            sink.runWriter()
            return nil
        }, context)
        precondition(created == 0, "cannot start the log writer thread: error \(created)")
    }

    /// Appends one line, after the current time: `format` appends the rest,
    /// newline included (holding the lock, so it must be quick and must not
    /// log); `urgent` writes it, and all before it, now.
    func append(urgent: Bool, _ format: (inout [UInt8]) -> Void) {
        condition.lock()
        defer { condition.unlock() }
        let wasEmpty = pending.isEmpty
        timestamp.appendNow(to: &pending)
        format(&pending)
        if urgent || closing {
            writePending()
        } else if wasEmpty {
            // Broadcast, not signal: a warning waiting for `writing` must not take the writer's wake-up.
            condition.broadcast()
        }
    }

    /// Writes every line appended so far, and returns when they are written.
    public func flush() {
        condition.lock()
        writePending()
        condition.unlock()
    }

    /// Writes every pending line and ends the writer thread; returns when it
    /// has ended. A second call only waits for the first.
    public func close() {
        condition.lock()
        let first = !closing
        closing = true
        condition.broadcast()
        if first {
            condition.unlock()
            pthread_join(writer, nil)
            condition.lock()
            joined = true
            condition.broadcast()
        } else {
            while !joined { condition.wait() }
        }
        condition.unlock()
    }

    private func runWriter() {
        let batching = Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
        condition.lock()
        defer { condition.unlock() }
        while true {
            while pending.isEmpty && !closing { condition.wait() }
            if !closing {
                // The first line of a batch is here: give others `interval` to join it.
                let deadline = Date(timeIntervalSinceNow: batching)
                while !closing && condition.wait(until: deadline) {}
            }
            writePending()
            if closing && pending.isEmpty { return }
        }
    }

    /// Writes the pending lines, after any batch being written; called and returns holding the lock.
    private func writePending() {
        while writing { condition.wait() }
        guard !pending.isEmpty else { return }
        var batch: [UInt8] = []
        swap(&batch, &spare)
        swap(&batch, &pending)
        writing = true
        condition.unlock()
        output(batch)
        batch.removeAll(keepingCapacity: true)
        condition.lock()
        spare = batch
        writing = false
        condition.broadcast()
    }

    /// write(2) until every byte is out, retrying EINTR; a log that cannot
    /// be written is dropped, never retried forever.
    private static func write(_ bytes: [UInt8], to descriptor: Int32) {
        bytes.withUnsafeBytes { buffer in
            var done = 0
            while done < buffer.count {
                let written = Glibc.write(descriptor, buffer.baseAddress! + done, buffer.count - done)
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else { return }
                done += written
            }
        }
    }
}
