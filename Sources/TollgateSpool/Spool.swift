import TollgateConfiguration
/// The queue's store: what sessions, the queue runner, `tollgate queue …` and the
/// health check need, whatever keeps the messages (`SQLiteSpool` on local disk; a
/// shared database for a cluster, SPEC §6).
///
/// **Claims.** A queue runner takes due messages with ``claimDue(owner:now:lease:limit:)``:
/// each comes back claimed by `owner` until `now + lease`. While a claim is live no
/// other claimer gets the message; once it has expired (its node died, or stopped
/// renewing) the message is claimable again, by anyone. The owner keeps a long
/// delivery's claim with ``renewClaim(_:owner:now:lease:)``, and gives it up with
/// ``recordAttempt(_:owner:recipients:nextAttempt:lastError:attempt:)`` or
/// ``releaseClaim(_:owner:)``. A store on a shared database implements this with
/// `SELECT … FOR UPDATE SKIP LOCKED` and an `UPDATE` of the claim columns in one
/// transaction.
///
/// Times are seconds since 1970, given by the caller, so that tests control the clock.
public protocol Spool: Sendable {
    /// A queue id this store has never used and never will (SPEC §2).
    func makeQueueID() -> String

    /// Stores a new message; returns only once it is durable (the 250 follows). With
    /// `claim`, the message is stored already claimed, so that the node that accepted
    /// it can deliver it from memory at once, without claiming and loading it again.
    func insert(_ message: SpoolMessage, claim: SpoolClaim?) async throws

    /// Claims up to `limit` messages that are due at `now` (queued or deferred, not
    /// held, `next_attempt <= now`) and not under a live claim; oldest due first.
    /// Returns their ids, now claimed by `owner` until `now + lease`.
    func claimDue(owner: String, now: Double, lease: Double, limit: Int) async throws -> [String]

    /// Extends `owner`'s claim on `id` to `now + lease`. Returns `false` when the claim
    /// is no longer `owner`'s (another claimer took it after it expired, or the
    /// message is gone): the caller should stop acting on the message.
    func renewClaim(_ id: String, owner: String, now: Double, lease: Double) async throws -> Bool

    /// Gives up `owner`'s claim on `id` without recording an attempt.
    func releaseClaim(_ id: String, owner: String) async throws

    /// Releases the claims an earlier process of this node left behind when it died
    /// (claims of an owner `node/…` other than `owner` for which `isRunning` says no),
    /// so that its deliveries in flight are retried at once rather than after their
    /// lease. Node names are unique in a cluster, so no other node's claim is touched;
    /// a second live process of the same node keeps its claims. Returns how many.
    @discardableResult
    func releaseStaleClaims(node: String, keeping owner: String, isRunning: @escaping @Sendable (String) -> Bool) async throws -> Int

    /// Records one delivery attempt and releases the claim: the recipients' states,
    /// then the message's removal (`nextAttempt == nil`: nothing left to do) or its
    /// next attempt, and `attempt` in the message's record of attempts (see
    /// ``attempts(_:)``), all in one transaction. The store numbers `attempt` and
    /// drops the message's oldest beyond ``DeliveryAttempt/keptPerMessage``. Applies
    /// only while the claim is `owner`'s; returns whether it did.
    @discardableResult
    func recordAttempt(
        _ id: String, owner: String, recipients: [SpoolRecipient], nextAttempt: Double?, lastError: String?, attempt: DeliveryAttempt?
    ) async throws -> Bool

    /// The delivery attempts recorded for a queued message, or for one in the history
    /// (``history(_:)``), oldest first: the last ``DeliveryAttempt/keptPerMessage``.
    /// None for a message deleted from the queue, or whose history entry has expired.
    func attempts(_ id: String) async throws -> [DeliveryAttempt]

    /// The whole message, or `nil` if there is none by that id. A store that finds the
    /// entry damaged quarantines it and returns `nil`.
    func load(_ id: String) async throws -> SpoolMessage?

    /// When the next unheld message falls due, if any is waiting.
    func nextDue() async throws -> Double?

    /// How many messages are queued, in any state.
    func count() async throws -> Int

    /// How many messages are in each state (`/metrics`).
    func countByState() async throws -> [QueueState: Int]

    /// The queue by state, by department (`-`: none) and the claims by the node
    /// holding them (`/metrics`, at each scrape).
    func breakdown() async throws -> QueueBreakdown

