import Dispatch
import Foundation
import Logging
import Testing

@testable import RegionLog

/// Batching, urgency, order and the end of the writer thread.
struct LogSinkTests {
    static func logger(_ sink: LogSink) -> Logger {
        Logger(label: "regiond") { BatchedLogHandler(label: $0, sink: sink) }
    }

    /// The field `name=<digits>` of `line`.
    static func number(_ name: String, in line: String) -> Int? {
        line.split(separator: " ").first { $0.hasPrefix("\(name)=") }.flatMap { Int($0.dropFirst(name.count + 1)) }
    }

    @Test func linesFromManyThreadsKeepEachThreadsOrderAndNoneIsLost() throws {
        let pipe = try LogPipe()
        let sink = LogSink(descriptor: pipe.writeEnd)
        defer { sink.close() }
        let logger = Self.logger(sink)
        let threads = 4
        let perThread = 400
        // Logged from other threads while this one reads: the pipe holds only 64 KiB.
        DispatchQueue.global().async {
            DispatchQueue.concurrentPerform(iterations: threads) { thread in
                for n in 0..<perThread {
                    let metadata: Logger.Metadata = ["thread": "\(thread)", "n": "\(n)"]
                    // Some warnings among them: written at once, with the info lines before them.
                    if n % 40 == 39 { logger.warning("line", metadata: metadata) } else { logger.info("line", metadata: metadata) }
                }
            }
        }
        let lines = pipe.lines(count: threads * perThread)
        #expect(lines.count == threads * perThread)
        var seen = [[Int]](repeating: [], count: threads)
        for line in lines {
            let thread = try #require(Self.number("thread", in: line), "\(line)")
            seen[thread].append(try #require(Self.number("n", in: line), "\(line)"))
        }
        for thread in 0..<threads {
            #expect(seen[thread] == Array(0..<perThread), "thread \(thread)")
        }
    }

    @Test func infoLinesGoOutInBatchesWithoutAFlush() throws {
        let pipe = try LogPipe()
        let end = pipe.writeEnd
        // Each write of the sink followed by a marker line, to count them.
        let sink = LogSink(interval: .milliseconds(20)) { batch in
            (batch + Array("#batch\n".utf8)).withUnsafeBytes { _ = write(end, $0.baseAddress!, $0.count) }
        }
        defer { sink.close() }
        let logger = Self.logger(sink)
        let count = 500
        DispatchQueue.global().async {
            for n in 0..<count { logger.info("line", metadata: ["n": "\(n)"]) }
        }
        let lines = pipe.lines { lines in
            lines.last == "#batch" && lines.count { $0 != "#batch" } == count
        }
        let logged = lines.filter { $0 != "#batch" }
        let writes = lines.count - logged.count
        #expect(logged.compactMap { Self.number("n", in: $0) } == Array(0..<count))
        #expect(writes >= 1 && writes < count / 10, "\(writes) writes for \(count) lines")
    }

    @Test func aWarningIsWrittenAtOnceWithTheLinesBeforeIt() throws {
        let pipe = try LogPipe()
        // An hour: anything that arrives during the test did not wait for the interval.
        let sink = LogSink(descriptor: pipe.writeEnd, interval: .seconds(3600))
        defer { sink.close() }
        let logger = Self.logger(sink)
        logger.info("before")
        #expect(pipe.linesNow().isEmpty, "an info line did not wait for its batch")
        logger.warning("trouble")
        let lines = pipe.lines(count: 2)
        #expect(lines.map { $0.split(separator: " ", maxSplits: 1).last ?? "" } == [
            "info regiond: [RegionLogTests] before", "warning regiond: [RegionLogTests] trouble",
        ])
    }

    @Test func closeWritesEverythingAndEndsTheWriterThread() throws {
        let pipe = try LogPipe()
        var sink: LogSink? = LogSink(descriptor: pipe.writeEnd, interval: .seconds(3600))
        weak let watched = sink
        func log(_ message: Logger.Message) { Self.logger(sink!).info(message) }
        for _ in 0..<10 { log("held") }
        #expect(pipe.linesNow().isEmpty, "info lines did not wait for their batch")
        sink!.close()
        // Written before close() returned: no waiting here.
        #expect(pipe.linesNow().count == 10)
        sink!.close()
        log("after close")
        #expect(pipe.linesNow().last?.hasSuffix("after close") == true, "a line after close was not written at once")
        sink = nil
        // The writer thread holds the sink while it runs.
        #expect(watched == nil, "the writer thread did not end")
    }
}
