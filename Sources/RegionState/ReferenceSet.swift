internal import HeapModule

/// The references held on one region, by id, with the newest one at hand:
/// taking, dropping (by id or the newest) and finding one cost the same
/// whether one reference is held or the cap.
///
/// The newest is the largest id in a max-heap. Dropping by id only removes
/// the reference from the table; ids left behind in the heap are skipped
/// when they reach its top, and the heap is rebuilt from the table when
/// they outnumber the live ones (so each id is pushed and popped a bounded
/// number of times: constant cost, amortized).
struct ReferenceSet: Sendable {
    /// The references held, by id.
    private(set) var byID: [UInt64: Reference] = [:]
    /// Ids of references, live and dropped; its top is always live (or it is empty).
    private var ids = Heap<UInt64>()

    /// How many references are held.
    var count: Int { byID.count }

    /// The newest reference (the largest id), if any.
    var newest: Reference? { ids.max.flatMap { byID[$0] } }

    /// The reference `id`, if it is held.
    subscript(id: UInt64) -> Reference? { byID[id] }

    /// Takes a reference.
    mutating func insert(_ reference: Reference) {
        byID[reference.id] = reference
        ids.insert(reference.id)
    }

    /// Drops the reference `id`; returns it, or nil when it was not held.
    @discardableResult
    mutating func remove(_ id: UInt64) -> Reference? {
        guard let removed = byID.removeValue(forKey: id) else { return nil }
        while let top = ids.max, byID[top] == nil { ids.removeMax() }
        if ids.count > 2 * byID.count + 16 { ids = Heap(byID.keys) }
        return removed
    }

    /// Every reference, oldest first (for snapshots and undos: not per request).
    var oldestFirst: [Reference] {
        byID.values.sorted { $0.id < $1.id }
    }
}
