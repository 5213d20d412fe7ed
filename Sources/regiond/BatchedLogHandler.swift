import Logging

/// A swift-log handler with `StreamLogHandler`'s line format
/// (`<time> <level> <label>: <metadata> [<source>] <message>`), formatted
/// without Foundation and handed to a ``LogSink`` that writes in batches.
struct BatchedLogHandler: LogHandler {
    let label: String
    let sink: LogSink
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        // Most lines carry only the call's metadata: no merge then.
        var merged = metadata.isEmpty ? event.metadata ?? [:] : metadata
        if !metadata.isEmpty, let explicit = event.metadata { merged.merge(explicit) { _, explicit in explicit } }
        if let error = event.error {
            merged["error.message"] = "\(error)"
            merged["error.type"] = "\(String(reflecting: type(of: error)))"
        }
        // Formatted straight into the sink's buffer, fields sorted in place
        // on the stack: no allocation for a line.
        withUnsafeTemporaryAllocation(of: (key: String, value: Logger.MetadataValue).self, capacity: merged.count) {
            buffer in
            var fields = buffer
            _ = fields.initialize(fromContentsOf: merged.lazy.map { (key: $0.key, value: $0.value) })
            defer { fields.deinitialize() }
            fields.sort { $0.key < $1.key }
            sink.append(urgent: event.level >= .warning) { line in
                line.append(UInt8(ascii: " "))
                line += event.level.rawValue.utf8
                if !label.isEmpty {
                    line.append(UInt8(ascii: " "))
                    line += label.utf8
                }
                line.append(UInt8(ascii: ":"))
                for (key, value) in fields {
                    line.append(UInt8(ascii: " "))
                    line += key.utf8
                    line.append(UInt8(ascii: "="))
                    if case .string(let text) = value { line += text.utf8 } else { line += value.description.utf8 }
                }
                line += " [".utf8
                line += event.source.utf8
                line += "] ".utf8
                line += event.message.description.utf8
                line.append(UInt8(ascii: "\n"))
            }
        }
    }
}
