import Foundation
import NIOConcurrencyHelpers
import TollgateConfiguration
import TollgateDelivery
import TollgateSpool

/// A ``Spool`` in memory with the stores' claim semantics: a live claim is never handed
/// to another claimer, an expired one is, renewing and recording need the claim, and
/// recording releases it. For queue-runner tests; the spool tests run the same claim
/// cases against it and `SQLiteSpool` to keep the two alike.
public final class InMemorySpool: Spool {
    private struct Entry {
        var message: SpoolMessage
        var claimExpires: Double?
        /// Insertion order, for "oldest first".
        var sequence: Int
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var history: [String: HistoryEntry] = [:]
        /// Each message's delivery attempts, oldest first, while it is queued or in the history.
        var attempts: [String: [DeliveryAttempt]] = [:]
        var inserted = 0
        var claimTimes: [Double] = []
    }

    public let node: String
    private let ids = QueueIDGenerator()
    private let state = NIOLockedValueBox(State())

    /// Runs after every ``recordAttempt(_:owner:recipients:nextAttempt:lastError:attempt:)``
    /// has changed the entry (and released its claim), before it returns.
    public let afterRecording = NIOLockedValueBox<(@Sendable () async -> Void)?>(nil)

    /// Runs at the start of every ``recordAttempt(_:owner:recipients:nextAttempt:lastError:attempt:)``,
    /// before the entry changes: a record that waits (a busy database's batch).
    public let beforeRecording = NIOLockedValueBox<(@Sendable () async -> Void)?>(nil)

    /// `spool.history` in seconds, on the wall clock as the other stores keep it.
    let keepHistory: Double

    public init(node: String = "memory", keepHistory: Double = .infinity) {
        self.node = node
        self.keepHistory = keepHistory
    }

    // MARK: What tests look at

    /// The message by that id as stored (with its claim), without quarantine checks.
    public func stored(_ id: String) -> SpoolMessage? {
        state.withLockedValue { $0.entries[id]?.message }
    }

    /// When the claim on `id` runs out, if it is claimed.
    public func claimExpiry(_ id: String) -> Double? {
        state.withLockedValue { $0.entries[id]?.claimExpires }
    }

    /// Every message, oldest first.
    public var messages: [SpoolMessage] {
        state.withLockedValue { $0.entries.values.sorted { $0.sequence < $1.sequence }.map(\.message) }
    }

    /// The `now` of every ``claimDue(owner:now:lease:limit:)`` call, in order.
    public var claimTimes: [Double] {
        state.withLockedValue { $0.claimTimes }
    }

    /// How many attempts are kept, of every message.
    public var storedAttemptCount: Int {
        state.withLockedValue { $0.attempts.values.map(\.count).reduce(0, +) }
    }

    /// How many messages are under a claim that is live at `now`.
    public func liveClaims(at now: Double) -> Int {
        state.withLockedValue { $0.entries.values.filter { ($0.claimExpires ?? -.infinity) > now }.count }
    }

    // MARK: Spool

    public func makeQueueID() -> String { ids.next() }

    public func insert(_ message: SpoolMessage, claim: SpoolClaim?) async throws {
        try state.withLockedValue { s in
            guard s.entries[message.id] == nil else { throw InMemorySpoolError(description: "duplicate queue id \(message.id)") }
            var stored = message
            stored.acceptedBy = node
            stored.claimedBy = claim?.owner
            s.inserted += 1
            s.entries[message.id] = Entry(message: stored, sequence: s.inserted)
            s.entries[message.id]?.claimExpires = claim?.expires
        }
    }

    public func claimDue(owner: String, now: Double, lease: Double, limit: Int) async throws -> [String] {
        state.withLockedValue { s in
            s.claimTimes.append(now)
            let due = s.entries.values
                .filter { e in
                    e.message.state != .held && e.message.nextAttempt <= now && (e.message.claimedBy == nil || (e.claimExpires ?? 0) <= now)
                }
                .sorted { ($0.message.nextAttempt, $0.sequence) < ($1.message.nextAttempt, $1.sequence) }
                .prefix(max(limit, 0))
                .map(\.message.id)
            for id in due {
                s.entries[id]?.message.claimedBy = owner
                s.entries[id]?.claimExpires = now + lease
            }
            return due
        }
    }

