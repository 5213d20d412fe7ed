/// A JSON document as a request body holds it: parsed once, strictly
/// (RFC 8259: no trailing commas, no leading zeros, no raw control
/// characters, valid UTF-8, surrogate pairs whole), then read by the route.
/// Responses are encoded by Foundation's `JSONEncoder`; request bodies are
/// small, and one pass here replaces a syntax check plus `JSONDecoder`.
enum JSONValue: Equatable, Sendable {
    case object([(name: String, value: JSONValue)])
    case array([JSONValue])
    case string(String)
    /// A number as written, checked against the grammar; see ``unsignedInteger``.
    case number(Substring)
    case bool(Bool)
    case null

    static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.object(let a), .object(let b)): a.map(\.name) == b.map(\.name) && a.map(\.value) == b.map(\.value)
        case (.array(let a), .array(let b)): a == b
        case (.string(let a), .string(let b)): a == b
        case (.number(let a), .number(let b)): a == b
        case (.bool(let a), .bool(let b)): a == b
        case (.null, .null): true
        default: false
        }
    }

    /// Parses exactly one JSON value with optional whitespace around it (and
    /// a UTF-8 byte order mark before it, which RFC 8259 lets a parser ignore).
    static func parse(_ bytes: [UInt8]) -> JSONValue? {
        var parser = Parser(bytes: bytes)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { parser.index = 3 }
        guard let value = parser.value() else { return nil }
        parser.skipWhitespace()
        return parser.index == bytes.count ? value : nil
    }

    /// The value of member `name` of an object (the last one, when repeated), nil if absent.
    subscript(name: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.last { $0.name == name }?.value
    }

    /// A number with an integer value from 0 to `UInt64.max`, however it is
    /// written (`1`, `1.0`, `1e3`, `-0`: JSON Schema's integers); else nil.
    var unsignedInteger: UInt64? {
        guard case .number(let text) = self else { return nil }
        // The usual case, plain digits: read at once, nothing allocated.
        if text.utf8.allSatisfy({ (0x30...0x39).contains($0) }) {
            return UInt64(text)
        }
        var digits: [UInt8] = []
        var exponent = 0
        var negative = false
        var part = 0  // 0 integer, 1 fraction, 2 exponent
        var exponentText = ""
        for byte in text.utf8 {
            switch (part, byte) {
            case (0, UInt8(ascii: "-")): negative = true
            case (0, UInt8(ascii: ".")): part = 1
            case (_, UInt8(ascii: "e")), (_, UInt8(ascii: "E")): part = 2
            case (2, _): exponentText.append(Character(Unicode.Scalar(byte)))
            case (1, _):
                digits.append(byte - 0x30)
                exponent -= 1
            default: digits.append(byte - 0x30)
            }
        }
        // An exponent too long for an Int is far out of range either way.
        let written = Int(exponentText.isEmpty ? "0" : exponentText) ?? (exponentText.hasPrefix("-") ? Int.min / 2 : Int.max / 2)
        guard let first = digits.firstIndex(where: { $0 != 0 }), let last = digits.lastIndex(where: { $0 != 0 }) else {
            return 0
        }
        exponent += digits.count - 1 - last
        digits = Array(digits[first...last])
        guard !negative else { return nil }
        // More than 20 significant digits, or a scale past 10^19, cannot fit a UInt64.
        let (scale, overflow) = exponent.addingReportingOverflow(written)
        guard !overflow, scale >= 0, digits.count + scale <= 20 else { return nil }
        var value: UInt64 = 0
        for digit in digits + repeatElement(0, count: scale) {
            let (shifted, over1) = value.multipliedReportingOverflow(by: 10)
            let (added, over2) = shifted.addingReportingOverflow(UInt64(digit))
            guard !over1, !over2 else { return nil }
            value = added
        }
        return value
    }

    /// The reader: one pass over the bytes, nothing copied but strings.
    private struct Parser {
        let bytes: [UInt8]
        var index = 0
        var depth = 0

        /// Nesting deeper than this is refused rather than walked.
        static let maximumDepth = 512

        var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipWhitespace() {
            while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D {
                index += 1
            }
        }

        mutating func take(_ byte: UInt8) -> Bool {
            guard current == byte else { return false }
            index += 1
            return true
        }

        mutating func literal(_ text: StaticString) -> Bool {
            let count = text.utf8CodeUnitCount
            guard index + count <= bytes.count else { return false }
            for offset in 0..<count where bytes[index + offset] != text.utf8Start[offset] {
                return false
            }
            index += count
            return true
        }

        mutating func value() -> JSONValue? {
            skipWhitespace()
            switch current {
            case UInt8(ascii: "{"): return object()
            case UInt8(ascii: "["): return array()
            case UInt8(ascii: "\""): return string().map(JSONValue.string)
            case UInt8(ascii: "t"): return literal("true") ? .bool(true) : nil
            case UInt8(ascii: "f"): return literal("false") ? .bool(false) : nil
            case UInt8(ascii: "n"): return literal("null") ? .null : nil
            default: return number()
            }
        }

        mutating func object() -> JSONValue? {
            guard enter() else { return nil }
            defer { depth -= 1 }
            var members: [(name: String, value: JSONValue)] = []
            index += 1
            skipWhitespace()
            if take(UInt8(ascii: "}")) { return .object(members) }
            repeat {
                skipWhitespace()
                guard let name = string() else { return nil }
                skipWhitespace()
                guard take(UInt8(ascii: ":")), let value = value() else { return nil }
                members.append((name, value))
                skipWhitespace()
            } while take(UInt8(ascii: ","))
            return take(UInt8(ascii: "}")) ? .object(members) : nil
        }

        mutating func array() -> JSONValue? {
            guard enter() else { return nil }
            defer { depth -= 1 }
            var elements: [JSONValue] = []
            index += 1
            skipWhitespace()
            if take(UInt8(ascii: "]")) { return .array(elements) }
            repeat {
                guard let element = value() else { return nil }
                elements.append(element)
                skipWhitespace()
            } while take(UInt8(ascii: ","))
            return take(UInt8(ascii: "]")) ? .array(elements) : nil
        }

        mutating func enter() -> Bool {
            depth += 1
            if depth > Self.maximumDepth {
                depth -= 1
                return false
            }
            return true
        }

        /// A string, unescaped; nil for bad escapes, raw control characters,
        /// lone surrogates or invalid UTF-8.
        mutating func string() -> String? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            var utf8: [UInt8] = []
            while let byte = current {
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    return String(validating: utf8, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard let escaped = current else { return nil }
                    index += 1
                    switch escaped {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escaped)
                    case UInt8(ascii: "b"): utf8.append(0x08)
                    case UInt8(ascii: "f"): utf8.append(0x0C)
                    case UInt8(ascii: "n"): utf8.append(0x0A)
                    case UInt8(ascii: "r"): utf8.append(0x0D)
                    case UInt8(ascii: "t"): utf8.append(0x09)
                    case UInt8(ascii: "u"):
                        guard let scalar = unicodeEscape() else { return nil }
                        utf8.append(contentsOf: String(Character(scalar)).utf8)
                    default: return nil
                    }
                case 0x00..<0x20:
                    return nil  // control characters must be escaped
                default:
                    utf8.append(byte)
                }
            }
            return nil
        }

        /// After `\u`: four hex digits, or a surrogate pair written as two escapes.
        mutating func unicodeEscape() -> Unicode.Scalar? {
            guard let high = hex4() else { return nil }
            switch high {
            case 0xD800...0xDBFF:
                guard take(UInt8(ascii: "\\")), take(UInt8(ascii: "u")), let low = hex4(), (0xDC00...0xDFFF).contains(low)
                else { return nil }
                return Unicode.Scalar(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
            case 0xDC00...0xDFFF:
                return nil
            default:
                return Unicode.Scalar(high)
            }
        }

        mutating func hex4() -> UInt32? {
            guard index + 4 <= bytes.count else { return nil }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: return nil
                }
                value = value << 4 | UInt32(digit)
                index += 1
            }
            return value
        }

        mutating func number() -> JSONValue? {
            let start = index
            _ = take(UInt8(ascii: "-"))
            if take(UInt8(ascii: "0")) {
                // No leading zeros.
            } else {
                guard digits() else { return nil }
            }
            if take(UInt8(ascii: ".")) {
                guard digits() else { return nil }
            }
            if take(UInt8(ascii: "e")) || take(UInt8(ascii: "E")) {
                _ = take(UInt8(ascii: "+")) || take(UInt8(ascii: "-"))
                guard digits() else { return nil }
            }
            return .number(Substring(decoding: bytes[start..<index], as: UTF8.self))
        }

        mutating func digits() -> Bool {
            let start = index
            while let byte = current, (0x30...0x39).contains(byte) {
                index += 1
            }
            return index > start
        }
    }
}
