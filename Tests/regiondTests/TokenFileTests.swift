import ArgumentParser
import Foundation
import Testing

@testable import regiond

@Suite struct TokenFileTests {
    @Test(arguments: [("tok\n", "tok"), ("tok", "tok"), ("tok\r\n", "tok")])
    func aTrailingNewlineIsIgnored(contents: String, token: String) throws {
        let path = NSTemporaryDirectory() + "regiond-token-\(UUID().uuidString)"
        try contents.write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        #expect(try Serve.readToken(path) == token)
    }

    @Test(arguments: ["", "\n", "two words", "tok\n\n"])
    func aFileWithoutOneTokenIsRefused(contents: String) throws {
        let path = NSTemporaryDirectory() + "regiond-token-\(UUID().uuidString)"
        try contents.write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        #expect(throws: ValidationError.self) { try Serve.readToken(path) }
    }

    @Test func aMissingFileIsRefused() {
        #expect(throws: ValidationError.self) { try Serve.readToken("/nonexistent/regiond-token") }
    }
}