    public func renewClaim(_ id: String, owner: String, now: Double, lease: Double) async throws -> Bool {
        state.withLockedValue { s in
            guard s.entries[id]?.message.claimedBy == owner else { return false }
            s.entries[id]?.claimExpires = now + lease
            return true
        }
    }

    public func releaseClaim(_ id: String, owner: String) async throws {
        state.withLockedValue { s in
            guard s.entries[id]?.message.claimedBy == owner else { return }
            s.entries[id]?.message.claimedBy = nil
            s.entries[id]?.claimExpires = nil
        }
    }

    @discardableResult
    public func releaseStaleClaims(node: String, keeping owner: String, isRunning: @escaping @Sendable (String) -> Bool) async throws -> Int {
        state.withLockedValue { s in
            var released = 0
            for (id, entry) in s.entries {
                guard let holder = entry.message.claimedBy, holder.hasPrefix(node + "/"), holder != owner, !isRunning(holder) else { continue }
                s.entries[id]?.message.claimedBy = nil
                s.entries[id]?.claimExpires = nil
                released += 1
            }
            return released
        }
    }

    public func recordAttempt(
        _ id: String, owner: String, recipients: [SpoolRecipient], nextAttempt: Double?, lastError: String?, attempt: DeliveryAttempt?
    ) async throws -> Bool {
        if let hook = beforeRecording.withLockedValue({ $0 }) { await hook() }
        let recorded = recordNow(id, owner: owner, recipients: recipients, nextAttempt: nextAttempt, lastError: lastError, attempt: attempt)
        if let hook = afterRecording.withLockedValue({ $0 }) { await hook() }
        return recorded
    }

    private func recordNow(_ id: String, owner: String, recipients: [SpoolRecipient], nextAttempt: Double?, lastError: String?, attempt: DeliveryAttempt?) -> Bool {
        let keepHistory = self.keepHistory
        return state.withLockedValue { s in
            guard var entry = s.entries[id], entry.message.claimedBy == owner else { return false }
            if var attempt {
                attempt.number = entry.message.attempts + 1
                s.attempts[id, default: []].append(attempt)
                s.attempts[id] = s.attempts[id].map { Array($0.suffix(DeliveryAttempt.keptPerMessage)) }
            }
            guard let nextAttempt else {
                let m = entry.message
                let now = Date().timeIntervalSince1970
                s.entries[id] = nil
                guard keepHistory > 0 else {
                    s.attempts[id] = nil
                    return true
                }
                s.history[id] = HistoryEntry(
                    id: id, createdAt: m.createdAt, completedAt: now, sender: m.sender, size: m.size, attempts: m.attempts + 1,
                    upstream: m.upstream, acceptedBy: m.acceptedBy, envelope: m.envelope, recipients: recipients
                )
                // Expired entries go with their attempts.
                for (old, h) in s.history where h.completedAt < now - keepHistory {
                    s.history[old] = nil
                    s.attempts[old] = nil
                }
                return true
            }
            entry.message.recipients = recipients
            entry.message.attempts += 1
            entry.message.lastError = lastError
            // A bounce asked for during the attempt stays due now.
            entry.message.nextAttempt = entry.message.bounceRequested ? 0 : nextAttempt
            if entry.message.state != .held && !entry.message.bounceRequested { entry.message.state = .deferred }
            entry.message.claimedBy = nil
            entry.claimExpires = nil
            s.entries[id] = entry
            return true
        }
    }

    public func load(_ id: String) async throws -> SpoolMessage? {
        stored(id)
    }

    public func nextDue() async throws -> Double? {
        state.withLockedValue { s in s.entries.values.filter { $0.message.state != .held }.map(\.message.nextAttempt).min() }
    }

    public func count() async throws -> Int {
        state.withLockedValue { $0.entries.count }
    }

    public func health() async throws {}

