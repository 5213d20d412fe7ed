import Foundation
import MemoryPool
import MicroHTTP
@testable import RegionServer
import RegionState
@testable import TestSupport
import Testing

/// One request that must fail with an exact status and code and change nothing.
struct MalformedCase: Sendable, CustomTestStringConvertible {
    let name: String
    let method: String
    let path: String
    let body: [UInt8]
    let headers: [(name: String, value: String)]
    let status: Int
    let code: String

    var testDescription: String { name }

    static func post(
        _ name: String, _ body: [UInt8], _ status: Int = 400, _ code: String = "invalid_request",
        headers: [(name: String, value: String)] = []
    ) -> Self {
        Self(name: name, method: "POST", path: "/regions", body: body, headers: headers, status: status, code: code)
    }

    static func post(
        _ name: String, _ json: String, _ status: Int = 400, _ code: String = "invalid_request",
        headers: [(name: String, value: String)] = []
    ) -> Self {
        post(name, Array(json.utf8), status, code, headers: headers)
    }

    /// The same offset, as the router sees it after percent-decoding, for GET and DELETE.
    static func offset(_ name: String, _ offset: String, _ status: Int = 400, _ code: String = "invalid_offset") -> [Self] {
        ["GET", "DELETE"].map {
            Self(
                name: "\($0) \(name)", method: $0, path: "/regions/\(offset)", body: [], headers: [], status: status,
                code: code)
        }
    }
}

let label257 = String(repeating: "x", count: 257)

