/// How text that a caller controls goes into a log line, so that it can
/// neither end the line, nor send the terminal an escape sequence, nor pass
/// for another field (logfmt's rules).
///
/// - A field (a label, a source, a metadata key or value) is written bare
///   when it is not empty and made only of printable characters other than
///   a space, `=`, `"` and `\`. Otherwise it is written in double quotes,
///   with `\"`, `\\`, `\n`, `\r`, `\t`, and `\u{1B}` (hexadecimal, as in a
///   Swift literal) for every other character that is not printable: the
///   C0 and C1 controls, DEL, the line and paragraph separators U+2028 and
///   U+2029, format characters such as the bidirectional overrides, private
///   use and unassigned code points. An empty field is written `""`.
/// - The message, last on the line, is never quoted: `\` and the characters
///   that are not printable are escaped the same way, quotes and spaces are
///   kept.
enum LogEscaping {
    /// Appends `text` as a field: bare, or quoted and escaped.
    static func appendField(_ text: String, to line: inout [UInt8]) {
        // Fast path: printable ASCII with nothing to quote, as almost every field is.
        if !text.isEmpty && all(text, isBareASCII) {
            line += text.utf8
            return
        }
        if !text.isEmpty && !text.unicodeScalars.contains(where: needsQuotes) {
            line += text.utf8
            return
        }
        line.append(UInt8(ascii: "\""))
        appendEscaped(text, quoted: true, to: &line)
        line.append(UInt8(ascii: "\""))
    }

    /// Appends `text` as the message: unquoted, with `\` and what is not printable escaped.
    static func appendMessage(_ text: String, to line: inout [UInt8]) {
        if all(text, { $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\\") }) {
            line += text.utf8
        } else {
            appendEscaped(text, quoted: false, to: &line)
        }
    }

    /// True if every byte of `text` passes `test`; on the bytes in place when they are contiguous, as a native string's are.
    @inline(__always)
    private static func all(_ text: String, _ test: (UInt8) -> Bool) -> Bool {
        text.utf8.withContiguousStorageIfAvailable { bytes in
            for byte in bytes where !test(byte) { return false }
            return true
        } ?? text.utf8.allSatisfy(test)
    }

    private static func appendEscaped(_ text: String, quoted: Bool, to line: inout [UInt8]) {
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": line += #"\\"#.utf8
            case "\"" where quoted: line += #"\""#.utf8
            case "\n": line += #"\n"#.utf8
            case "\r": line += #"\r"#.utf8
            case "\t": line += #"\t"#.utf8
            case _ where !isPrintable(scalar):
                line += #"\u{"#.utf8
                appendHexadecimal(scalar.value, to: &line)
                line.append(UInt8(ascii: "}"))
            default:
                UTF8.encode(scalar) { line.append($0) }
            }
        }
    }

    private static func isBareASCII(_ byte: UInt8) -> Bool {
        byte > 0x20 && byte < 0x7F && byte != UInt8(ascii: "=") && byte != UInt8(ascii: "\"")
            && byte != UInt8(ascii: "\\")
    }

    /// True for a character that makes a field quoted.
    private static func needsQuotes(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.isASCII { return !isBareASCII(UInt8(scalar.value)) }
        // A space that is not U+0020 still looks like a field separator.
        return !isPrintable(scalar) || scalar.properties.generalCategory == .spaceSeparator
    }

    /// False for a character that must be written as an escape.
    private static func isPrintable(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x20..<0x7F: return true
        case 0..<0x20, 0x7F..<0xA0: return false
        default:
            switch scalar.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator, .privateUse, .surrogate, .unassigned:
                return false
            default:
                return true
            }
        }
    }

    private static func appendHexadecimal(_ value: UInt32, to line: inout [UInt8]) {
        var shift: UInt32 = 28
        // No leading zeros, but at least one digit.
        while shift > 0 && value >> shift == 0 { shift -= 4 }
        while true {
            let digit = UInt8(value >> shift & 0xF)
            line.append(digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "A") + digit - 10)
            if shift == 0 { return }
            shift -= 4
        }
    }
}
