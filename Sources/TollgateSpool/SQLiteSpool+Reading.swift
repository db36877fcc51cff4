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

    /// A column holding a value of the wrong type (SQLite's typing is dynamic, so a
    /// damaged or hand-edited file can have text where an integer belongs) makes the
    /// entry corrupt: read with `decode`, which throws, never with subscripts, which trap.
    private static func read(_ id: String, _ db: Database) throws -> Loaded {
        do {
            return try decode(id, db)
        } catch is RowDecodingError {
            return .corrupt("a column holds a value of the wrong type")
        }
    }

    private static func decode(_ id: String, _ db: Database) throws -> Loaded {
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
        let receivedHeader: String = try row.decode(forColumn: "received_header")
        let checksum: Int64 = try row.decode(forColumn: "checksum")
        guard let kind = Checksum.Kind(rawValue: try row.decode(forColumn: "checksum_kind")) else { return .corrupt("unknown checksum kind") }
        guard receivedHeader.utf8.count + content.readableBytes == (try row.decode(Int.self, forColumn: "size")),
              Checksum.of(header: receivedHeader, content: content, kind: kind) == checksum
        else { return .corrupt("content checksum mismatch") }
        let envelopeData: Data = try row.decode(forColumn: "envelope")
        guard let envelope = try? JSONDecoder().decode(SpoolEnvelope.self, from: envelopeData) else { return .corrupt("envelope cannot be decoded") }
        let recipientRows = try Row.fetchAll(db.cachedStatement(sql: "SELECT * FROM recipients WHERE message_id = ? ORDER BY idx"), arguments: [id])
        guard !recipientRows.isEmpty else { return .corrupt("no recipients") }
        var recipients: [SpoolRecipient] = []
        for r in recipientRows {
            guard let state = RecipientState(rawValue: try r.decode(forColumn: "state")) else { return .corrupt("unknown recipient state") }
            var recipient = SpoolRecipient(address: try r.decode(forColumn: "address"), notify: (try r.decode(String?.self, forColumn: "notify"))?.split(separator: ",").map(String.init), originalRecipient: try r.decode(forColumn: "orcpt"))
            recipient.state = state
            recipient.lastReply = try r.decode(forColumn: "last_reply")
            recipient.attempts = try r.decode(forColumn: "attempts")
            recipients.append(recipient)
        }
        guard let state = QueueState(rawValue: try row.decode(forColumn: "state")) else { return .corrupt("unknown message state") }
        var message = SpoolMessage(
            id: id, createdAt: try row.decode(forColumn: "created"), sender: try row.decode(forColumn: "sender"), recipients: recipients, envelope: envelope,
            receivedHeader: receivedHeader, content: content, upstream: try row.decode(forColumn: "upstream")
        )
        message.state = state
        message.nextAttempt = try row.decode(forColumn: "next_attempt")
        message.attempts = try row.decode(forColumn: "attempts")
        message.lastError = try row.decode(forColumn: "last_error")
        message.bounceRequested = (try row.decode(Int.self, forColumn: "bounce_now")) != 0
        message.acceptedBy = try row.decode(forColumn: "accepted_by")
        message.claimedBy = try row.decode(forColumn: "claimed_by")
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
            logger.error("queue entry quarantined", metadata: ["queue.id": "\(row["id"] as String)", "queue.quarantine.reason": "\(row["reason"] as String)"])
        }
    }

    /// At open: rows left without their message (written behind the spool's back, or by
    /// a damaged database that still passes its check) would lie in the database for
    /// ever. Content without its message is quarantined (reason "content without its
    /// message"), so that nothing that might be mail is thrown away; recipient rows
    /// without their message hold no mail and are removed, counted in the log.
    func clearOrphans() throws {
        let (bodies, recipients) = try pool.write { db -> ([String], Int) in
            let orphans = try String.fetchAll(db, sql: "SELECT message_id FROM bodies WHERE message_id NOT IN (SELECT id FROM messages)")
            for id in orphans {
                try db.execute(sql: """
                    INSERT OR REPLACE INTO quarantine (id, moved, reason, sender, envelope, content, received_header)
                    SELECT message_id, ?, 'content without its message', NULL, NULL, content, NULL FROM bodies WHERE message_id = ?
                    """, arguments: [Date().timeIntervalSince1970, id])
                try db.execute(sql: "DELETE FROM bodies WHERE message_id = ?", arguments: [id])
            }
            try db.execute(sql: "DELETE FROM recipients WHERE message_id NOT IN (SELECT id FROM messages)")
            let recipients = db.changesCount
            // Attempts of a message neither queued nor in the history (quarantined above).
            try db.execute(sql: "DELETE FROM attempts WHERE message_id NOT IN (SELECT id FROM messages) AND message_id NOT IN (SELECT id FROM history)")
            return (orphans, recipients)
        }
        for id in bodies {
            logger.error("queue entry quarantined", metadata: ["queue.id": "\(id)", "queue.quarantine.reason": "content without its message"])
        }
        if recipients > 0 {
            logger.error("recipient rows without their message removed", metadata: ["spool.orphans.count": "\(recipients)"])
        }
    }

    /// Moves a damaged entry aside, as Postfix moves files to its `corrupt` queue.
    func quarantine(_ id: String, reason: String) async throws {
        logger.error("queue entry quarantined", metadata: ["queue.id": "\(id)", "queue.quarantine.reason": "\(reason)"])
        try await committer.submit(durable: true) { db in
            let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT sender, envelope, received_header FROM messages WHERE id = ?"), arguments: [id])
            // Copied as they are (`DatabaseValue`: any type), since they may be what is damaged.
            let content = try DatabaseValue.fetchOne(db.cachedStatement(sql: "SELECT content FROM bodies WHERE message_id = ?"), arguments: [id])
            try db.cachedStatement(sql: "INSERT OR REPLACE INTO quarantine (id, moved, reason, sender, envelope, content, received_header) VALUES (?, ?, ?, ?, ?, ?, ?)").execute(arguments: [id, Date().timeIntervalSince1970, reason, row?["sender"] as DatabaseValue?, row?["envelope"] as DatabaseValue?, content, row?["received_header"] as DatabaseValue?]
            )
            try db.cachedStatement(sql: "DELETE FROM messages WHERE id = ?").execute(arguments: [id])
            try db.cachedStatement(sql: "DELETE FROM attempts WHERE message_id = ?").execute(arguments: [id])
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

    public func countByState() async throws -> [QueueState: Int] {
        try await pool.read { db in
            var counts: [QueueState: Int] = [:]
            for row in try Row.fetchAll(db.cachedStatement(sql: "SELECT state, COUNT(*) AS n FROM messages GROUP BY state")) {
                if let state = QueueState(rawValue: row["state"]) { counts[state, default: 0] += row["n"] as Int }
            }
            return counts
        }
    }

    public func breakdown() async throws -> QueueBreakdown {
        try await pool.read { db in
            var b = QueueBreakdown()
            for row in try Row.fetchAll(db.cachedStatement(sql: "SELECT state, department, COUNT(*) AS n FROM messages GROUP BY state, department")) {
                let n: Int = row["n"]
                if let state = QueueState(rawValue: row["state"]) { b.byState[state, default: 0] += n }
                b.byDepartment[(row["department"] as String?) ?? "-", default: 0] += n
            }
            let owners = "SELECT substr(claimed_by, 1, instr(claimed_by || '/', '/') - 1) AS node, COUNT(*) AS n FROM messages WHERE claimed_by IS NOT NULL GROUP BY node"
            for row in try Row.fetchAll(db.cachedStatement(sql: owners)) { b.claimsByNode[row["node"], default: 0] += row["n"] as Int }
            return b
        }
    }

    public func health() async throws {
        _ = try await pool.read { db in try Int.fetchOne(db.cachedStatement(sql: "SELECT 1")) }
    }

    public func history(_ id: String) async throws -> HistoryEntry? {
        let cutoff = Date().timeIntervalSince1970 - keepHistory
        return try await pool.read { db -> HistoryEntry? in
            guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM history WHERE id = ? AND completed >= ?"), arguments: [id, cutoff]) else { return nil }
            let envelope: Data = row["envelope"]
            let recipients: Data = row["recipients"]
            return HistoryEntry(
                id: row["id"], createdAt: row["created"], completedAt: row["completed"], sender: row["sender"], size: row["size"],
                attempts: row["attempts"], upstream: row["upstream"], acceptedBy: row["accepted_by"],
                envelope: try JSONDecoder().decode(SpoolEnvelope.self, from: envelope),
                recipients: try JSONDecoder().decode([SpoolRecipient].self, from: recipients)
            )
        }
    }

    public func list() async throws -> [QueueListing] {
        try await pool.read { db in try Self.listing(QueueFilter(), limit: -1, offset: 0, db) }
    }

    public func list(filter: QueueFilter, page: QueuePage) async throws -> QueueListPage {
        let page = QueuePage(offset: page.offset, limit: page.limit)
        // One read transaction: the total and the rows see the same queue.
        return try await pool.read { db in
            let (condition, arguments) = Self.condition(filter)
            let total = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM messages m \(condition)", arguments: arguments) ?? 0
            let rows = total > page.offset ? try Self.listing(filter, limit: page.limit, offset: page.offset, db) : []
            return QueueListPage(rows: rows, total: total)
        }
    }

    /// `filter` as a `WHERE` clause on `messages m` (empty when it is), with its
    /// arguments. Every term has an index (schema v5); the case-insensitive ones
    /// compare with NOCASE, as those indexes are built.
    static func condition(_ filter: QueueFilter) -> (String, StatementArguments) {
        var terms: [String] = []
        var arguments = StatementArguments()
        func term(_ sql: String, _ values: [(any DatabaseValueConvertible)?]) {
            terms.append(sql)
            arguments += StatementArguments(values)
        }
        if let state = filter.state { term("m.state = ?", [state.rawValue]) }
        if let user = filter.user { term("m.user = ? COLLATE NOCASE", [user]) }
        if let department = filter.department { term("m.department = ? COLLATE NOCASE", [department]) }
        if let sender = filter.sender { term("m.sender = ? COLLATE NOCASE", [sender]) }
        // IN rather than a correlated EXISTS: SQLite runs EXISTS once per message,
        // IN looks the address up in its index once.
        if let recipient = filter.recipient {
            term("m.id IN (SELECT message_id FROM recipients WHERE address = ? COLLATE NOCASE AND state = 'pending')", [recipient])
        }
        if let upstream = filter.upstream {
            term(filter.upstreamIncludesUnrouted ? "(m.upstream = ? OR m.upstream IS NULL)" : "m.upstream = ?", [upstream])
        }
        // A claim owner is `node/pid/tag`: the owners of `node` sort from "node/" to
        // "node0" ('0' follows '/'), a range on the claimed_by index.
        if let node = filter.node {
            term("(m.accepted_by = ? OR m.claimed_by = ? OR (m.claimed_by >= ? AND m.claimed_by < ?))", [node, node, node + "/", node + "0"])
        }
        return (terms.isEmpty ? "" : "WHERE " + terms.joined(separator: " AND "), arguments)
    }

    /// The listing's statement for a clause from ``condition(_:)``; after its
    /// arguments come the limit and the offset.
    static func listingSQL(_ condition: String) -> String {
        """
        SELECT m.id, m.created, m.size, m.sender, m.state, m.attempts, m.last_error, m.next_attempt, m.user, m.department,
               m.accepted_by, m.claimed_by, m.upstream
        FROM messages m \(condition) ORDER BY m.created, m.id LIMIT ? OFFSET ?
        """
    }

    /// The messages `filter` matches, oldest first, `limit` (-1: all) after the first
    /// `offset`, each with its pending recipients.
    private static func listing(_ filter: QueueFilter, limit: Int, offset: Int, _ db: Database) throws -> [QueueListing] {
        let (condition, arguments) = Self.condition(filter)
        let rows = try Row.fetchAll(db, sql: listingSQL(condition), arguments: arguments + [limit, offset])
        guard !rows.isEmpty else { return [] }
        // The same page's pending recipients (the same read transaction: the same messages).
        let recipientRows = try Row.fetchAll(
            db,
            sql: """
                SELECT message_id, address FROM recipients
                WHERE state = 'pending' AND message_id IN (SELECT id FROM (\(listingSQL(condition))))
                ORDER BY message_id, idx
                """,
            arguments: arguments + [limit, offset]
        )
        var byMessage: [String: [String]] = [:]
        for r in recipientRows {
            guard let id = try? r.decode(String.self, forColumn: "message_id"), let address = try? r.decode(String.self, forColumn: "address") else { continue }
            byMessage[id, default: []].append(address)
        }
        // An entry whose columns cannot be read is left out (loading it quarantines it).
        return rows.compactMap { row in
            try? QueueListing(
                id: row.decode(forColumn: "id"), createdAt: row.decode(forColumn: "created"), size: row.decode(forColumn: "size"),
                sender: row.decode(forColumn: "sender"), recipients: byMessage[row.decode(forColumn: "id")] ?? [],
                state: QueueState(rawValue: row.decode(forColumn: "state")) ?? .queued,
                attempts: row.decode(forColumn: "attempts"), lastError: row.decode(forColumn: "last_error"),
                nextAttempt: row.decode(forColumn: "next_attempt"), user: row.decode(forColumn: "user"),
                department: row.decode(forColumn: "department"), acceptedBy: row.decode(forColumn: "accepted_by"),
                claimedBy: row.decode(forColumn: "claimed_by"), upstream: row.decode(forColumn: "upstream")
            )
        }
    }
}
