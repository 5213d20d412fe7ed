import Foundation
import MemoryPool
import Testing

@testable import TestSupport

/// Region bodies are encoded once and reused; never for another region.
@Suite struct RegionBodyCacheTests {
    @Test func aRegionAllocatedAgainAtTheSameOffsetIsAnsweredWithItsOwnFields() throws {
        let api = InProcessAPI()
        #expect(api.allocate(MiB, label: "first").status == 201)
        #expect(String(decoding: api.send("GET", "/regions/0").body, as: UTF8.self).contains(#""label":"first""#))
        #expect(String(decoding: api.send("DELETE", "/regions/0").body, as: UTF8.self).contains(#""label":"first""#))
        let again = api.allocate(MiB, label: "second")
        #expect(again.status == 201)
        #expect(String(decoding: again.body, as: UTF8.self) == #"{"class":0,"id":2,"label":"second","offset":0,"ref":2,"size":1048576}"#)
        #expect(String(decoding: api.send("GET", "/regions/0").body, as: UTF8.self).contains(#""label":"second""#))
        let unlabelled = api.send("DELETE", "/regions/0")
        #expect(String(decoding: unlabelled.body, as: UTF8.self) == #"{"class":0,"id":2,"label":"second","offset":0,"ref":2,"size":1048576}"#)
        #expect(api.allocate(MiB).status == 201)
        #expect(String(decoding: api.send("GET", "/regions/0").body, as: UTF8.self) == #"{"class":0,"id":3,"offset":0,"size":1048576}"#)
    }
}