    /// Throws, saying why, when the store does not answer (for `/healthz`).
    func health() async throws

    /// A message whose delivery ended within `spool.history` (see ``HistoryEntry``).
    func history(_ id: String) async throws -> HistoryEntry?

    /// Every queued message without its content, oldest first.
    func list() async throws -> [QueueListing]

    /// One page of the messages `filter` matches, without their content, oldest first
    /// (by creation time, then id), and how many match in all (`queue list`, the web
    /// console). The store filters, counts and pages itself, on its indexes; a page
    /// past the end has no rows and the same total.
    func list(filter: QueueFilter, page: QueuePage) async throws -> QueueListPage

    /// Makes messages due at `now`, except held ones; `nil` means all. Returns the ids changed.
    @discardableResult
    func retry(_ ids: [String]?, now: Double) async throws -> [String]

    /// Sets messages aside (`held`); returns the ids that exist.
    @discardableResult
    func hold(_ ids: [String]) async throws -> [String]

    /// Releases held messages, due at `now`; returns the ids that exist.
    @discardableResult
    func release(_ ids: [String], now: Double) async throws -> [String]

    /// Removes messages without delivering or bouncing them; returns the ids that existed.
    @discardableResult
    func delete(_ ids: [String]) async throws -> [String]

    /// Marks messages for an immediate bounce of every pending recipient (the queue
    /// runner sends the DSN on its next pass); returns the ids that exist.
    @discardableResult
    func requestBounce(_ ids: [String]) async throws -> [String]

    /// Entries moved aside as damaged, oldest first.
    func quarantined() async throws -> [QuarantinedEntry]

    /// Tells `observer` of every group commit of new messages from now on: how long the
    /// commit took and how many messages it held (`/metrics`).
    func observeCommits(_ observer: @escaping CommitObserver)
}

/// A group commit's duration and its number of operations.
public typealias CommitObserver = @Sendable (_ duration: Duration, _ operations: Int) -> Void

extension Spool {
    /// A store without group commits has nothing to tell.
    public func observeCommits(_ observer: @escaping CommitObserver) {}
}

/// A delivery claim: who holds it and until when.
public struct SpoolClaim: Sendable, Hashable {
    public var owner: String
    public var expires: Double

    public init(owner: String, expires: Double) {
        self.owner = owner
        self.expires = expires
    }
}

extension Spool {
    /// Stores a new message, unclaimed.
    public func insert(_ message: SpoolMessage) async throws {
        try await insert(message, claim: nil)
    }

    /// Records an attempt that leaves nothing in the record of attempts (tests of the
    /// recipients' states and the claims).
    @discardableResult
    public func recordAttempt(_ id: String, owner: String, recipients: [SpoolRecipient], nextAttempt: Double?, lastError: String?) async throws -> Bool {
        try await recordAttempt(id, owner: owner, recipients: recipients, nextAttempt: nextAttempt, lastError: lastError, attempt: nil)
    }
}

/// What `/metrics` shows of the queue (``Spool/breakdown()``).
public struct QueueBreakdown: Sendable, Hashable {
    public var byState: [QueueState: Int] = [:]
    public var byDepartment: [String: Int] = [:]
    /// Claims by node: a claim owner is `node/pid/tag`.
    public var claimsByNode: [String: Int] = [:]

    public init(byState: [QueueState: Int] = [:], byDepartment: [String: Int] = [:], claimsByNode: [String: Int] = [:]) {
        self.byState = byState
        self.byDepartment = byDepartment
        self.claimsByNode = claimsByNode
    }
}

extension Spool {
    /// From ``list()``: a store with a cheaper query answers itself.
    public func breakdown() async throws -> QueueBreakdown {
        var b = QueueBreakdown()
        for m in try await list() {
            b.byState[m.state, default: 0] += 1
            b.byDepartment[m.department ?? "-", default: 0] += 1
            if let owner = m.claimedBy, let node = owner.split(separator: "/").first { b.claimsByNode[String(node), default: 0] += 1 }
        }
        return b
    }

    /// From ``list()``: a store with a cheaper query answers itself.
    public func countByState() async throws -> [QueueState: Int] {
        var counts: [QueueState: Int] = [:]
        for m in try await list() { counts[m.state, default: 0] += 1 }
        return counts
    }
}
