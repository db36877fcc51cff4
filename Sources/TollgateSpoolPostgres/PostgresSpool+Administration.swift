import PostgresNIO
import TollgateSpool

/// `tollgate queue retry/hold/release/delete/bounce`, each one statement over the
/// whole cluster's queue.
extension PostgresSpool {
    public func retry(_ ids: [String]?, now: Double) async throws -> [String] {
        let changed: [String]
        if let ids {
            changed = try await changedIDs(execute("cannot retry", "UPDATE messages SET next_attempt = \(now) WHERE id = ANY(\(ids)) AND state <> 'held' RETURNING id"))
            return Self.inOrder(ids, changed)
        }
        return try await changedIDs(execute("cannot retry", "UPDATE messages SET next_attempt = \(now) WHERE state <> 'held' RETURNING id"))
    }

    public func hold(_ ids: [String]) async throws -> [String] {
        Self.inOrder(ids, try await changedIDs(execute("cannot hold", "UPDATE messages SET state = 'held' WHERE id = ANY(\(ids)) RETURNING id")))
    }

    public func release(_ ids: [String], now: Double) async throws -> [String] {
        Self.inOrder(ids, try await changedIDs(execute("cannot release", "UPDATE messages SET state = 'queued', next_attempt = \(now) WHERE id = ANY(\(ids)) RETURNING id")))
    }

    /// A deleted message leaves nothing behind: its delivery attempts go with it.
    public func delete(_ ids: [String]) async throws -> [String] {
        Self.inOrder(ids, try await changedIDs(execute("cannot delete", """
            WITH gone AS (DELETE FROM messages WHERE id = ANY(\(ids)) RETURNING id),
                 their_attempts AS (DELETE FROM attempts WHERE message_id IN (SELECT id FROM gone))
            SELECT id FROM gone
            """)))
    }

    public func requestBounce(_ ids: [String]) async throws -> [String] {
        Self.inOrder(ids, try await changedIDs(execute(
            "cannot bounce", "UPDATE messages SET state = 'queued', next_attempt = 0, bounce_now = true WHERE id = ANY(\(ids)) RETURNING id"
        )))
    }

    private func changedIDs(_ rows: [PostgresRandomAccessRow]) throws -> [String] {
        try rows.map { try $0[0].decode(String.self) }
    }

    /// The ids of `asked` that `changed` holds, in the order asked, once each.
    private static func inOrder(_ asked: [String], _ changed: [String]) -> [String] {
        var remaining = Set(changed)
        return asked.filter { remaining.remove($0) != nil }
    }
}
