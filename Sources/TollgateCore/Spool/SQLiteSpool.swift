import Foundation
import GRDB
import Logging
import SMTPServer

/// The embedded default store: the queue in one SQLite database under `spool.path`,
/// in WAL mode with `synchronous = FULL`, written through a group committer.
///
/// A message is inserted with its envelope, recipients and content in one
/// transaction; `store` returns only after that transaction is on disk. Content
/// carries a checksum; an entry that fails it, or whose envelope cannot be read, is
/// moved to the `quarantine` table and never delivered.
public final class SQLiteSpool: Sendable {
    public struct Error: Swift.Error, CustomStringConvertible {
        public var description: String
    }

    public let path: String
    let pool: DatabasePool
    private let committer: GroupCommitter
    private let logger: Logger
    public let ids = QueueIDGenerator()

    /// Opens (creating if needed) the spool under `directory`.
    public init(directory: String, logger: Logger) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        self.path = directory + "/queue.sqlite"
        var config = Configuration()
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "PRAGMA foreign_keys = ON")
        }
        do {
            pool = try DatabasePool(path: path, configuration: config)
            // GRDB switches the writer to `synchronous = NORMAL` when it enables WAL,
            // after `prepareDatabase` ran: in WAL mode NORMAL does not sync commits.
            // Set FULL again; the group committer chooses per commit from then on.
            try pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA synchronous = FULL")
            }
            try Self.migrator.migrate(pool)
        } catch {
            throw Error(description: "cannot open the spool at \(path): \(error)")
        }
        committer = GroupCommitter(pool: pool)
        self.logger = logger
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE messages (
                    id TEXT PRIMARY KEY NOT NULL,
                    created REAL NOT NULL,
                    sender TEXT NOT NULL,
                    envelope BLOB NOT NULL,
                    size INTEGER NOT NULL,
                    checksum INTEGER NOT NULL,
                    state TEXT NOT NULL,
                    next_attempt REAL NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    last_error TEXT,
                    upstream TEXT,
                    user TEXT,
                    department TEXT,
                    bounce_now INTEGER NOT NULL DEFAULT 0
                );
                CREATE INDEX messages_due ON messages(state, next_attempt);
                CREATE TABLE recipients (
                    message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
                    idx INTEGER NOT NULL,
                    address TEXT NOT NULL,
                    notify TEXT,
                    orcpt TEXT,
                    state TEXT NOT NULL,
                    last_reply TEXT,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    PRIMARY KEY (message_id, idx)
                );
                CREATE TABLE bodies (
                    message_id TEXT PRIMARY KEY NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
                    content BLOB NOT NULL
                );
                CREATE TABLE quarantine (
                    id TEXT PRIMARY KEY NOT NULL,
                    moved REAL NOT NULL,
                    reason TEXT NOT NULL,
                    sender TEXT,
                    envelope BLOB,
                    content BLOB
                );
                """)
        }
        return migrator
    }

    // MARK: - Writing

    /// Stores a new message durably (group commit). Throws if it could not be made durable.
    public func insert(_ message: SpoolMessage) async throws {
        let envelope = try JSONEncoder().encode(message.envelope)
        let content = Data(message.content)
        let checksum = Checksum.fnv1a(message.content)
        try await committer.submit(durable: true) { db in
            try db.execute(
                sql: """
                    INSERT INTO messages (id, created, sender, envelope, size, checksum, state, next_attempt, attempts, upstream, user, department)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)
                    """,
                arguments: [
                    message.id, message.createdAt, message.sender, envelope, message.content.count, checksum,
                    message.state.rawValue, message.nextAttempt, message.upstream, message.envelope.user, message.envelope.department,
                ]
            )
            for (index, r) in message.recipients.enumerated() {
                try db.execute(
                    sql: "INSERT INTO recipients (message_id, idx, address, notify, orcpt, state, attempts) VALUES (?, ?, ?, ?, ?, ?, 0)",
                    arguments: [message.id, index, r.address, r.notify?.joined(separator: ","), r.originalRecipient, r.state.rawValue]
                )
            }
            try db.execute(sql: "INSERT INTO bodies (message_id, content) VALUES (?, ?)", arguments: [message.id, content])
        }
    }

    /// Records the outcome of one delivery attempt: recipient states, and either the
    /// message's removal (nothing left to do) or its next attempt.
    public func recordAttempt(id: String, recipients: [SpoolRecipient], nextAttempt: Double?, lastError: String?) async throws {
        try await committer.submit(durable: false) { db in
            for (index, r) in recipients.enumerated() {
                try db.execute(
                    sql: "UPDATE recipients SET state = ?, last_reply = ?, attempts = ? WHERE message_id = ? AND idx = ?",
                    arguments: [r.state.rawValue, r.lastReply, r.attempts, id, index]
                )
            }
            if let nextAttempt {
                try db.execute(
                    sql: """
                        UPDATE messages SET attempts = attempts + 1, last_error = ?, next_attempt = ?,
                        state = CASE state WHEN 'held' THEN 'held' ELSE 'deferred' END WHERE id = ?
                        """,
                    arguments: [lastError, nextAttempt, id]
                )
            } else {
                try db.execute(sql: "DELETE FROM messages WHERE id = ?", arguments: [id])
            }
        }
    }

    // MARK: - Reading

    /// Messages due for delivery, oldest first, without content.
    public func due(now: Double, limit: Int) async throws -> [String] {
        try await pool.read { db in
            try String.fetchAll(
                db,
                sql: "SELECT id FROM messages WHERE state IN ('queued', 'deferred') AND next_attempt <= ? ORDER BY next_attempt LIMIT ?",
                arguments: [now, limit]
            )
        }
    }

    /// When the next message falls due, if any is waiting.
    public func nextDue() throws -> Double? {
        try pool.read { db in
            try Double.fetchOne(db, sql: "SELECT MIN(next_attempt) FROM messages WHERE state IN ('queued', 'deferred')")
        }
    }

    /// Loads a whole message. A message that fails its checksum or cannot be decoded
    /// is quarantined and `nil` is returned.
    public func load(_ id: String) async throws -> SpoolMessage? {
        enum Loaded {
            case message(SpoolMessage)
            case corrupt(String)
            case missing
        }
        let loaded: Loaded = try await pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM messages WHERE id = ?", arguments: [id]) else { return .missing }
            guard let content = try Data.fetchOne(db, sql: "SELECT content FROM bodies WHERE message_id = ?", arguments: [id]) else {
                return .corrupt("content is missing")
            }
            let bytes = [UInt8](content)
            let checksum: Int64 = row["checksum"]
            guard Checksum.fnv1a(bytes) == checksum, bytes.count == (row["size"] as Int) else { return .corrupt("content checksum mismatch") }
            let envelopeData: Data = row["envelope"]
            guard let envelope = try? JSONDecoder().decode(SpoolEnvelope.self, from: envelopeData) else { return .corrupt("envelope cannot be decoded") }
            let recipientRows = try Row.fetchAll(db, sql: "SELECT * FROM recipients WHERE message_id = ? ORDER BY idx", arguments: [id])
            guard !recipientRows.isEmpty else { return .corrupt("no recipients") }
            var recipients: [SpoolRecipient] = []
            for r in recipientRows {
                guard let state = RecipientState(rawValue: r["state"]) else { return .corrupt("unknown recipient state") }
                var recipient = SpoolRecipient(address: r["address"], notify: (r["notify"] as String?)?.split(separator: ",").map(String.init), originalRecipient: r["orcpt"])
                recipient.state = state
                recipient.lastReply = r["last_reply"]
                recipient.attempts = r["attempts"]
                recipients.append(recipient)
            }
            guard let state = QueueState(rawValue: row["state"]) else { return .corrupt("unknown message state") }
            var message = SpoolMessage(id: id, createdAt: row["created"], sender: row["sender"], recipients: recipients, envelope: envelope, content: bytes, upstream: row["upstream"])
            message.state = state
            message.nextAttempt = row["next_attempt"]
            message.attempts = row["attempts"]
            message.lastError = row["last_error"]
            message.bounceRequested = (row["bounce_now"] as Int) != 0
            return .message(message)
        }
        switch loaded {
        case .message(let m): return m
        case .missing: return nil
        case .corrupt(let reason):
            try await quarantine(id, reason: reason)
            return nil
        }
    }

    /// Moves a damaged entry aside, as Postfix moves files to its `corrupt` queue.
    public func quarantine(_ id: String, reason: String) async throws {
        logger.error("queue entry quarantined", metadata: ["queue.id": "\(id)", "reason": "\(reason)"])
        try await pool.write { db in
            let row = try Row.fetchOne(db, sql: "SELECT sender, envelope FROM messages WHERE id = ?", arguments: [id])
            let content = try Data.fetchOne(db, sql: "SELECT content FROM bodies WHERE message_id = ?", arguments: [id])
            try db.execute(
                sql: "INSERT OR REPLACE INTO quarantine (id, moved, reason, sender, envelope, content) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [id, Date().timeIntervalSince1970, reason, row?["sender"] as String?, row?["envelope"] as Data?, content]
            )
            try db.execute(sql: "DELETE FROM messages WHERE id = ?", arguments: [id])
        }
    }

    public func quarantined() throws -> [(id: String, reason: String)] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT id, reason FROM quarantine ORDER BY moved").map { ($0["id"], $0["reason"]) }
        }
    }

    /// Every queued message, without content, for `queue list`.
    public func list() throws -> [QueueListing] {
        try pool.read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT id, created, size, sender, state, attempts, last_error, next_attempt, user, department FROM messages ORDER BY created")
            let recipientRows = try Row.fetchAll(db, sql: "SELECT message_id, address FROM recipients WHERE state = 'pending' ORDER BY message_id, idx")
            var byMessage: [String: [String]] = [:]
            for r in recipientRows { byMessage[r["message_id"], default: []].append(r["address"]) }
            return rows.map { row in
                QueueListing(
                    id: row["id"], createdAt: row["created"], size: row["size"], sender: row["sender"],
                    recipients: byMessage[row["id"]] ?? [], state: QueueState(rawValue: row["state"]) ?? .queued,
                    attempts: row["attempts"], lastError: row["last_error"], nextAttempt: row["next_attempt"],
                    user: row["user"], department: row["department"]
                )
            }
        }
    }

    /// Whether the spool answers a query (for `/healthz`).
    public var isReadable: Bool {
        (try? pool.read { db in try Int.fetchOne(db, sql: "SELECT 1") }) == 1
    }

    public var count: Int {
        (try? pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM messages") }) ?? 0
    }

    // MARK: - Administration

    /// Changes the state of the named messages; returns the ids that exist.
    @discardableResult
    public func setState(_ ids: [String], to state: QueueState, dueNow: Bool = false) throws -> [String] {
        try pool.write { db in
            var found: [String] = []
            for id in ids {
                if dueNow {
                    try db.execute(sql: "UPDATE messages SET state = ?, next_attempt = ? WHERE id = ?", arguments: [state.rawValue, Date().timeIntervalSince1970, id])
                } else {
                    try db.execute(sql: "UPDATE messages SET state = ? WHERE id = ?", arguments: [state.rawValue, id])
                }
                if db.changesCount > 0 { found.append(id) }
            }
            return found
        }
    }

    /// Makes messages due now (not held ones); `nil` means all.
    @discardableResult
    public func retry(_ ids: [String]?) throws -> [String] {
        try pool.write { db in
            let now = Date().timeIntervalSince1970
            if let ids {
                var found: [String] = []
                for id in ids {
                    try db.execute(sql: "UPDATE messages SET next_attempt = ? WHERE id = ? AND state != 'held'", arguments: [now, id])
                    if db.changesCount > 0 { found.append(id) }
                }
                return found
            }
            try db.execute(sql: "UPDATE messages SET next_attempt = ? WHERE state != 'held'", arguments: [now])
            return []
        }
    }

    @discardableResult
    public func delete(_ ids: [String]) throws -> [String] {
        try pool.write { db in
            var found: [String] = []
            for id in ids {
                try db.execute(sql: "DELETE FROM messages WHERE id = ?", arguments: [id])
                if db.changesCount > 0 { found.append(id) }
            }
            return found
        }
    }

    /// Marks a message for an immediate bounce: the scheduler sends the DSN for every
    /// pending recipient on its next pass.
    @discardableResult
    public func requestBounce(_ ids: [String]) throws -> [String] {
        try pool.write { db in
            var found: [String] = []
            for id in ids {
                try db.execute(sql: "UPDATE messages SET state = 'queued', next_attempt = 0, bounce_now = 1 WHERE id = ?", arguments: [id])
                if db.changesCount > 0 { found.append(id) }
            }
            return found
        }
    }
}
