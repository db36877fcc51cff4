import GRDB

/// Makes many writers' changes durable with one commit, so one fsync covers many
/// messages (group commit). Writes that arrive while a commit runs go into the next.
///
/// A batch that holds a *durable* operation (a new message: it will be acknowledged
/// with 250) commits with `synchronous = FULL`, an fsync of the WAL. A batch of only
/// bookkeeping (delivery results) commits with `NORMAL`: its frames reach the disk
/// with the next FULL commit or checkpoint, and losing them in a crash only means a
/// delivery is repeated, never that a message is lost.
actor GroupCommitter {
    typealias Operation = @Sendable (Database) throws -> Void

    private let pool: DatabasePool
    private var pending: [(Operation, Bool, CheckedContinuation<Void, any Error>)] = []
    private var flushing = false
    /// Largest batch so far (reported in debug logs and benchmarks).
    private(set) var largestBatch = 0

    init(pool: DatabasePool) {
        self.pool = pool
    }

    /// Runs `operation` in the next group transaction; returns once it is committed
    /// (and so, with `synchronous = FULL`, on disk).
    func submit(durable: Bool, _ operation: @escaping Operation) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            pending.append((operation, durable, continuation))
            if !flushing {
                flushing = true
                Task { await self.flushLoop() }
            }
        }
    }

    private func flushLoop() async {
        while !pending.isEmpty {
            let batch = pending
            pending = []
            largestBatch = max(largestBatch, batch.count)
            let operations = batch.map(\.0)
            let durable = batch.contains { $0.1 }
            // Each operation runs in its own savepoint so one failure does not sink the others.
            let results: [Result<Void, any Error>]
            do {
                results = try await pool.writeWithoutTransaction { db -> [Result<Void, any Error>] in
                    // Outside a transaction, so the setting applies to this commit.
                    try db.execute(sql: durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL")
                    var results: [Result<Void, any Error>] = []
                    results.reserveCapacity(operations.count)
                    try db.inTransaction {
                        for operation in operations {
                            do {
                                try db.inSavepoint {
                                    try operation(db)
                                    return .commit
                                }
                                results.append(.success(()))
                            } catch {
                                results.append(.failure(error))
                            }
                        }
                        return .commit
                    }
                    return results
                }
            } catch {
                // The commit itself failed (disk full, I/O error): nobody is durable.
                for (_, _, continuation) in batch { continuation.resume(throwing: error) }
                continue
            }
            for ((_, _, continuation), result) in zip(batch, results) {
                continuation.resume(with: result)
            }
        }
        flushing = false
    }
}
