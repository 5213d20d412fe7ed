import Foundation
import Glibc
import Locking

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
    // @unchecked: `writer` is set in init before the sink is shared and read
    // only by close(); everything else shared lives in `buffers`, except the
    // batch being written, owned by whoever set `writing`.

    /// The lines and the writer's state, behind one lock that is also the
    /// wake-up (lines arrived, a batch was written, closing, the writer ended).
    private let buffers: Locked<Buffers>
    private var writer = pthread_t()
    private let interval: Duration
    private let output: @Sendable ([UInt8]) -> Void

    private struct Buffers {
        /// Lines not yet taken by a write.
        var pending: [UInt8] = []
        /// The other buffer, empty, while no batch is being written.
        var spare: [UInt8] = []
        /// True while a batch is written (outside the lock): batches go out one at a time, in order.
        var writing = false
        var closing = false
        var joined = false
        var timestamp = LogTimestamp()
    }

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
        var buffers = Buffers()
        buffers.pending.reserveCapacity(64 * 1024)
        buffers.spare.reserveCapacity(64 * 1024)
        self.buffers = Locked(buffers)
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
        let (wasEmpty, now) = buffers.withLock { buffers in
            let wasEmpty = buffers.pending.isEmpty
            buffers.timestamp.appendNow(to: &buffers.pending)
            format(&buffers.pending)
            return (wasEmpty, urgent || buffers.closing)
        }
        if now {
            writePending()
        } else if wasEmpty {
            // The first line of a batch: wake the writer.
            buffers.wakeWaiters()
        }
    }

    /// Writes every line appended so far, and returns when they are written.
    public func flush() {
        writePending()
    }

    /// Writes every pending line and ends the writer thread; returns when it
    /// has ended. A second call only waits for the first.
    public func close() {
        let first = buffers.withLock { buffers in
            defer { buffers.closing = true }
            return !buffers.closing
        }
        buffers.wakeWaiters()
        if first {
            pthread_join(writer, nil)
            buffers.withLock { $0.joined = true }
            buffers.wakeWaiters()
        } else {
            buffers.withLock(waitingUntil: { $0.joined }) { _ in }
        }
    }

    private func runWriter() {
        while true {
            // Until the first line of a batch is here; then give others `interval` to join it.
            let closing = buffers.withLock(waitingUntil: { !$0.pending.isEmpty || $0.closing }) { $0.closing }
            if !closing {
                buffers.withLock(waitingUntil: { $0.closing }, deadline: .now + interval) { _ in }
            }
            writePending()
            if buffers.withLock({ $0.closing && $0.pending.isEmpty }) { return }
        }
    }

    /// Writes the pending lines, after any batch being written, and returns when they are written.
    private func writePending() {
        let taken = buffers.withLock(waitingUntil: { !$0.writing }) { buffers -> [UInt8]? in
            guard !buffers.pending.isEmpty else { return nil }
            var batch: [UInt8] = []
            swap(&batch, &buffers.spare)
            swap(&batch, &buffers.pending)
            buffers.writing = true
            return batch
        }
        guard var batch = taken else { return }
        output(batch)
        batch.removeAll(keepingCapacity: true)
        buffers.withLock { buffers in
            buffers.spare = batch
            buffers.writing = false
        }
        buffers.wakeWaiters()
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
