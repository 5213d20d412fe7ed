internal import Dispatch
public import Logging
public import MemoryPool

/// Owns the one ``PoolAllocator`` of the process and everything saved with
/// its regions (labels, idempotency keys), all touched only on one serial
/// queue. Handlers call it from any thread.
public final class RegionService: @unchecked Sendable {
    // @unchecked: `pool`, `saved` and `keys` are read and written only on
    // `queue`; the rest is immutable.
    private let queue = DispatchQueue(label: "regiond.pool")
    private var pool: PoolAllocator
    /// Every allocated region with its label and key, by offset.
    private var saved: [UInt64: SavedRegion]
    /// Offsets of allocated regions by idempotency key.
    private var keys: [String: UInt64]
    private let logger: Logger

    /// What `allocate` did.
    enum Allocation: Sendable {
        /// A new region.
        case created(SavedRegion)
        /// The region an earlier request with the same idempotency key got.
        case replayed(SavedRegion)
    }

    /// Makes a service over a pool and its saved regions (empty by default).
    public init(pool: PoolAllocator = PoolAllocator(), saved: [UInt64: SavedRegion] = [:], logger: Logger) {
        self.pool = pool
        self.saved = saved
        self.keys = Dictionary(
            uniqueKeysWithValues: saved.values.compactMap { region in region.idempotencyKey.map { ($0, region.offset) } })
        self.saved.reserveCapacity(4096)
        self.logger = logger
    }

    /// Allocates a region, or replays the one an earlier request with the same key got.
    func allocate(
        size: UInt64, label: String?, key: String?,
        completion: @escaping @Sendable (Result<Allocation, HTTPError>) -> Void
    ) {
        let result: Result<Allocation, HTTPError> = queue.sync {
            if let key, let offset = keys[key], let earlier = saved[offset] {
                guard earlier.memoryClass == memoryClass(for: size), earlier.label == label else {
                    return .failure(
                        HTTPError(
                            422, "idempotency_key_reused",
                            "Idempotency-Key \(key) was used for a request with another size or label"))
                }
                return .success(.replayed(earlier))
            }
            let region: Region
            do throws(PoolError) {
                region = try pool.allocate(size: size)
            } catch {
                return .failure(poolError(error))
            }
            let entry = SavedRegion(
                offset: region.offset, memoryClass: region.memoryClass, label: label, idempotencyKey: key)
            saved[region.offset] = entry
            if let key { keys[key] = region.offset }
            logger.info(
                "allocated",
                metadata: [
                    "offset": "\(entry.offset)", "class": "\(entry.memoryClass)", "label": "\(label ?? "")",
                    "key": "\(key ?? "")",
                ])
            return .success(.created(entry))
        }
        completion(result)
    }

    /// Releases the region at `offset`.
    func release(offset: UInt64, completion: @escaping @Sendable (Result<SavedRegion, HTTPError>) -> Void) {
        let result: Result<SavedRegion, HTTPError> = queue.sync {
            do throws(PoolError) {
                try pool.release(offset: offset)
            } catch {
                return .failure(poolError(error))
            }
            let entry = saved.removeValue(forKey: offset)!  // every allocated region is saved
            if let key = entry.idempotencyKey { keys[key] = nil }
            logger.info(
                "released",
                metadata: [
                    "offset": "\(entry.offset)", "class": "\(entry.memoryClass)", "label": "\(entry.label ?? "")",
                    "key": "\(entry.idempotencyKey ?? "")",
                ])
            return .success(entry)
        }
        completion(result)
    }

    /// The allocated region at `offset`, if any.
    func region(at offset: UInt64) -> SavedRegion? {
        queue.sync { saved[offset] }
    }

    /// Allocated regions in offset order, only those labelled `label` when it is given.
    func regions(label: String? = nil) -> [SavedRegion] {
        queue.sync {
            pool.regions.compactMap { region in
                let entry = saved[region.offset]!
                return label == nil || entry.label == label ? entry : nil
            }
        }
    }

    /// A consistent copy of the pool, for statistics.
    var poolSnapshot: PoolAllocator {
        queue.sync { pool }
    }

    /// Whether the state is loaded and can be changed.
    var isReady: Bool { true }

    private func poolError(_ error: PoolError) -> HTTPError {
        switch error {
        case .invalidMemoryClass:
            HTTPError(400, "invalid_memory_class", "\(error): the size must be from 1 byte to 4 GiB")
        case .notEnoughSpace:
            HTTPError(409, "not_enough_space", "\(error)", largestFree: pool.largestFree)
        case .notAllocated:
            HTTPError(404, "not_allocated", "\(error)")
        }
    }
}
