import Testing

@testable import RegionServer

/// The one-pass parser request bodies go through.
@Suite struct JSONValueTests {
    @Test(arguments: [
        ("1", UInt64?.some(1)), ("0", 0), ("-0", 0), ("1.0", 1), ("1e3", 1000), ("1E+3", 1000), ("10e-1", 1),
        ("0.0e5", 0), ("1048576.000", 1_048_576), ("18446744073709551615", .max), ("1.8446744073709551615e19", .max),
        ("18446744073709551616", nil), ("1e20", nil), ("1.5", nil), ("1e-1", nil), ("-1", nil), ("1e400", nil),
        ("1e-99999999999999999999999", nil), ("0e99999999999999999999999", 0),
    ])
    func numbersAreIntegersWhateverTheirSpelling(text: String, expected: UInt64?) {
        #expect(JSONValue.parse(Array(text.utf8))?.unsignedInteger == expected)
    }

    @Test(arguments: [
        (#""a\"b\\c\/d""#, "a\"b\\c/d"), (#""\n\t\r\b\f""#, "\n\t\r\u{8}\u{C}"), (#""\u00e9\u20AC""#, "é€"),
        (#""\ud83d\ude00""#, "😀"), ("\"é\"", "é"),
    ])
    func stringsAreUnescaped(text: String, expected: String) {
        #expect(JSONValue.parse(Array(text.utf8)) == .string(expected))
    }

    @Test(arguments: [
        "", " ", "{", #"{"a":1,}"#, "[1,]", "01", "1.", ".5", "+1", "--1", #""\ud800""#, #""\udc00x""#, #""\x""#,
        "\"a\u{1}b\"", "tru", "nul", "{} {}", #"{"a" 1}"#, #"{1:2}"#, String(repeating: "[", count: 600) + String(repeating: "]", count: 600),
    ])
    func invalidDocumentsAreRefused(text: String) {
        #expect(JSONValue.parse(Array(text.utf8)) == nil)
    }

    @Test func invalidUTF8InAStringIsRefused() {
        #expect(JSONValue.parse([0x22, 0xFF, 0x22]) == nil)
    }

    @Test func aRepeatedMemberReadsAsItsLastValue() {
        let json = JSONValue.parse(Array(#"{"size": 1, "size": 2}"#.utf8))
        #expect(json?["size"]?.unsignedInteger == 2)
    }
}
