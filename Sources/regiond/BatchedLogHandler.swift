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
        var line = sink.timestamp()
        line.reserveCapacity(160)
        line += " "
        line += event.level.rawValue
        if !label.isEmpty {
            line += " "
            line += label
        }
        line += ":"
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            line += " "
            line += key
            line += "="
            line += value.description
        }
        line += " ["
        line += event.source
        line += "] "
        line += event.message.description
        line += "\n"
        sink.append(line, urgent: event.level >= .warning)
    }
}
