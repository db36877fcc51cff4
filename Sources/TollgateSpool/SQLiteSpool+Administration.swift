import GRDB
import TollgateConfiguration

extension SQLiteSpool {
    public func retry(_ ids: [String]?, now: Double) async throws -> [String] {
        try await committer.submit(durable: true) { db in
            let targets = try ids ?? String.fetchAll(db, sql: "SELECT id FROM messages WHERE state != 'held'")
            return try Self.update(targets, db, sql: "UPDATE messages SET next_attempt = ? WHERE id = ? AND state != 'held'") { [now, $0] }
        }
    }

    public func hold(_ ids: [String]) async throws -> [String] {
        try await committer.submit(durable: true) { db in
            try Self.update(ids, db, sql: "UPDATE messages SET state = 'held' WHERE id = ?") { [$0] }
        }
    }

    public func release(_ ids: [String], now: Double) async throws -> [String] {
        try await committer.submit(durable: true) { db in
            try Self.update(ids, db, sql: "UPDATE messages SET state = 'queued', next_attempt = ? WHERE id = ?") { [now, $0] }
        }
    }

    /// A deleted message leaves nothing behind: its delivery attempts go with it.
    public func delete(_ ids: [String]) async throws -> [String] {
        try await committer.submit(durable: true) { db in
            let deleted = try Self.update(ids, db, sql: "DELETE FROM messages WHERE id = ?") { [$0] }
            for id in deleted {
                try db.cachedStatement(sql: "DELETE FROM attempts WHERE message_id = ?").execute(arguments: [id])
            }
            return deleted
        }
    }

    public func requestBounce(_ ids: [String]) async throws -> [String] {
        try await committer.submit(durable: true) { db in
            try Self.update(ids, db, sql: "UPDATE messages SET state = 'queued', next_attempt = 0, bounce_now = 1 WHERE id = ?") { [$0] }
        }
    }

    /// Runs `sql` once per id; returns the ids it changed.
    private static func update(_ ids: [String], _ db: Database, sql: String, arguments: (String) -> StatementArguments) throws -> [String] {
        var changed: [String] = []
        for id in ids {
            try db.execute(sql: sql, arguments: arguments(id))
            if db.changesCount > 0 { changed.append(id) }
        }
        return changed
    }
}
