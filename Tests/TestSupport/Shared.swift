import Dispatch
import Foundation
import Logging
import Locking

/// A logger that drops everything, so test output stays readable.
let quietLogger = Logger(label: "regiond-tests") { _ in SwiftLogNoOpLogHandler() }

/// The repository's root, found from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A log handler that keeps what is logged, to check warnings.
final class LogCapture: @unchecked Sendable {
    /// One logged message.
    struct Message {
        var level: Logger.Level
        var text: String
    }

    private let stored = Locked<[Message]>([])

    /// Everything logged so far.
    var messages: [Message] { stored.withLock { $0 } }

    /// A logger that logs into this capture.
    var logger: Logger {
        Logger(label: "regiond.journal.test") { _ in Handler(capture: self) }
    }

    fileprivate func record(_ message: Message) {
        stored.withLock { $0.append(message) }
    }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            capture.record(Message(level: event.level, text: "\(event.message) \(event.metadata ?? [:])"))
        }
    }
}

/// Starts an operation that answers through a completion, and waits for its answer.
func waitFor<T: Sendable>(_ start: (@escaping @Sendable (T) -> Void) -> Void) -> T {
    let result = Locked<T?>(nil)
    let done = DispatchSemaphore(value: 0)
    start { value in
        result.withLock { $0 = value }
        done.signal()
    }
    done.wait()
    return result.withLock { $0! }
}

/// A small seeded generator, so every run of a test sees the same sequence
/// and a failing seed can be replayed.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
