import Glibc

/// Times as RFC 3339 in UTC with milliseconds, `2026-12-06T17:40:01.123Z`.
///
/// The date and time of day are formatted once per second and kept; each
/// line then costs only its milliseconds.
struct LogTimestamp {
    /// The second `prefix` was made for.
    private var second = Int.min
    /// `2026-12-06T17:40:01`, 19 bytes.
    private var prefix: [UInt8] = []

    /// Appends the time `seconds` and `nanoseconds` after the epoch.
    mutating func append(seconds: Int, nanoseconds: Int, to line: inout [UInt8]) {
        if seconds != second { formatPrefix(seconds) }
        line += prefix
        let milliseconds = nanoseconds / 1_000_000
        line.append(UInt8(ascii: "."))
        line.append(Self.digit(milliseconds / 100))
        line.append(Self.digit(milliseconds / 10 % 10))
        line.append(Self.digit(milliseconds % 10))
        line.append(UInt8(ascii: "Z"))
    }

    /// Appends the time now (the realtime clock).
    mutating func appendNow(to line: inout [UInt8]) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        append(seconds: now.tv_sec, nanoseconds: now.tv_nsec, to: &line)
    }

    private mutating func formatPrefix(_ seconds: Int) {
        var time = seconds
        var parts = tm()
        gmtime_r(&time, &parts)
        prefix.removeAll(keepingCapacity: true)
        Self.appendDigits(Int(parts.tm_year) + 1900, count: 4, to: &prefix)
        prefix.append(UInt8(ascii: "-"))
        Self.appendDigits(Int(parts.tm_mon) + 1, count: 2, to: &prefix)
        prefix.append(UInt8(ascii: "-"))
        Self.appendDigits(Int(parts.tm_mday), count: 2, to: &prefix)
        prefix.append(UInt8(ascii: "T"))
        Self.appendDigits(Int(parts.tm_hour), count: 2, to: &prefix)
        prefix.append(UInt8(ascii: ":"))
        Self.appendDigits(Int(parts.tm_min), count: 2, to: &prefix)
        prefix.append(UInt8(ascii: ":"))
        Self.appendDigits(Int(parts.tm_sec), count: 2, to: &prefix)
        second = seconds
    }

    private static func appendDigits(_ value: Int, count: Int, to bytes: inout [UInt8]) {
        var divisor = 1
        for _ in 1..<count { divisor *= 10 }
        while divisor > 0 {
            bytes.append(digit(value / divisor % 10))
            divisor /= 10
        }
    }

    private static func digit(_ value: Int) -> UInt8 {
        UInt8(ascii: "0") + UInt8(truncatingIfNeeded: value)
    }
}
