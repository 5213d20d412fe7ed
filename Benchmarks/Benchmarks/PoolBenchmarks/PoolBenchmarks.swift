import Benchmark
import MemoryPool

/// Every case runs on `PoolAllocator` and on the linear-scan
/// `ReferenceAllocator` of the tests (compiled in from the same file through
/// a symlink), so the ratios in the table come from one run.
let benchmarks: @Sendable () -> Void = {
    register(PoolAllocator.self)
    register(ReferenceAllocator.self)
}

/// The allocate/release surface the two allocators share.
protocol Allocator {
    init()
    mutating func allocate(size: UInt64) throws(PoolError) -> Region
    mutating func release(offset: UInt64) throws(PoolError) -> Region
}

extension PoolAllocator: Allocator {}
extension ReferenceAllocator: Allocator {}

/// The state a pool is in before the measured loop starts.
enum Shape: String, CaseIterable {
    case empty = "empty pool"
    case live = "2048 live regions"
    case alternating = "2048 live regions, 2048 holes"

    /// A pool of this shape: nothing; 2048 × 1 MiB allocated; or 4096 × 1 MiB
    /// allocated and every other one released again.
    func make<A: Allocator>(_: A.Type) throws(PoolError) -> A {
        var pool = A()
        switch self {
        case .empty:
            break
        case .live:
            for _ in 0..<2048 {
                _ = try pool.allocate(size: MiB)
            }
        case .alternating:
            for _ in 0..<4096 {
                _ = try pool.allocate(size: MiB)
            }
            for slot in stride(from: 1, to: 4096, by: 2) {
                _ = try pool.release(offset: UInt64(slot) * MiB)
            }
        }
        return pool
    }
}

/// Holds one benchmark's pool from its setup hook to its measured closure.
final class Fixture<A: Allocator> {
    var pool = A()
    /// Where the fill-and-drain case keeps its 4096 offsets, allocated once.
    var offsets = [UInt64](repeating: 0, count: 4096)
}

/// Wall clock (and so throughput) plus the malloc count, scaled per operation.
private func configuration(_ scalingFactor: BenchmarkScalingFactor) -> Benchmark.Configuration {
    Benchmark.Configuration(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        scalingFactor: scalingFactor,
        maxDuration: .seconds(2)
    )
}

/// Registers the four cases for one allocator.
private func register<A: Allocator>(_: A.Type) {
    for shape in Shape.allCases {
        let fixture = Fixture<A>()
        // One iteration of the closure is 1000 allocate+release pairs (.kilo),
        // so the table's per-iteration figures are per pair.
        Benchmark("\(A.self): allocate+release 1 MiB, \(shape.rawValue)", configuration: configuration(.kilo)) {
            benchmark in
            try allocateAndRelease(&fixture.pool, benchmark.scaledIterations)
        } setup: {
            fixture.pool = try shape.make(A.self)
        }
    }
    let fixture = Fixture<A>()
    // One iteration is 4096 allocations and 4096 releases: 8192 operations.
    Benchmark("\(A.self): fill 4096 × 1 MiB, release all", configuration: configuration(.one)) { benchmark in
        for _ in benchmark.scaledIterations {
            try fillAndDrain(&fixture.pool, &fixture.offsets)
        }
    }
}

/// Cases 1 to 3: a 1 MiB allocation and its release, `iterations` times.
/// The pool is passed `inout` so the loop makes one exclusive access and
/// the pool's storage stays uniquely referenced (no copy on write).
private func allocateAndRelease<A: Allocator>(_ pool: inout A, _ iterations: Range<Int>) throws(PoolError) {
    for _ in iterations {
        let region = try pool.allocate(size: MiB)
        blackHole(try pool.release(offset: region.offset))
    }
}

/// Case 4: fill the empty pool with 4096 regions of 1 MiB, then release them
/// in the order they were handed out, which leaves the pool empty again.
private func fillAndDrain<A: Allocator>(_ pool: inout A, _ offsets: inout [UInt64]) throws(PoolError) {
    for index in offsets.indices {
        offsets[index] = try pool.allocate(size: MiB).offset
    }
    for offset in offsets {
        blackHole(try pool.release(offset: offset))
    }
}
