import Foundation
import Logging
import Testing

@testable import RegionLog

/// Lines as the handler formats them, read back from a pipe.
struct BatchedLogHandlerTests {
    struct WriteError: Error, CustomStringConvertible {
        let description: String
    }

    /// A sink on a new pipe, and a logger writing to it.
    static func logger(
        label: String = "regiond", metadata: Logger.Metadata = [:], provider: Logger.MetadataProvider? = nil
    ) throws -> (Logger, LogSink, LogPipe) {
        let pipe = try LogPipe()
        let sink = LogSink(descriptor: pipe.writeEnd)
        var handler = BatchedLogHandler(label: label, sink: sink, metadataProvider: provider)
        handler.metadata = metadata
        return (Logger(label: label) { _ in handler }, sink, pipe)
    }

    /// The line without its time (24 bytes and a space).
    static func withoutTime(_ line: String) -> String {
        String(line.dropFirst(25))
    }

    @Test func aLineHasTimeLevelLabelSortedFieldsSourceAndMessage() throws {
        let (logger, sink, pipe) = try Self.logger()
        defer { sink.close() }
        logger.info("state loaded", metadata: ["regions": "3", "label": "", "b": "x y"], source: "RegionState")
        let lines = pipe.lines(count: 1)
        try #require(lines.count == 1)
        #expect(Self.withoutTime(lines[0]) == #"info regiond: b="x y" label="" regions=3 [RegionState] state loaded"#)
    }

    @Test func theTimeIsRFC3339InUTCWithMilliseconds() throws {
        let (logger, sink, pipe) = try Self.logger()
        defer { sink.close() }
        let before = Date()
        logger.warning("now")
        let lines = pipe.lines(count: 1)
        let after = Date()
        try #require(lines.count == 1)
        let stamp = String(lines[0].prefix(24))
        #expect(stamp.wholeMatch(of: #/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/#) != nil, "\(lines[0])")
        let parser = ISO8601DateFormatter()
        parser.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let time = try #require(parser.date(from: stamp), "\(stamp)")
        // Milliseconds are cut, not rounded: the stamp may be up to 1 ms before `before`.
        #expect(time >= before.addingTimeInterval(-0.001) && time <= after, "\(stamp) not within \(before)...\(after)")
    }

    /// Hostile text, described escaped in the test report.
    struct Hostile: CustomTestStringConvertible, Sendable {
        let text: String
        var testDescription: String { text.debugDescription }
    }

    static let hostile = [
        "evil\n2026-12-06T00:00:00.000Z critical regiond: forged",
        "carriage\rreturn",
        "\u{1B}[31mred\u{1B}[0m",
        "line\u{2028}and\u{2029}paragraph\u{85}next",
        #"quote" and \backslash"#,
        "del\u{7F} nul\u{0} bell\u{7}",
        "",
    ].map(Hostile.init)

    /// Used as label, source, key, value, nested value, error and message at once.
    @Test(arguments: hostile)
    func nothingACallerControlsCanBreakTheLineOrSendAnEscape(_ hostile: Hostile) throws {
        let text = hostile.text
        let (logger, sink, pipe) = try Self.logger(label: text, metadata: [text: "handler"])
        defer { sink.close() }
        logger.handler.log(
            event: LogEvent(
                level: .error, message: "\(text)", error: WriteError(description: text),
                metadata: ["value": "\(text)", "nested": [.string(text), ["k": .string(text)]]],
                source: text, file: #fileID, function: #function, line: #line))
        sink.flush()
        let lines = pipe.linesNow()
        #expect(lines.count == 1, "\(lines)")
        for scalar in lines.joined().unicodeScalars {
            #expect(scalar.value >= 0x20 && !(0x7F..<0xA0).contains(scalar.value), "\(lines)")
            #expect(scalar != "\u{2028}" && scalar != "\u{2029}", "\(lines)")
        }
    }

    @Test func theProvidersMetadataIsMergedAboveTheHandlersAndBelowTheCalls() throws {
        let provider = Logger.MetadataProvider {
            ["provided": "provider", "shared": "provider", "both": "provider"]
        }
        let (logger, sink, pipe) = try Self.logger(
            metadata: ["handler": "handler", "shared": "handler"], provider: provider)
        defer { sink.close() }
        logger.info("merged", metadata: ["both": "call"], source: "test")
        let lines = pipe.lines(count: 1)
        try #require(lines.count == 1)
        #expect(
            Self.withoutTime(lines[0])
                == "info regiond: both=call handler=handler provided=provider shared=provider [test] merged")
    }

    @Test func anErrorIsWrittenAsItsDescriptionEscaped() throws {
        let (logger, sink, pipe) = try Self.logger()
        defer { sink.close() }
        logger.handler.log(
            event: LogEvent(
                level: .error, message: "write failed", error: WriteError(description: "disk\nfull"),
                metadata: ["error": "stale"], source: "RegionState", file: #fileID, function: #function, line: #line))
        let lines = pipe.lines(count: 1)
        try #require(lines.count == 1)
        #expect(Self.withoutTime(lines[0]) == #"error regiond: error="disk\nfull" [RegionState] write failed"#)
    }

    @Test func nestedMetadataIsRenderedThenEscaped() throws {
        let (logger, sink, pipe) = try Self.logger()
        defer { sink.close() }
        logger.info("nested", metadata: ["list": ["a b", "c"], "number": .stringConvertible(42)], source: "test")
        let lines = pipe.lines(count: 1)
        try #require(lines.count == 1)
        #expect(Self.withoutTime(lines[0]) == #"info regiond: list="[\"a b\", \"c\"]" number=42 [test] nested"#)
    }
}