let malformedCases: [MalformedCase] =
    [
        .post("empty body", ""),
        .post("null", "null"),
        .post("an array", "[]"),
        .post("a string", #""x""#),
        .post("a number", "1048576"),
        .post("an empty object", "{}"),
        .post("size null", #"{"size":null}"#),
        .post("size a string", #"{"size":"5"}"#),
        .post("size true", #"{"size":true}"#),
        .post("size negative", #"{"size":-1}"#),
        .post("size fractional", #"{"size":1.5}"#),
        .post("size tiny fraction", #"{"size":1e-3}"#),
        .post("size 1e400", #"{"size":1e400}"#),
        .post("size 2^64", #"{"size":18446744073709551616}"#),
        .post("size a huge digit string", #"{"size":\#(String(repeating: "9", count: 1000))}"#),
        .post("size an array", #"{"size":[1048576]}"#),
        .post("size a nested object", #"{"size":{"size":1048576}}"#),
        .post("size misspelt", #"{"Size":1048576}"#),
        .post("only a label", #"{"label":"a"}"#),
        .post("size 0", #"{"size":0}"#, 400, "invalid_memory_class"),
        .post("size -0", #"{"size":-0}"#, 400, "invalid_memory_class"),
        .post("size 4 GiB + 1", #"{"size":4294967297}"#, 400, "invalid_memory_class"),
        .post("size 5 GiB", #"{"size":5368709120}"#, 400, "invalid_memory_class"),
        .post("size UInt64.max", #"{"size":18446744073709551615}"#, 400, "invalid_memory_class"),
        .post("size 4 GiB while regions are allocated", #"{"size":4294967296}"#, 409, "not_enough_space"),
        .post("truncated JSON", #"{"size":1048576"#),
        .post("truncated after the key", #"{"size":"#),
        .post("trailing garbage", #"{"size":1048576}x"#),
        .post("two objects", #"{"size":1048576}{"size":1048576}"#),
        .post("a trailing comma in an array", #"{"size":[1048576,]}"#),
        .post("a comment", #"{"size":1048576 /* MiB */}"#),
        .post("NaN", #"{"size":NaN}"#),
        .post("single quotes", "{'size':1048576}"),
        .post("a label that is a number", #"{"size":1048576,"label":5}"#),
        .post("a label that is an object", #"{"size":1048576,"label":{}}"#),
        .post("a label that is null", #"{"size":1048576,"label":null}"#),
        .post("a label of 257 characters", #"{"size":1048576,"label":"\#(label257)"}"#),
        .post("invalid UTF-8 in the label", Array(#"{"size":1048576,"label":""#.utf8) + [0xFF, 0xFE] + Array(#""}"#.utf8)),
        .post("invalid UTF-8 outside strings", Array(#"{"size":1048576"#.utf8) + [0xC3] + Array("}".utf8)),
        .post("a NUL byte", [0]),
        .post("deep nesting of 10,000 [", String(repeating: "[", count: 10_000)),
        .post("deep nesting of 10,000 [ as the size", #"{"size":\#(String(repeating: "[", count: 10_000))"#),
        .post("deep nesting of 10,000 objects", String(repeating: #"{"a":"#, count: 10_000)),
        .post(
            "a bad Idempotency-Key on a good body", #"{"size":1048576}"#, 400, "invalid_request",
            headers: [("Idempotency-Key", "has space")]),
        .post(
            "a reused Idempotency-Key with another size", #"{"size":1}"#, 422, "idempotency_key_reused",
            headers: [("Idempotency-Key", "base")]),
    ]
    + MalformedCase.offset("letters", "abc")
    + MalformedCase.offset("negative", "-1")
    + MalformedCase.offset("plus sign", "+1")
    + MalformedCase.offset("decimal point", "1.0")
    + MalformedCase.offset("hexadecimal", "0x10")
    + MalformedCase.offset("leading space", " 1")
    + MalformedCase.offset("trailing space", "1 ")
    + MalformedCase.offset("2^64", "18446744073709551616")
    + MalformedCase.offset("1000 nines", String(repeating: "9", count: 1000))
    + MalformedCase.offset("%20 decoded", " ")
    + MalformedCase.offset("%2B1 decoded", "+1")
    + MalformedCase.offset("%00 decoded", "\u{0}")
    + MalformedCase.offset("%C3%A9 decoded", "é")
    + MalformedCase.offset("an Arabic-Indic digit", "\u{661}")
    + MalformedCase.offset("unaligned", "1048577", 404, "not_allocated")
    + MalformedCase.offset("past the end", "4294967296", 404, "not_allocated")
    + MalformedCase.offset("UInt64.max", "18446744073709551615", 404, "not_allocated")
    + MalformedCase.offset("%31 decoded to 1", "1", 404, "not_allocated")
    + MalformedCase.offset("a free aligned offset", "1048576", 404, "not_allocated")
    + MalformedCase.offset("1%2F2 decoded to 1/2", "1/2", 404, "not_found")
    + MalformedCase.offset("empty", "", 404, "not_found")

/// Malformed bodies, sizes and offsets: each fails exactly and leaves the state alone.
@Suite struct MalformedRequestTests {
    /// Two regions, one of them labelled and one bound to the key `base`.
    func apiWithTwoRegions() -> InProcessAPI {
        let api = InProcessAPI()
        #expect(api.allocate(MiB, label: "a").locationPath == "/regions/0")
        #expect(api.allocate(5_000_000, key: "base").locationPath == "/regions/16777216")
        return api
    }

    @Test(arguments: malformedCases)
    func aMalformedRequestFailsExactlyAndChangesNothing(_ malformed: MalformedCase) throws {
        let api = apiWithTwoRegions()
        let before = api.stateBytes()
        let response = api.send(malformed.method, malformed.path, headers: malformed.headers, body: malformed.body)
        expectProblem(response, malformed.status, malformed.code)
        #expect(api.stateBytes() == before)
        #expect(try api.regions().map(\.offset) == [0, 16 * MiB])
    }

    /// RFC 8259 has no trailing commas; Foundation's JSONDecoder accepts
    /// them, so a strict syntax check runs first.
    @Test(arguments: [#"{"size":1048576,}"#, #"{"size":[1,]}"#, #"{"size":1048576 , }"#])
    func aTrailingCommaIsBadJSON(_ body: String) {
        let api = apiWithTwoRegions()
        let before = api.stateBytes()
        expectProblem(api.send("POST", "/regions", json: body), 400, "invalid_request")
        #expect(api.stateBytes() == before)
    }

    /// JSONDecoder reads `1.0` and `1e3` as integers, as JSON Schema's "integer"
    /// does; it skips a UTF-8 byte order mark, which RFC 8259 allows.
    @Test(arguments: [
        (#"{"size":1.0}"#, UInt64(MiB), 0), (#"{"size":1e3}"#, MiB, 0), (#"{"size":1048576.0}"#, MiB, 0),
        (#"{"size":1.048577e6}"#, 4 * MiB, 1), (#"{"size":1E6}"#, MiB, 0), (#"  {"size" : 16777216 }  "#, 16 * MiB, 2),
        (#"{"size":1,"unknown":[1,{"a":null}]}"#, MiB, 0),
        (#"{"size":4294967296}"#, 4 * GiB, 6), ("\u{FEFF}" + #"{"size":1}"#, MiB, 0),
    ])
    func integralNumbersInAnyJSONSpellingAllocate(json: String, size: UInt64, memoryClass: Int) throws {
        let api = InProcessAPI()
        let response = api.send("POST", "/regions", json: json)
        #expect(response.status == 201)
        let region = try decode(RegionJSON.self, response)
        #expect(region.size == size)
        #expect(region.class == memoryClass)
        #expect(region.label == nil)
    }
}
