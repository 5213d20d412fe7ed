import Foundation
import Glibc

/// A pipe a test's sink writes into, read back line by line.
///
/// Reading waits for the bytes with poll(2); its deadline is only how a
/// failure ends, never how long a test waits for success.
final class LogPipe {
    /// The end the sink writes to.
    let writeEnd: Int32
    private let readEnd: Int32
    private var partial: [UInt8] = []
    private var lines: [String] = []

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    init() throws {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw Failure(description: "pipe: errno \(errno)") }
        readEnd = ends[0]
        writeEnd = ends[1]
    }

    deinit {
        close(readEnd)
        close(writeEnd)
    }

    /// The complete lines read so far, once `done` holds for them, or when `seconds` have passed.
    func lines(until done: ([String]) -> Bool, seconds: Double = 30) -> [String] {
        let deadline = Date().addingTimeInterval(seconds)
        while !done(lines) {
            let remaining = Int32(max(0, deadline.timeIntervalSinceNow * 1000))
            guard remaining > 0, readSome(timeout: remaining) else { break }
        }
        return lines
    }

    /// The first `count` lines, waiting for them.
    func lines(count: Int) -> [String] {
        Array(lines { $0.count >= count }.prefix(count))
    }

    /// The complete lines that have arrived by now, without waiting.
    func linesNow() -> [String] {
        while readSome(timeout: 0) {}
        return lines
    }

    /// Reads what is there, waiting up to `timeout` ms for something; false if nothing came.
    private func readSome(timeout: Int32) -> Bool {
        var descriptor = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, timeout)
        if ready < 0 && errno == EINTR { return true }
        guard ready > 0 else { return false }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        let count = buffer.withUnsafeMutableBytes { read(readEnd, $0.baseAddress!, $0.count) }
        guard count > 0 else { return false }
        for byte in buffer[..<count] {
            if byte == UInt8(ascii: "\n") {
                lines.append(String(decoding: partial, as: UTF8.self))
                partial.removeAll(keepingCapacity: true)
            } else {
                partial.append(byte)
            }
        }
        return true
    }
}
