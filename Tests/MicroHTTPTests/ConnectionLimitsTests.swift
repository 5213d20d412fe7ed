@testable import MicroHTTP
import Testing

/// The rules that admit a connection, refuse its request, or drop it, without sockets.
@Suite struct ConnectionLimitsTests {
    let one: [UInt8] = [127, 0, 0, 1]
    let two: [UInt8] = [10, 0, 0, 2]
    let none: [UInt8]? = nil

    @Test func anAddressOverItsLimitIsRefusedWhileOthersAreAdmitted() {
        var limits = ConnectionLimits(maxTotal: 10, maxPerAddress: 2, maxRefused: 4)
        #expect(limits.open(from: one) == nil)
        #expect(limits.open(from: one) == nil)
        #expect(limits.open(from: one) == .perIP)
        #expect(limits.open(from: two) == nil)
        #expect(limits.total == 3)
        #expect(limits.refused == 1)
        limits.close(from: one, refused: false)
        #expect(limits.open(from: one) == nil)
    }

    @Test func theTotalIsCheckedFirstAndCountsEveryAddress() {
        var limits = ConnectionLimits(maxTotal: 2, maxPerAddress: 1, maxRefused: 4)
        #expect(limits.open(from: one) == nil)
        #expect(limits.open(from: none) == nil)
        #expect(limits.open(from: one) == .total)
        #expect(limits.open(from: two) == .total)
        limits.close(from: none, refused: false)
        #expect(limits.open(from: one) == .perIP)
        #expect(limits.open(from: two) == nil)
    }

    @Test func pastTheRefusedOnesKeptOpenTheRestAreDropped() {
        var limits = ConnectionLimits(maxTotal: 100, maxPerAddress: 1, maxRefused: 2)
        #expect(limits.drop(from: one) == nil)
        #expect(limits.open(from: one) == nil)
        for _ in 0..<2 {
            #expect(limits.drop(from: one) == nil, "room left to answer 503")
            #expect(limits.open(from: one) == .perIP)
        }
        #expect(limits.drop(from: one) == .perIP)
        #expect(limits.drop(from: two) == nil, "under its limits another address is never dropped")
        limits.close(from: one, refused: true)
        #expect(limits.drop(from: one) == nil)
    }

    @Test func closingEveryConnectionLeavesNothingCounted() {
        var limits = ConnectionLimits(maxTotal: 100, maxPerAddress: 3, maxRefused: 1)
        let addresses = [one, two, one, none, one, one]
        let refused = addresses.map { limits.open(from: $0) != nil }
        #expect(refused == [false, false, false, false, false, true])
        for (address, refused) in zip(addresses, refused) { limits.close(from: address, refused: refused) }
        #expect(limits.total == 0)
        #expect(limits.refused == 0)
        #expect(limits.byAddress.isEmpty)
    }

    @Test func noPerAddressLimitKeepsNoAddresses() {
        var limits = ConnectionLimits(maxTotal: 3, maxPerAddress: 0, maxRefused: 0)
        for _ in 0..<3 { #expect(limits.open(from: one) == nil) }
        #expect(limits.drop(from: one) == .total)
        #expect(limits.byAddress.isEmpty)
    }
}
