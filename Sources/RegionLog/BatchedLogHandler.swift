public import Logging

/// A swift-log handler writing one line per event to a ``LogSink``:
///
/// ```
/// 2026-12-06T17:40:01.123Z info regiond: class=3 label="" offset=1048576 [RegionState] allocated
/// <time>                   <level> <label>: <key>=<value> ... [<source>] <message>
/// ```
///
/// The time is RFC 3339 in UTC with milliseconds. The fields are sorted by
/// key; each label, key, value and source is written by logfmt's rules
/// (bare, or quoted and escaped; an empty value as `key=""`) and the message
/// with its control characters escaped, so that nothing a caller controls
/// can break the line or forge another (see ``LogEscaping``). Metadata comes
/// from the handler, then its `metadataProvider`, then the call, each
/// overriding the one before; an event's error is the field `error`, its
/// description. Nested values are rendered (`description`) then escaped.
public struct BatchedLogHandler: LogHandler {
    /// The logger's label, written after the level.
    public let label: String
    /// Where the lines go.
    public let sink: LogSink
    /// The lowest level written.
    public var logLevel: Logger.Level
    /// Metadata on every line of this handler.
    public var metadata: Logger.Metadata = [:]
    /// Metadata looked up for each line (task-locals, say), below the call's.
    public var metadataProvider: Logger.MetadataProvider?

    /// A handler for the logger `label`, writing to `sink` the lines at `logLevel` and above.
    public init(
        label: String, sink: LogSink, logLevel: Logger.Level = .info,
        metadataProvider: Logger.MetadataProvider? = nil
    ) {
        self.label = label
        self.sink = sink
        self.logLevel = logLevel
        self.metadataProvider = metadataProvider
    }

    /// One field of `metadata`.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Formats `event` into the sink's buffer.
    public func log(event: LogEvent) {
        let provided = metadataProvider?.get() ?? [:]
        // Most lines carry only the call's metadata: no merge then.
        var merged = event.metadata ?? [:]
        if !metadata.isEmpty || !provided.isEmpty {
            merged = metadata.merging(provided) { _, provided in provided }.merging(merged) { _, explicit in explicit }
        }
        if let error = event.error { merged["error"] = .string(String(describing: error)) }
        // Everything that runs the caller's code (descriptions, the source)
        // before the sink's lock; fields sorted in place on the stack.
        let message = event.message.description
        let source = event.source
        let urgent = event.level >= .warning
        withUnsafeTemporaryAllocation(of: (key: String, value: String).self, capacity: merged.count) { buffer in
            var fields = buffer
            _ = fields.initialize(fromContentsOf: merged.lazy.map { (key: $0.key, value: Self.render($0.value)) })
            defer { fields.deinitialize() }
            fields.sort { $0.key < $1.key }
            sink.append(urgent: urgent) { line in
                line.append(UInt8(ascii: " "))
                line += event.level.rawValue.utf8
                if !label.isEmpty {
                    line.append(UInt8(ascii: " "))
                    LogEscaping.appendField(label, to: &line)
                }
                line.append(UInt8(ascii: ":"))
                for (key, value) in fields {
                    line.append(UInt8(ascii: " "))
                    LogEscaping.appendField(key, to: &line)
                    line.append(UInt8(ascii: "="))
                    LogEscaping.appendField(value, to: &line)
                }
                line += " [".utf8
                LogEscaping.appendField(source, to: &line)
                line += "] ".utf8
                LogEscaping.appendMessage(message, to: &line)
                line.append(UInt8(ascii: "\n"))
            }
        }
    }

    private static func render(_ value: Logger.MetadataValue) -> String {
        if case .string(let text) = value { text } else { value.description }
    }
}
