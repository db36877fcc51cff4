import GRDB
import NIOConcurrencyHelpers
import TollgateConfiguration

/// Makes many writers' changes durable with one commit, so one fsync covers many
/// messages (group commit). Writes that arrive while a commit runs go into the next.
///
/// A batch that holds a *durable* operation (a new message: it will be acknowledged
/// with 250) commits with `synchronous = FULL`, an fsync of the WAL. A batch of only
/// bookkeeping (claims, delivery results) commits with `NORMAL`: its frames reach the
/// disk with the next FULL commit or checkpoint, and losing them in a crash only means
/// a delivery is repeated, never that a message is lost.
///
/// The batches run on the database's writer queue, which also resumes the callers:
/// a submission costs one hop there and one back, however many share the commit.
final class GroupCommitter: Sendable {
    /// One submitted operation, its result type erased.
    private struct Pending: Sendable {
        var durable: Bool
        /// Runs the operation inside its savepoint; returns how to resume its caller
        /// once the batch is committed. Throwing rolls back the savepoint.
        var run: @Sendable (Database) throws -> @Sendable () -> Void
        /// Resumes the caller with an error (its own, or the commit's).
        var fail: @Sendable (any Error) -> Void
    }

    private struct State {
        var pending: [Pending] = []
        var flushing = false
        var largestBatch = 0
        var commits = 0
    }

    private let pool: DatabasePool
    private let state = NIOLockedValueBox(State())
    /// Told of every committed batch (`/metrics`): its time and its operations.
    let observer = NIOLockedValueBox<CommitObserver?>(nil)

    init(pool: DatabasePool) {
        self.pool = pool
    }

    /// Largest batch so far (for tests and benchmarks).
    var largestBatch: Int { state.withLockedValue { $0.largestBatch } }
    /// Batches committed so far (for tests and benchmarks).
    var commits: Int { state.withLockedValue { $0.commits } }

    /// Runs `operation` in the next group transaction and returns its result once it
    /// is committed (and so, with `durable`, on disk).
    func submit<T: Sendable>(durable: Bool, _ operation: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let pending = Pending(
                durable: durable,
                run: { db in
                    let value = try operation(db)
                    return { continuation.resume(returning: value) }
                },
                fail: { continuation.resume(throwing: $0) }
            )
            let start = state.withLockedValue { s -> Bool in
                s.pending.append(pending)
                guard !s.flushing else { return false }
                s.flushing = true
                return true
            }
            if start {
                pool.asyncWriteWithoutTransaction { db in self.flush(db) }
            }
        }
    }

    /// On the writer queue: commits batches until nothing is pending.
    private func flush(_ db: Database) {
        while true {
            let batch = state.withLockedValue { s -> [Pending] in
                let batch = s.pending
                s.pending = []
                if batch.isEmpty { s.flushing = false }
                s.largestBatch = max(s.largestBatch, batch.count)
                return batch
            }
            guard !batch.isEmpty else { return }
            commit(batch, db)
        }
    }

    private func commit(_ batch: [Pending], _ db: Database) {
        let began = ContinuousClock.now
        let durable = batch.contains { $0.durable }
        var resumptions: [@Sendable () -> Void] = []
        resumptions.reserveCapacity(batch.count)
        // Operations that wrote something: a claim poll that found nothing due is no
        // commit to measure (it would fill the histograms with idle one-operation batches).
        var writing = 0
        do {
            // Outside a transaction, so the setting applies to this commit.
            try db.cachedStatement(sql: durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL").execute()
            try db.inTransaction {
                // Each operation in its own savepoint: one failure does not sink the others.
                for operation in batch {
                    do {
                        var resume: (@Sendable () -> Void)?
                        let before = db.totalChangesCount
                        defer { if db.totalChangesCount != before { writing += 1 } }
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
        } catch {
            // The commit itself failed (disk full, I/O error): nobody is durable.
            for operation in batch { operation.fail(error) }
            return
        }
        state.withLockedValue { $0.commits += 1 }
        if writing > 0, let observe = observer.withLockedValue({ $0 }) { observe(ContinuousClock.now - began, writing) }
        for resume in resumptions { resume() }
    }
}
