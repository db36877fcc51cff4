import GRDB
import TollgateConfiguration

/// Makes many writers' changes durable with one commit, so one fsync covers many
/// messages (group commit). Writes that arrive while a commit runs go into the next.
///
/// A batch that holds a *durable* operation (a new message: it will be acknowledged
/// with 250) commits with `synchronous = FULL`, an fsync of the WAL. A batch of only
/// bookkeeping (claims, delivery results) commits with `NORMAL`: its frames reach the
/// disk with the next FULL commit or checkpoint, and losing them in a crash only means
/// a delivery is repeated, never that a message is lost.
actor GroupCommitter {
    /// One submitted operation, its result type erased.
    private struct Pending: Sendable {
        var durable: Bool
        /// Runs the operation inside its savepoint; returns how to resume its caller
        /// once the batch is committed. Throwing rolls back the savepoint.
        var run: @Sendable (Database) throws -> @Sendable () -> Void
        /// Resumes the caller with an error (its own, or the commit's).
        var fail: @Sendable (any Error) -> Void
    }

    private let pool: DatabasePool
    private var pending: [Pending] = []
    private var flushing = false
    /// Largest batch so far (reported in debug logs and benchmarks).
    private(set) var largestBatch = 0
    /// Batches committed so far (for tests and benchmarks).
    private(set) var commits = 0

    init(pool: DatabasePool) {
        self.pool = pool
    }

    /// Runs `operation` in the next group transaction and returns its result once it
    /// is committed (and so, with `durable`, on disk).
    func submit<T: Sendable>(durable: Bool, _ operation: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            pending.append(Pending(
                durable: durable,
                run: { db in
                    let value = try operation(db)
                    return { continuation.resume(returning: value) }
                },
                fail: { continuation.resume(throwing: $0) }
            ))
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
            let durable = batch.contains { $0.durable }
            let resumptions: [@Sendable () -> Void]
            do {
                resumptions = try await pool.writeWithoutTransaction { db in
                    // Outside a transaction, so the setting applies to this commit.
                    try db.execute(sql: durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL")
                    var resumptions: [@Sendable () -> Void] = []
                    resumptions.reserveCapacity(batch.count)
                    try db.inTransaction {
                        // Each operation in its own savepoint: one failure does not sink the others.
                        for operation in batch {
                            do {
                                var resume: (@Sendable () -> Void)?
                                try db.inSavepoint {
                                    resume = try operation.run(db)
                                    return .commit
                                }
                                resumptions.append(resume ?? {})
                            } catch {
                                resumptions.append { operation.fail(error) }
                            }
                        }
                        return .commit
                    }
                    return resumptions
                }
                commits += 1
            } catch {
                // The commit itself failed (disk full, I/O error): nobody is durable.
                for operation in batch { operation.fail(error) }
                continue
            }
            for resume in resumptions { resume() }
        }
        flushing = false
    }
}
