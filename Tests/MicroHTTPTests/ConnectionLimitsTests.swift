@testable import MicroHTTP
import Testing

/// The rule that admits or refuses a connection, without sockets.
@Suite struct ConnectionLimitsTests {
    let one: [UInt8] = [127, 0, 0, 1]
    let two: [UInt8] = [10, 0, 0, 2]

    @Test func anAddressOverItsLimitIsRefusedWhileOthersAreAdmitted() {
        var limits = ConnectionLimits(maxTotal: 10, maxPerAddress: 2)
        #expect(limits.open(from: one) == nil)
        #expect(limits.open(from: one) == nil)
        #expect(limits.open(from: one) == .perIP)
        #expect(limits.open(from: two) == nil)
        #expect(limits.total == 3)
        limits.close(from: one)
        #expect(limits.open(from: one) == nil)
    }

    @Test func theTotalIsCheckedFirstAndCountsEveryAddress() {
        var limits = ConnectionLimits(maxTotal: 2, maxPerAddress: 1)
        #expect(limits.open(from: one) == nil)
        #expect(limits.open(from: nil) == nil)
        #expect(limits.open(from: one) == .total)
        #expect(limits.open(from: two) == .total)
        limits.close(from: nil)
        #expect(limits.open(from: one) == .perIP)
        #expect(limits.open(from: two) == nil)
    }

    @Test func closingEveryConnectionLeavesNothingCounted() {
        var limits = ConnectionLimits(maxTotal: 100, maxPerAddress: 3)
        for address in [one, two, one, nil, one] { #expect(limits.open(from: address) == nil) }
        for address in [one, two, one, nil, one] { limits.close(from: address) }
        #expect(limits.total == 0)
        #expect(limits.byAddress.isEmpty)
    }

    @Test func noPerAddressLimitKeepsNoAddresses() {
        var limits = ConnectionLimits(maxTotal: 3, maxPerAddress: 0)
        for _ in 0..<3 { #expect(limits.open(from: one) == nil) }
        #expect(limits.open(from: one) == .total)
        #expect(limits.byAddress.isEmpty)
    }
}