    public func history(_ id: String) async throws -> HistoryEntry? {
        let cutoff = Date().timeIntervalSince1970 - keepHistory
        return state.withLockedValue { s in s.history[id].flatMap { $0.completedAt >= cutoff ? $0 : nil } }
    }

    public func attempts(_ id: String) async throws -> [DeliveryAttempt] {
        let shown = try await history(id) != nil
        return state.withLockedValue { s in s.entries[id] != nil || shown ? s.attempts[id] ?? [] : [] }
    }

    public func list() async throws -> [QueueListing] {
        listing(QueueFilter())
    }

    public func list(filter: QueueFilter, page: QueuePage) async throws -> QueueListPage {
        let page = QueuePage(offset: page.offset, limit: page.limit)
        let matching = listing(filter)
        return QueueListPage(rows: Array(matching.dropFirst(page.offset).prefix(page.limit)), total: matching.count)
    }

    /// Every message `filter` matches, oldest first (created, then id), as the SQL stores order them.
    private func listing(_ filter: QueueFilter) -> [QueueListing] {
        messages
            .map { m in
                QueueListing(
                    id: m.id, createdAt: m.createdAt, size: m.size, sender: m.sender,
                    recipients: m.pendingRecipients.map(\.address), state: m.state, attempts: m.attempts,
                    lastError: m.lastError, nextAttempt: m.nextAttempt, user: m.envelope.user, department: m.envelope.department,
                    acceptedBy: m.acceptedBy, claimedBy: m.claimedBy, upstream: m.upstream
                )
            }
            .filter { Self.matches(filter, $0) }
            .sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
    }

    /// What the SQL stores' conditions select: case-insensitive user, department,
    /// sender and pending recipient; the node accepted it or holds its claim (`node/…`).
    private static func matches(_ f: QueueFilter, _ m: QueueListing) -> Bool {
        func same(_ a: String?, _ b: String?) -> Bool { b == nil || a?.lowercased() == b?.lowercased() }
        return (f.state == nil || m.state == f.state)
            && same(m.user, f.user) && same(m.department, f.department) && same(m.sender, f.sender)
            && (f.recipient == nil || m.recipients.contains { same($0, f.recipient) })
            && (f.upstream == nil || m.upstream == f.upstream || (f.upstreamIncludesUnrouted && m.upstream == nil))
            && (f.node.map { node in m.acceptedBy == node || m.claimedBy == node || m.claimedBy?.hasPrefix(node + "/") == true } ?? true)
    }

    public func retry(_ ids: [String]?, now: Double) async throws -> [String] {
        update(ids) { m in
            guard m.state != .held else { return false }
            m.nextAttempt = now
            return true
        }
    }

    public func hold(_ ids: [String]) async throws -> [String] {
        update(ids) { m in
            m.state = .held
            return true
        }
    }

    public func release(_ ids: [String], now: Double) async throws -> [String] {
        update(ids) { m in
            m.state = .queued
            m.nextAttempt = now
            return true
        }
    }

    public func delete(_ ids: [String]) async throws -> [String] {
        state.withLockedValue { s in
            ids.filter { id in
                guard s.entries.removeValue(forKey: id) != nil else { return false }
                s.attempts[id] = nil
                return true
            }
        }
    }

    public func requestBounce(_ ids: [String]) async throws -> [String] {
        update(ids) { m in
            m.state = .queued
            m.nextAttempt = 0
            m.bounceRequested = true
            return true
        }
    }

    public func quarantined() async throws -> [QuarantinedEntry] { [] }

    /// Applies `change` to each named message (all when `nil`); returns the ids it changed.
    private func update(_ ids: [String]?, _ change: (inout SpoolMessage) -> Bool) -> [String] {
        state.withLockedValue { s in
            let targets = ids ?? s.entries.values.sorted { $0.sequence < $1.sequence }.map(\.message.id)
            return targets.filter { id in
                guard var entry = s.entries[id], change(&entry.message) else { return false }
                s.entries[id] = entry
                return true
            }
        }
    }
}

/// A refusal of the in-memory spool (a duplicate id).
public struct InMemorySpoolError: Error, CustomStringConvertible {
    public var description: String
}
