import Foundation
import GRDB
import Logging
import NIOCore
import TollgateConfiguration

/// The embedded default store (a ``Spool``): the queue in one SQLite database under
/// `spool.path`, in WAL mode with `synchronous = FULL`, written through a group
/// committer.
///
/// A message is inserted with its envelope, recipients and content in one
/// transaction; `insert` returns only after that transaction is on disk. Content
/// carries a checksum; an entry that fails it, or whose envelope cannot be read, is
/// moved to the `quarantine` table and never delivered. Claims are two columns of
/// the message row (`claimed_by`, `claim_expires`), changed in the writer's
/// `IMMEDIATE` transactions, so processes sharing the file never claim one message twice.
public final class SQLiteSpool: Spool {
    public struct Error: Swift.Error, CustomStringConvertible {
        public var description: String
    }

    public let path: String
    /// The node name recorded as `accepted_by` on insert.
    public let node: String
    let pool: DatabasePool
    let committer: GroupCommitter
    let logger: Logger
    /// `spool.history` in seconds; 0 keeps none.
    let keepHistory: Double
    private let ids = QueueIDGenerator()

    /// Opens (creating and migrating if needed) the spool under `directory`.
    public init(directory: String, node: String, keepHistory: Double = 7 * 86400, logger: Logger) throws {
        self.keepHistory = keepHistory
        try SpoolPermissions.makeFolder(directory)
        self.path = directory + "/queue.sqlite"
        SpoolPermissions.makeDatabaseFile(path)
        SpoolPermissions.enforce(folder: directory, files: [path, path + "-wal", path + "-shm"], logger: logger)
        self.node = node
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
        } catch {
            throw Error(description: "cannot open the spool at \(path): \(ErrorText.describe(error))")
        }
        // A damaged database (a page overwritten or lost) would otherwise open, hide
        // some messages and refuse others at random: refuse to start instead (RELIABILITY E6).
        let problems: [String]
        do {
            problems = try pool.read { db in try String.fetchAll(db, sql: "PRAGMA quick_check(5)") }
        } catch {
            // Damage bad enough that the check itself cannot read the pages.
            problems = ["\(error)"]
        }
        guard problems == ["ok"] else {
            throw Error(description: "the spool at \(path) is damaged (\(problems.joined(separator: "; "))): Tollgate will not use it; keep a copy and recover what it holds with `sqlite3 \(path) .recover`")
        }
        do {
            try Self.migrator.migrate(pool)
        } catch {
            throw Error(description: "cannot open the spool at \(path): \(ErrorText.describe(error))")
        }
        committer = GroupCommitter(pool: pool)
        self.logger = logger
        do {
            try quarantineUnknownStates()
            try clearOrphans()
        } catch {
            throw Error(description: "cannot check the spool at \(path): \(ErrorText.describe(error))")
        }
    }

    public func makeQueueID() -> String { ids.next() }

    public func observeCommits(_ observer: @escaping CommitObserver) {
        committer.observer.withLockedValue { $0 = observer }
    }

    // MARK: - Writing

    public func insert(_ message: SpoolMessage, claim: SpoolClaim?) async throws {
        let envelope = try JSONEncoder().encode(message.envelope)
        let checksum = message.checksum
        let node = self.node
        do {
            try await insert(message, claim: claim, envelope: envelope, checksum: checksum, node: node)
        } catch {
            // One sentence for the session's log line: GRDB's text carries the SQL.
            throw Error(description: "cannot store message \(message.id) in \(path): \(Self.describe(error))")
        }
    }

    /// A database error in words: `disk I/O error (SQLite error 10)`, without the statement.
    static func describe(_ error: any Swift.Error) -> String {
        guard let error = error as? DatabaseError else { return ErrorText.describe(error) }
        return "\(error.message ?? "error") (SQLite error \(error.extendedResultCode.rawValue))"
    }

    private func insert(_ message: SpoolMessage, claim: SpoolClaim?, envelope: Data, checksum: Int64, node: String) async throws {
        try await committer.submit(durable: true) { db in
            try db.cachedStatement(sql: """
                    INSERT INTO messages (id, created, sender, envelope, size, checksum, state, next_attempt, attempts,
                                          upstream, user, department, accepted_by, received_header, claimed_by, claim_expires, checksum_kind)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?)
                    """).execute(arguments: [
                    message.id, message.createdAt, message.sender, envelope, message.size, checksum,
                    message.state.rawValue, message.nextAttempt, message.upstream, message.envelope.user, message.envelope.department,
                    node, message.receivedHeader, claim?.owner, claim?.expires, Checksum.current.rawValue,
                ]
            )
            for (index, r) in message.recipients.enumerated() {
                try db.cachedStatement(sql: "INSERT INTO recipients (message_id, idx, address, notify, orcpt, state, attempts) VALUES (?, ?, ?, ?, ?, ?, 0)").execute(arguments: [message.id, index, r.address, r.notify?.joined(separator: ","), r.originalRecipient, r.state.rawValue]
                )
            }
            // The buffer's own bytes, bound without a Swift copy (SQLite copies them into its page).
            try message.content.withUnsafeReadableBytes { raw in
                let blob = raw.baseAddress.map { Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: $0), count: raw.count, deallocator: .none) } ?? Data()
                let statement = try db.cachedStatement(sql: "INSERT INTO bodies (message_id, content) VALUES (?, ?)")
                try statement.execute(arguments: [message.id, blob])
                // SQLite has copied the bytes; the cached statement must not keep
                // arguments that point into the buffer after this closure. (A failed
                // execution throws here, while the bytes are still valid.)
                statement.setUncheckedArguments(["", Data()])
            }
        }
    }

    // MARK: - Claims

    public func claimDue(owner: String, now: Double, lease: Double, limit: Int) async throws -> [String] {
        guard limit > 0 else { return [] }
        return try await committer.submit(durable: false) { db in
            let ids = try String.fetchAll(db.cachedStatement(sql: """
                    SELECT id FROM messages
                    WHERE state IN ('queued', 'deferred') AND next_attempt <= ? AND (claimed_by IS NULL OR claim_expires <= ?)
                    ORDER BY next_attempt LIMIT ?
                    """), arguments: [now, now, limit]
            )
            for id in ids {
                try db.cachedStatement(sql: "UPDATE messages SET claimed_by = ?, claim_expires = ? WHERE id = ?").execute(arguments: [owner, now + lease, id])
            }
            return ids
        }
    }

    public func renewClaim(_ id: String, owner: String, now: Double, lease: Double) async throws -> Bool {
        try await committer.submit(durable: false) { db in
            try db.cachedStatement(sql: "UPDATE messages SET claim_expires = ? WHERE id = ? AND claimed_by = ?").execute(arguments: [now + lease, id, owner])
            return db.changesCount > 0
        }
    }

    public func releaseClaim(_ id: String, owner: String) async throws {
        try await committer.submit(durable: false) { db in
            try db.cachedStatement(sql: "UPDATE messages SET claimed_by = NULL, claim_expires = NULL WHERE id = ? AND claimed_by = ?").execute(arguments: [id, owner])
        }
    }

    @discardableResult
    public func releaseStaleClaims(node: String, keeping owner: String, isRunning: @escaping @Sendable (String) -> Bool) async throws -> Int {
        try await committer.submit(durable: false) { db in
            let prefix = node + "/"
            let owners = try String.fetchAll(
                db.cachedStatement(sql: "SELECT DISTINCT claimed_by FROM messages WHERE substr(claimed_by, 1, length(?)) = ? AND claimed_by != ?"),
                arguments: [prefix, prefix, owner]
            )
            var released = 0
            for dead in owners where !isRunning(dead) {
                try db.cachedStatement(sql: "UPDATE messages SET claimed_by = NULL, claim_expires = NULL WHERE claimed_by = ?").execute(arguments: [dead])
                released += db.changesCount
            }
            return released
        }
    }

    @discardableResult
    public func recordAttempt(
        _ id: String, owner: String, recipients: [SpoolRecipient], nextAttempt: Double?, lastError: String?, attempt: DeliveryAttempt?
    ) async throws -> Bool {
        let keepHistory = self.keepHistory
        return try await committer.submit(durable: false) { db in
            guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT claimed_by, attempts FROM messages WHERE id = ?"), arguments: [id]),
                  try row.decode(String?.self, forColumn: "claimed_by") == owner
            else { return false }
            for (index, r) in recipients.enumerated() {
                try db.cachedStatement(sql: "UPDATE recipients SET state = ?, last_reply = ?, attempts = ? WHERE message_id = ? AND idx = ?").execute(arguments: [r.state.rawValue, r.lastReply, r.attempts, id, index]
                )
            }
            let number = try row.decode(Int.self, forColumn: "attempts") + 1
            try Self.keep(attempt, number: number, of: id, kept: nextAttempt != nil || keepHistory > 0, db)
            if let nextAttempt {
                // A bounce asked for during the attempt stays due now (it is the runner's next job).
                try db.cachedStatement(sql: """
                        UPDATE messages SET attempts = attempts + 1, last_error = ?, claimed_by = NULL, claim_expires = NULL,
                        next_attempt = CASE WHEN bounce_now = 1 THEN 0 ELSE ? END,
                        state = CASE WHEN state = 'held' THEN 'held' WHEN bounce_now = 1 THEN 'queued' ELSE 'deferred' END WHERE id = ?
                        """).execute(arguments: [lastError, nextAttempt, id]
                )
            } else {
                // Done: kept without its content for `queue show` (spool.history).
                if keepHistory > 0 {
                    let now = Date().timeIntervalSince1970
                    try db.cachedStatement(sql: """
                        INSERT OR REPLACE INTO history (id, completed, created, sender, envelope, size, attempts, upstream, accepted_by, recipients)
                        SELECT id, ?, created, sender, envelope, size, attempts + 1, upstream, accepted_by, ? FROM messages WHERE id = ?
                        """).execute(arguments: [now, try JSONEncoder().encode(recipients), id])
                    // Expired entries go with their attempts.
                    try db.cachedStatement(sql: "DELETE FROM attempts WHERE message_id IN (SELECT id FROM history WHERE completed < ?)").execute(arguments: [now - keepHistory])
                    try db.cachedStatement(sql: "DELETE FROM history WHERE completed < ?").execute(arguments: [now - keepHistory])
                }
                try db.cachedStatement(sql: "DELETE FROM messages WHERE id = ?").execute(arguments: [id])
            }
            return true
        }
    }

    /// Adds `attempt` as attempt `number` (its recipients as JSON) to `id`'s record and drops
    /// those older than the last ``DeliveryAttempt/keptPerMessage``; with `kept` false
    /// (a finished message, no history kept) removes the whole record instead.
    private static func keep(_ attempt: DeliveryAttempt?, number: Int, of id: String, kept: Bool, _ db: Database) throws {
        guard kept else {
            try db.cachedStatement(sql: "DELETE FROM attempts WHERE message_id = ?").execute(arguments: [id])
            return
        }
        guard let attempt else { return }
        let recipients = try JSONEncoder().encode(attempt.recipients)
        try db.cachedStatement(sql: "INSERT OR REPLACE INTO attempts (message_id, number, at, upstream, host, owner, recipients) VALUES (?, ?, ?, ?, ?, ?, ?)").execute(arguments: [id, number, attempt.at, attempt.upstream, attempt.host, attempt.owner, recipients]
        )
        try db.cachedStatement(sql: "DELETE FROM attempts WHERE message_id = ? AND number <= ?").execute(arguments: [id, number - DeliveryAttempt.keptPerMessage])
    }
}
