import Foundation
import Locking
import Testing

@Suite struct LockedTests {
    @Test func withLockChangesTheValueEveryCopySees() {
        let counter = Locked(0)
        let copy = counter
        counter.withLock { $0 += 1 }
        #expect(copy.withLock { $0 } == 1)
    }

    @Test func manyThreadsCountingLoseNoIncrement() async {
        let counter = Locked(0)
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    for _ in 0..<10_000 { counter.withLock { $0 += 1 } }
                }
            }
        }
        #expect(counter.withLock { $0 } == 80_000)
    }

    @Test func aWaiterWakesWhenTheValueIsAsWanted() {
        let ready = Locked(false)
        let waiter = Thread {
            ready.withLock { $0 = true }
            ready.wakeWaiters()
        }
        waiter.start()
        let seen = ready.withLock(waitingUntil: { $0 }) { $0 }
        #expect(seen)
    }

    @Test func aWaitWithADeadlineEndsWithoutTheValue() {
        let never = Locked(false)
        let start = ContinuousClock.now
        let seen = never.withLock(waitingUntil: { $0 }, deadline: start + .milliseconds(50)) { $0 }
        #expect(!seen)
        #expect(ContinuousClock.now - start >= .milliseconds(50))
    }

    @Test func aWaitWithAPassedDeadlineStillRunsTheBody() {
        let value = Locked(7)
        #expect(value.withLock(waitingUntil: { $0 == 8 }, deadline: .now - .seconds(1)) { $0 } == 7)
    }
}
