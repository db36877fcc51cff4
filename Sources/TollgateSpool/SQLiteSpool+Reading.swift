import Foundation
import GRDB
import NIOCore
import TollgateConfiguration

extension SQLiteSpool {
    public func load(_ id: String) async throws -> SpoolMessage? {
        let loaded = try await pool.read { db in try Self.read(id, db) }
        switch loaded {
        case .message(let m): return m
        case .missing: return nil
        case .corrupt(let reason):
            try await quarantine(id, reason: reason)
            return nil
        }
    }

    /// What reading one entry found.
    private enum Loaded {
        case message(SpoolMessage)
        case corrupt(String)
        case missing
    }

    private static func read(_ id: String, _ db: Database) throws -> Loaded {
        guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM messages WHERE id = ?"), arguments: [id]) else { return .missing }
        // A cursor's row points into SQLite's own memory: the blob is copied once, into the buffer.
        let cursor = try Row.fetchCursor(db.cachedStatement(sql: "SELECT content FROM bodies WHERE message_id = ?"), arguments: [id])
        guard let body = try cursor.next() else { return .corrupt("content is missing") }
        let content = try body.withUnsafeData(atIndex: 0) { data -> ByteBuffer in
            guard let data else { return ByteBuffer() }
            var buffer = ByteBufferAllocator().buffer(capacity: data.count)
            buffer.writeBytes(data)
            return buffer
        }
        let receivedHeader: String = row["received_header"]
        let checksum: Int64 = row["checksum"]
        guard let kind = Checksum.Kind(rawValue: row["checksum_kind"]) else { return .corrupt("unknown checksum kind") }
        guard receivedHeader.utf8.count + content.readableBytes == (row["size"] as Int),
              Checksum.of(header: receivedHeader, content: content, kind: kind) == checksum
        else { return .corrupt("content checksum mismatch") }
        let envelopeData: Data = row["envelope"]
        guard let envelope = try? JSONDecoder().decode(SpoolEnvelope.self, from: envelopeData) else { return .corrupt("envelope cannot be decoded") }
        let recipientRows = try Row.fetchAll(db.cachedStatement(sql: "SELECT * FROM recipients WHERE message_id = ? ORDER BY idx"), arguments: [id])
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
        var message = SpoolMessage(
            id: id, createdAt: row["created"], sender: row["sender"], recipients: recipients, envelope: envelope,
            receivedHeader: receivedHeader, content: content, upstream: row["upstream"]
        )
        message.state = state
        message.nextAttempt = row["next_attempt"]
        message.attempts = row["attempts"]
        message.lastError = row["last_error"]
        message.bounceRequested = (row["bounce_now"] as Int) != 0
        message.acceptedBy = row["accepted_by"]
        message.claimedBy = row["claimed_by"]
        return .message(message)
    }

    /// At open: an entry whose message or recipient state this version does not know
    /// would never be claimed (the runner takes only queued and deferred ones) nor
    /// loaded; it is quarantined instead of waiting in the queue for ever.
    func quarantineUnknownStates() throws {
        let messageStates = QueueState.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")
        let recipientStates = RecipientState.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")
        let moved = try pool.write { db -> [Row] in
            let rows = try Row.fetchAll(db, sql: """
                SELECT id, CASE WHEN state NOT IN (\(messageStates)) THEN 'unknown message state' ELSE 'unknown recipient state' END AS reason
                FROM messages
                WHERE state NOT IN (\(messageStates))
                   OR id IN (SELECT message_id FROM recipients WHERE state NOT IN (\(recipientStates)))
                """)
            for row in rows {
                let id: String = row["id"]
                try db.execute(sql: """
                    INSERT OR REPLACE INTO quarantine (id, moved, reason, sender, envelope, content, received_header)
                    SELECT m.id, ?, ?, m.sender, m.envelope, b.content, m.received_header
                    FROM messages m LEFT JOIN bodies b ON b.message_id = m.id WHERE m.id = ?
                    """, arguments: [Date().timeIntervalSince1970, row["reason"] as String, id])
                try db.execute(sql: "DELETE FROM messages WHERE id = ?", arguments: [id])
            }
            return rows
        }
        for row in moved {
            logger.error("queue entry quarantined", metadata: ["queue.id": "\(row["id"] as String)", "reason": "\(row["reason"] as String)"])
        }
    }

    /// Moves a damaged entry aside, as Postfix moves files to its `corrupt` queue.
    func quarantine(_ id: String, reason: String) async throws {
        logger.error("queue entry quarantined", metadata: ["queue.id": "\(id)", "reason": "\(reason)"])
        try await committer.submit(durable: true) { db in
            let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT sender, envelope, received_header FROM messages WHERE id = ?"), arguments: [id])
            let content = try Data.fetchOne(db.cachedStatement(sql: "SELECT content FROM bodies WHERE message_id = ?"), arguments: [id])
            try db.cachedStatement(sql: "INSERT OR REPLACE INTO quarantine (id, moved, reason, sender, envelope, content, received_header) VALUES (?, ?, ?, ?, ?, ?, ?)").execute(arguments: [id, Date().timeIntervalSince1970, reason, row?["sender"] as String?, row?["envelope"] as Data?, content, row?["received_header"] as String?]
            )
            try db.cachedStatement(sql: "DELETE FROM messages WHERE id = ?").execute(arguments: [id])
        }
    }

    public func quarantined() async throws -> [QuarantinedEntry] {
        try await pool.read { db in
            try Row.fetchAll(db.cachedStatement(sql: "SELECT id, reason FROM quarantine ORDER BY moved")).map { QuarantinedEntry(id: $0["id"], reason: $0["reason"]) }
        }
    }

    public func nextDue() async throws -> Double? {
        try await pool.read { db in
            try Double.fetchOne(db.cachedStatement(sql: "SELECT MIN(next_attempt) FROM messages WHERE state IN ('queued', 'deferred')"))
        }
    }

    public func count() async throws -> Int {
        try await pool.read { db in try Int.fetchOne(db.cachedStatement(sql: "SELECT COUNT(*) FROM messages")) ?? 0 }
    }

    public func health() async throws {
        _ = try await pool.read { db in try Int.fetchOne(db.cachedStatement(sql: "SELECT 1")) }
    }

    public func list() async throws -> [QueueListing] {
        try await pool.read { db in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT id, created, size, sender, state, attempts, last_error, next_attempt, user, department, accepted_by, claimed_by
                    FROM messages ORDER BY created
                    """
            )
            let recipientRows = try Row.fetchAll(db.cachedStatement(sql: "SELECT message_id, address FROM recipients WHERE state = 'pending' ORDER BY message_id, idx"))
            var byMessage: [String: [String]] = [:]
            for r in recipientRows { byMessage[r["message_id"], default: []].append(r["address"]) }
            return rows.map { row in
                QueueListing(
                    id: row["id"], createdAt: row["created"], size: row["size"], sender: row["sender"],
                    recipients: byMessage[row["id"]] ?? [], state: QueueState(rawValue: row["state"]) ?? .queued,
                    attempts: row["attempts"], lastError: row["last_error"], nextAttempt: row["next_attempt"],
                    user: row["user"], department: row["department"], acceptedBy: row["accepted_by"],
                    claimedBy: row["claimed_by"]
                )
            }
        }
    }
}
