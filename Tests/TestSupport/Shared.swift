import Foundation
import Logging
import Synchronization

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

    private let stored = Mutex<[Message]>([])

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
