import NIOConcurrencyHelpers
import TollgateSpool

/// Commits the new messages of concurrent sessions together, as ``GroupCommitter``
/// does for the embedded store: while one batch is being committed, the messages that
/// arrive wait for the next, and one statement (one round trip, one commit, one WAL
/// flush) stores them all. So a burst of N sessions costs about one round trip per
/// batch rather than per message, and a lone session pays a single round trip.
///
/// A batch that the database refuses (one message's id already exists, say) is
/// tried again message by message, so that one failure does not sink the others: the
/// refused statement rolled back whole, so nothing is stored twice. A batch that
/// fails for want of the database fails for all its callers (451: the commit may or
/// may not have happened, so a message may later arrive twice, never be lost).
///
/// The same for the results of deliveries (``PostgresSpool/recordAttempt``): each item
/// gets its own `Output` back (whether its claim was still its own).
final class PostgresGroupCommitter<Item: Sendable, Output: Sendable>: Sendable {
    private struct Pending: Sendable {
        var item: Item
        var cost: Int
        var key: String?
        var since: ContinuousClock.Instant
        var done: @Sendable (Result<Output, any Error>) -> Void
    }

    private struct State {
        var pending: [Pending] = []
        var flushing = false
        var largestBatch = 0
        var commits = 0
    }

    private let state = NIOLockedValueBox(State())
    private let maxItems: Int
    private let maxCost: Int
    private let write: @Sendable ([Item]) async throws -> [Output]
    private let isRetryable: @Sendable (any Error) -> Bool
    private let key: @Sendable (Item) -> String?
    private let maxWait: Duration

    /// - Parameters:
    ///   - maxItems, maxCost: the most one batch takes (items, and their summed cost: bytes).
    ///   - key: items with the same key never share a batch (one statement must not
    ///     change one row twice); nil: any.
    ///   - maxWait: an item still waiting for a batch after this long is withdrawn,
    ///     not written: its caller has been answered already (its own deadline is the
    ///     same), and a result written that late could outlive its claim.
    ///   - write: stores a batch in one statement and returns each item's output, in
    ///     order; throws if nothing was stored.
    ///   - isRetryable: whether an error of `write` is the statement's own (retry one
    ///     by one) rather than the connection's.
    init(
        maxItems: Int, maxCost: Int, key: @escaping @Sendable (Item) -> String? = { _ in nil }, maxWait: Duration,
        isRetryable: @escaping @Sendable (any Error) -> Bool, write: @escaping @Sendable ([Item]) async throws -> [Output]
    ) {
        self.maxItems = maxItems
        self.maxCost = maxCost
        self.key = key
        self.maxWait = maxWait
        self.isRetryable = isRetryable
        self.write = write
    }

    /// Largest batch so far (for tests and benchmarks).
    var largestBatch: Int { state.withLockedValue { $0.largestBatch } }
    /// Statements sent so far (for tests and benchmarks).
    var commits: Int { state.withLockedValue { $0.commits } }

    /// Stores `item` with the next batch; returns its output once that batch is committed.
    @discardableResult
    func submit(_ item: Item, cost: Int) async throws -> Output {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Output, any Error>) in
            let pending = Pending(item: item, cost: cost, key: key(item), since: .now) { continuation.resume(with: $0) }
            let start = state.withLockedValue { s -> Bool in
                s.pending.append(pending)
                guard !s.flushing else { return false }
                s.flushing = true
                return true
            }
            if start { Task { await self.flush() } }
        }
    }

    /// Commits batches until nothing is pending.
    private func flush() async {
        while true {
            let cutoff = ContinuousClock.now - maxWait
            let (batch, withdrawn) = state.withLockedValue { s -> ([Pending], [Pending]) in
                let withdrawn = s.pending.filter { $0.since < cutoff }
                if !withdrawn.isEmpty { s.pending.removeAll { $0.since < cutoff } }
                var taken = 0
                var cost = 0
                var keys = Set<String>()
                while taken < s.pending.count, taken < maxItems, taken == 0 || cost + s.pending[taken].cost <= maxCost {
                    if let key = s.pending[taken].key, !keys.insert(key).inserted { break }
                    cost += s.pending[taken].cost
                    taken += 1
                }
                let batch = Array(s.pending.prefix(taken))
                s.pending.removeFirst(taken)
                if batch.isEmpty { s.flushing = false }
                s.largestBatch = max(s.largestBatch, batch.count)
                return (batch, withdrawn)
            }
            for p in withdrawn { p.done(.failure(Withdrawn(waited: maxWait))) }
            guard !batch.isEmpty else { return }
            await commit(batch)
        }
    }

    /// Told of every committed batch (`/metrics`): its time and its items.
    let observer = NIOLockedValueBox<CommitObserver?>(nil)

    private func commit(_ batch: [Pending]) async {
        do {
            state.withLockedValue { $0.commits += 1 }
            let began = ContinuousClock.now
            let outputs = try await write(batch.map(\.item))
            guard outputs.count == batch.count else { throw BatchOutputMismatch(items: batch.count, outputs: outputs.count) }
            if let observe = observer.withLockedValue({ $0 }) { observe(ContinuousClock.now - began, batch.count) }
            for (p, output) in zip(batch, outputs) { p.done(.success(output)) }
        } catch {
            guard batch.count > 1, isRetryable(error) else {
                for p in batch { p.done(.failure(error)) }
                return
            }
            for p in batch {
                if p.since < ContinuousClock.now - maxWait {
                    p.done(.failure(Withdrawn(waited: maxWait)))
                    continue
                }
                do {
                    state.withLockedValue { $0.commits += 1 }
                    let outputs = try await write([p.item])
                    guard let output = outputs.first else { throw BatchOutputMismatch(items: 1, outputs: 0) }
                    p.done(.success(output))
                } catch {
                    p.done(.failure(error))
                }
            }
        }
    }
}

/// A batch statement answered for fewer (or more) items than it was given: a bug, said
/// as such rather than resuming callers with another's result.
struct BatchOutputMismatch: Error, CustomStringConvertible {
    var items: Int
    var outputs: Int
    var description: String { "a batch of \(items) statements' work returned \(outputs) results" }
}

/// An item that waited longer than the committer's `maxWait` for a batch: not written.
struct Withdrawn: Error, CustomStringConvertible {
    var waited: Duration
    var description: String { "the database took longer than \(waited) to take the write: not sent" }
}
