/// All-or-nothing batches of allocations.
extension RegionService {
    /// Allocates every request in order, or none: on the first that cannot
    /// be served, everything the batch did is undone, nothing is journaled,
    /// and the error carries that request's index. The changes of a batch go
    /// to the journal as one group (one write, one fsync, one batch frame).
    public func allocate(
        batch requests: [Request], completion: @escaping @Sendable (Result<[Allocation], RegionError>) -> Void
    ) {
        let (step, applied): (Step<[Allocation]>, [Change]) = queue.sync {
            guard loaded else { return (.answer(.failure(.loading)), []) }
            var changes: [Change] = []
            var answers: [Allocation] = []
            for (index, request) in requests.enumerated() {
                switch decide(request) {
                case .success(.change(let change, let answer)):
                    apply(change)
                    changes.append(change)
                    answers.append(answer)
                case .success(.replay(let region)):
                    answers.append(.replayed(region))
                case .failure(let error):
                    // Undone newest first, as nothing happened; no journal record was written.
                    let failure = RegionError.batchItem(index: index, error)
                    for change in changes.reversed() { undo(change, quietly: true) }
                    return (.answer(.failure(failure)), [])
                }
            }
            return commit(changes, applied: true, answering: answers, completion)
        }
        applied.forEach(log)
        finish(step, completion)
    }
}
