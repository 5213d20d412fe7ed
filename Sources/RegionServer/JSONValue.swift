/// A strict RFC 8259 syntax check, run before `JSONDecoder`, which accepts
/// some invalid documents (a trailing comma in an object or array).
/// It only answers yes or no; decoding stays with Foundation.
struct JSONSyntax {
    private let bytes: [UInt8]
    private var index = 0
    private var depth = 0

    /// Nesting deeper than this is refused rather than walked.
    private static let maximumDepth = 512

    /// Whether `bytes` is exactly one JSON value, with optional whitespace
    /// around it (and a UTF-8 byte order mark before it, which RFC 8259 lets
    /// a parser ignore).
    static func isValid(_ bytes: [UInt8]) -> Bool {
        var parser = JSONSyntax(bytes: bytes)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { parser.index = 3 }
        guard parser.value() else { return false }
        parser.skipWhitespace()
        return parser.index == bytes.count
    }

    private init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D {
            index += 1
        }
    }

    private mutating func take(_ byte: UInt8) -> Bool {
        guard current == byte else { return false }
        index += 1
        return true
    }

    private mutating func literal(_ text: StaticString) -> Bool {
        let count = text.utf8CodeUnitCount
        guard index + count <= bytes.count else { return false }
        for offset in 0..<count where bytes[index + offset] != text.utf8Start[offset] {
            return false
        }
        index += count
        return true
    }

    private mutating func value() -> Bool {
        skipWhitespace()
        switch current {
        case UInt8(ascii: "{"): return container(close: UInt8(ascii: "}"), member: true)
        case UInt8(ascii: "["): return container(close: UInt8(ascii: "]"), member: false)
        case UInt8(ascii: "\""): return string()
        case UInt8(ascii: "t"): return literal("true")
        case UInt8(ascii: "f"): return literal("false")
        case UInt8(ascii: "n"): return literal("null")
        default: return number()
        }
    }

    /// An object (members `"name": value`) or an array, without trailing commas.
    private mutating func container(close: UInt8, member: Bool) -> Bool {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maximumDepth else { return false }
        index += 1
        skipWhitespace()
        if take(close) { return true }
        repeat {
            if member {
                skipWhitespace()
                guard string() else { return false }
                skipWhitespace()
                guard take(UInt8(ascii: ":")) else { return false }
            }
            guard value() else { return false }
            skipWhitespace()
        } while take(UInt8(ascii: ","))
        return take(close)
    }

    private mutating func string() -> Bool {
        guard take(UInt8(ascii: "\"")) else { return false }
        while let byte = current {
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                return true
            case UInt8(ascii: "\\"):
                guard let escaped = current else { return false }
                index += 1
                if escaped == UInt8(ascii: "u") {
                    for _ in 0..<4 {
                        guard let hex = current, hex.isHexDigit else { return false }
                        index += 1
                    }
                } else if !"\"\\/bfnrt".utf8.contains(escaped) {
                    return false
                }
            case 0x00..<0x20:
                return false  // control characters must be escaped
            default:
                continue
            }
        }
        return false
    }

    private mutating func number() -> Bool {
        _ = take(UInt8(ascii: "-"))
        if take(UInt8(ascii: "0")) {
            // No leading zeros.
        } else {
            guard digits() else { return false }
        }
        if take(UInt8(ascii: ".")) {
            guard digits() else { return false }
        }
        if take(UInt8(ascii: "e")) || take(UInt8(ascii: "E")) {
            _ = take(UInt8(ascii: "+")) || take(UInt8(ascii: "-"))
            guard digits() else { return false }
        }
        return true
    }

    private mutating func digits() -> Bool {
        let start = index
        while let byte = current, (0x30...0x39).contains(byte) {
            index += 1
        }
        return index > start
    }
}

extension UInt8 {
    fileprivate var isHexDigit: Bool {
        (0x30...0x39).contains(self) || (0x41...0x46).contains(self) || (0x61...0x66).contains(self)
    }
}
