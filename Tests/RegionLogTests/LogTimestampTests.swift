import Testing

@testable import RegionLog

/// RFC 3339 in UTC with milliseconds.
struct LogTimestampTests {
    static let instants: [(Int, Int, String)] = [
        (0, 0, "1970-01-01T00:00:00.000Z"),
        (1_796_578_801, 123_456_789, "2026-12-06T17:40:01.123Z"),
        (1_835_481_599, 999_999_999, "2028-02-29T23:59:59.999Z"),
        (1_000_000_000, 7_000_000, "2001-09-09T01:46:40.007Z"),
    ]

    @Test(arguments: instants)
    func anInstantIsWrittenInUTCWithMilliseconds(seconds: Int, nanoseconds: Int, expected: String) {
        var timestamp = LogTimestamp()
        var line: [UInt8] = []
        timestamp.append(seconds: seconds, nanoseconds: nanoseconds, to: &line)
        #expect(String(decoding: line, as: UTF8.self) == expected)
    }

    @Test func theCachedSecondIsReplacedWhenTheSecondChanges() {
        var timestamp = LogTimestamp()
        var line: [UInt8] = []
        timestamp.append(seconds: 1_796_578_801, nanoseconds: 999_000_000, to: &line)
        line.append(UInt8(ascii: " "))
        timestamp.append(seconds: 1_796_578_802, nanoseconds: 0, to: &line)
        #expect(String(decoding: line, as: UTF8.self) == "2026-12-06T17:40:01.999Z 2026-12-06T17:40:02.000Z")
    }
}
