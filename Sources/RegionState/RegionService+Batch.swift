/// All-or-nothing batches of allocations.
extension RegionService {
    /// Allocates every request in order, or none: on the first that cannot
    /// be served, everything the batch did is undone, nothing is journaled,
    /// and the error carries that request's index. The changes of a batch go
    /// to the journal as one group (one write, one fsync, one batch frame).
    public func allocate(
        batch requests: [Request], completion: @escaping @Sendable (Result<[Allocation], RegionError>) -> Void
    ) {
        let (step, applied): (Step<[Allocation]>, [Applied]) = queue.sync {
            guard loaded else { return (.answer(.failure(.loading)), []) }
            let now = clock.now()
            var applied: [Applied] = []
            var answers: [Allocation] = []
            for (index, request) in requests.enumerated() {
                switch book.decide(request, now: now) {
                case .success(.allocate(let record)):
                    applied += apply([record], now: now)
                    answers.append(.created(book.regions[record.offset]!, ref: record.reference!))
                case .success(.join(let record)):
                    applied += apply([record], now: now)
                    answers.append(.joined(book.regions[record.offset]!, ref: record.reference!))
                case .success(.replay(let region, let ref)):
                    answers.append(.replayed(region, ref: ref))
                case .failure(let error):
                    // Undone newest first, as nothing happened; no journal record was written.
                    undo(applied, quietly: true)
                    return (settled(.failure(.batchItem(index: index, error))), [])
                }
            }
            return commit(applied, answering: answers, completion)
        }
        applied.forEach(log)
        finish(step, completion)
    }
}
