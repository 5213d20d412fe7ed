import Testing

@testable import RegionLog

/// Text a caller controls, as it must appear in a line.
struct LogEscapingTests {
    /// Some text and how it must be written.
    struct Case: CustomTestStringConvertible, Sendable {
        let text: String
        let expected: String

        init(_ text: String, _ expected: String) {
            self.text = text
            self.expected = expected
        }

        // Escaped, so that the test report itself sends no escape sequences to the terminal.
        var testDescription: String { text.debugDescription }
    }

    static let fields: [Case] = [
        Case("plain", "plain"),
        Case("", #""""#),
        Case("two words", #""two words""#),
        Case("a=b", #""a=b""#),
        Case(#"say "hi""#, #""say \"hi\"""#),
        Case(#"C:\dir"#, #""C:\\dir""#),
        Case(
            "evil\n2026-12-06T00:00:00.000Z critical regiond: forged",
            #""evil\n2026-12-06T00:00:00.000Z critical regiond: forged""#
        ),
        Case("cr\rhere", #""cr\rhere""#),
        Case("tab\there", #""tab\there""#),
        Case("\u{1B}[31mred", #""\u{1B}[31mred""#),
        Case("nul\u{0}", #""nul\u{0}""#),
        Case("del\u{7F}", #""del\u{7F}""#),
        Case("next\u{85}line", #""next\u{85}line""#),
        Case("line\u{2028}separator", #""line\u{2028}separator""#),
        Case("paragraph\u{2029}separator", #""paragraph\u{2029}separator""#),
        Case("\u{202E}txt.exe", #""\u{202E}txt.exe""#),
        Case("café", "café"),
        Case("日本語", "日本語"),
        Case("🙂", "🙂"),
        Case("no\u{A0}break", "\"no\u{A0}break\""),
        Case("ünïcode with spaces", #""ünïcode with spaces""#),
    ]

    @Test(arguments: fields)
    func aFieldIsWrittenBareOrQuotedWithEscapes(_ example: Case) {
        var line: [UInt8] = []
        LogEscaping.appendField(example.text, to: &line)
        #expect(String(decoding: line, as: UTF8.self) == example.expected)
    }

    static let messages: [Case] = [
        Case("state loaded", "state loaded"),
        Case("", ""),
        Case(
            "evil\n2026-12-06T00:00:00.000Z critical regiond: forged",
            #"evil\n2026-12-06T00:00:00.000Z critical regiond: forged"#
        ),
        Case(#"say "hi""#, #"say "hi""#),
        Case(#"C:\dir"#, #"C:\\dir"#),
        Case("\u{1B}[31mred\r", #"\u{1B}[31mred\r"#),
        Case("line\u{2028}separator", #"line\u{2028}separator"#),
        Case("café 🙂", "café 🙂"),
    ]

    @Test(arguments: messages)
    func aMessageIsNeverQuotedButEscaped(_ example: Case) {
        var line: [UInt8] = []
        LogEscaping.appendMessage(example.text, to: &line)
        #expect(String(decoding: line, as: UTF8.self) == example.expected)
    }
}
