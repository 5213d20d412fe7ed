import MicroHTTP
import RegionServer
import Testing

/// The problem table, the route table and openapi.yaml say the same.
@Suite struct ProblemTableTests {
    /// The codes openapi.yaml's `Problem` schema lists.
    static func specifiedCodes() -> [String] {
        let spec = String(decoding: RegionSpec.openapi, as: UTF8.self)
        guard let schema = spec.range(of: "\n    Problem:\n") else { return [] }
        let rest = spec[schema.upperBound...]
        guard let codes = rest.range(of: "        code:\n") else { return [] }
        var listed: [String] = []
        for line in rest[codes.upperBound...].split(separator: "\n").dropFirst(3) {
            guard line.hasPrefix("            - ") else { break }
            listed.append(String(line.dropFirst("            - ".count)))
        }
        return listed
    }

    @Test func openapiListsExactlyTheCodesOfTheProblemTable() {
        #expect(Set(Self.specifiedCodes()) == Set(Problem.allCases.map(\.code)))
    }

    @Test(arguments: Problem.allCases)
    func everyProblemRendersItsStatusCodeAndTitle(problem: Problem) {
        let response = problem.error("detail").response
        #expect(response.status == problem.status)
        #expect(response.problemCode == problem.code)
        let body = String(decoding: response.body, as: UTF8.self)
        #expect(body.contains("\"title\":\"\(problem.title)\""))
        #expect(body.contains("\"status\":\(problem.status)"))
    }
}
