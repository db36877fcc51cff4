import Foundation
import Logging
import NIOCore
import PostgresNIO
import TollgateSpool

extension PostgresSpool {
    /// A recipient as `load` reads it back (one JSON object per recipient, in order).
    private struct StoredRecipient: Decodable {
        var address: String
        var notify: String?
        var orcpt: String?
        var state: String
        var last_reply: String?
        var attempts: Int
    }

    /// What reading one entry found.
    private enum Loaded {
        case message(SpoolMessage)
        case corrupt(String)
        case missing
    }

    public func load(_ id: String) async throws -> SpoolMessage? {
        // One round trip: the row, its content and its recipients as a JSON array.
        let rows = try await execute("cannot load a message", prepared: LoadStatement.self, """
            SELECT m.created, m.sender, m.envelope, m.size, m.checksum, m.checksum_kind, m.state, m.next_attempt, m.attempts,
                   m.last_error, m.upstream, m.bounce_now, m.accepted_by, m.received_header, m.claimed_by, b.content,
                   (SELECT coalesce(jsonb_agg(jsonb_build_object(
                        'address', r.address, 'notify', r.notify, 'orcpt', r.orcpt, 'state', r.state,
                        'last_reply', r.last_reply, 'attempts', r.attempts) ORDER BY r.idx), '[]'::jsonb)::text
                    FROM recipients r WHERE r.message_id = m.id)
            FROM messages m LEFT JOIN bodies b ON b.message_id = m.id
            WHERE m.id = \(id)
            """)
        guard let row = rows.first else { return nil }
        let loaded: Loaded
        do {
            loaded = try Self.decode(id, row)
        } catch {
            loaded = .corrupt("a column cannot be read (\(error))")
        }
        switch loaded {
        case .message(let m): return m
        case .missing: return nil
        case .corrupt(let reason):
            try await quarantine(id, reason: reason)
            return nil
        }
    }

    private static func decode(_ id: String, _ row: PostgresRandomAccessRow) throws -> Loaded {
        guard let content = try row[15].decode(ByteBuffer?.self) else { return .corrupt("content is missing") }
        let receivedHeader = try row[13].decode(String.self)
        let checksum = try row[4].decode(Int64.self)
        guard let kind = Checksum.Kind(rawValue: try row[5].decode(Int.self)) else { return .corrupt("unknown checksum kind") }
        guard receivedHeader.utf8.count + content.readableBytes == (try row[3].decode(Int.self)),
              Checksum.of(header: receivedHeader, content: content, kind: kind) == checksum
        else { return .corrupt("content checksum mismatch") }
        let envelopeBytes = try row[2].decode(ByteBuffer.self)
        guard let envelope = try? JSONDecoder().decode(SpoolEnvelope.self, from: Data(envelopeBytes.readableBytesView)) else {
            return .corrupt("envelope cannot be decoded")
        }
        let recipientJSON = try row[16].decode(String.self)
        guard let stored = try? JSONDecoder().decode([StoredRecipient].self, from: Data(recipientJSON.utf8)) else {
            return .corrupt("recipients cannot be decoded")
        }
        guard !stored.isEmpty else { return .corrupt("no recipients") }
        var recipients: [SpoolRecipient] = []
        for r in stored {
            guard let state = RecipientState(rawValue: r.state) else { return .corrupt("unknown recipient state") }
            var recipient = SpoolRecipient(address: r.address, notify: r.notify?.split(separator: ",").map(String.init), originalRecipient: r.orcpt)
            recipient.state = state
            recipient.lastReply = r.last_reply
            recipient.attempts = r.attempts
            recipients.append(recipient)
        }
        guard let state = QueueState(rawValue: try row[6].decode(String.self)) else { return .corrupt("unknown message state") }
        var message = SpoolMessage(
            id: id, createdAt: try row[0].decode(Double.self), sender: try row[1].decode(String.self), recipients: recipients,
            envelope: envelope, receivedHeader: receivedHeader, content: content, upstream: try row[10].decode(String?.self)
        )
        message.state = state
        message.nextAttempt = try row[7].decode(Double.self)
        message.attempts = try row[8].decode(Int.self)
        message.lastError = try row[9].decode(String?.self)
        message.bounceRequested = try row[11].decode(Bool.self)
        message.acceptedBy = try row[12].decode(String.self)
        message.claimedBy = try row[14].decode(String?.self)
        return .message(message)
    }

    /// Moves a damaged entry aside, as Postfix moves files to its `corrupt` queue. The
    /// content is copied from the statement's snapshot, before the cascade removes it.
    func quarantine(_ id: String, reason: String) async throws {
        logger.error("queue entry quarantined", metadata: ["queue.id": "\(id)", "queue.quarantine.reason": "\(reason)"])
        try await execute("cannot quarantine a damaged message", """
            WITH moved AS (DELETE FROM messages WHERE id = \(id) RETURNING id, sender, envelope, received_header),
                 their_attempts AS (DELETE FROM attempts WHERE message_id IN (SELECT id FROM moved))
            INSERT INTO quarantine (id, moved, reason, sender, envelope, content, received_header)
            SELECT m.id, \(Date().timeIntervalSince1970), \(reason), m.sender, m.envelope,
                   (SELECT content FROM bodies WHERE message_id = m.id), m.received_header
            FROM moved m
            ON CONFLICT (id) DO UPDATE SET moved = EXCLUDED.moved, reason = EXCLUDED.reason, sender = EXCLUDED.sender,
                envelope = EXCLUDED.envelope, content = EXCLUDED.content, received_header = EXCLUDED.received_header
            """)
    }

    /// At open: an entry whose message or recipient state this version does not know
    /// (a newer node wrote it) would never be claimed nor loaded; it is quarantined
    /// instead of waiting in the queue for ever.
    static func quarantineUnknownStates(_ connection: PostgresConnection, logger: Logger) async throws {
        let messageStates = QueueState.allCases.map(\.rawValue)
        let recipientStates = RecipientState.allCases.map(\.rawValue)
        let quiet = Logger(label: "tollgate.spool.postgres") { _ in SwiftLogNoOpLogHandler() }
        let moved = try await rows(connection.query("""
            WITH bad AS (
                SELECT id, CASE WHEN state <> ALL(\(messageStates)) THEN 'unknown message state' ELSE 'unknown recipient state' END AS reason
                FROM messages
                WHERE state <> ALL(\(messageStates))
                   OR id IN (SELECT message_id FROM recipients WHERE state <> ALL(\(recipientStates)))
            ), moved AS (
                DELETE FROM messages m USING bad WHERE m.id = bad.id RETURNING m.id, bad.reason, m.sender, m.envelope, m.received_header
            ), their_attempts AS (
                DELETE FROM attempts WHERE message_id IN (SELECT id FROM moved)
            )
            INSERT INTO quarantine (id, moved, reason, sender, envelope, content, received_header)
            SELECT m.id, \(Date().timeIntervalSince1970), m.reason, m.sender, m.envelope,
                   (SELECT content FROM bodies WHERE message_id = m.id), m.received_header
            FROM moved m
            ON CONFLICT (id) DO UPDATE SET moved = EXCLUDED.moved, reason = EXCLUDED.reason
            RETURNING id, reason
            """, logger: quiet))
        for row in moved {
            logger.error("queue entry quarantined", metadata: ["queue.id": "\((try? row[0].decode(String.self)) ?? "")", "queue.quarantine.reason": "\((try? row[1].decode(String.self)) ?? "")"])
        }
    }

    public func quarantined() async throws -> [QuarantinedEntry] {
        try await execute("cannot read the quarantine", "SELECT id, reason FROM quarantine ORDER BY moved, id").map {
            QuarantinedEntry(id: try $0[0].decode(String.self), reason: try $0[1].decode(String.self))
        }
    }

    public func nextDue() async throws -> Double? {
        try await execute("cannot read the queue", "SELECT min(next_attempt) FROM messages WHERE state IN ('queued', 'deferred')")
            .first?[0].decode(Double?.self)
    }

    public func count() async throws -> Int {
        try await execute("cannot count the queue", "SELECT count(*) FROM messages").first?[0].decode(Int.self) ?? 0
    }

    public func health() async throws {
        try await execute("the spool database does not answer", "SELECT 1")
    }

    public func list() async throws -> [QueueListing] {
        try await listing(QueueFilter(), limit: nil, offset: 0).rows
    }

    public func list(filter: QueueFilter, page: QueuePage) async throws -> QueueListPage {
        let page = QueuePage(offset: page.offset, limit: page.limit)
        return try await listing(filter, limit: page.limit, offset: page.offset)
    }

    /// The messages `filter` matches, oldest first, `limit` (nil: all) after the first
    /// `offset`, and how many match: one statement, so that the count and the rows
    /// see the same snapshot (a page past the end still has its total).
    private func listing(_ filter: QueueFilter, limit: Int?, offset: Int) async throws -> QueueListPage {
        var q = PostgresQuery.StringInterpolation(literalCapacity: 1024, interpolationCount: 20)
        // The recipients are gathered outside the page's subquery: inside it, they would
        // be gathered for every row the offset skips as well.
        q.appendLiteral("""
            SELECT t.total, p.*,
                   coalesce((SELECT array_agg(r.address ORDER BY r.idx) FROM recipients r WHERE r.message_id = p.id AND r.state = 'pending'), '{}')
            FROM (SELECT count(*) AS total FROM messages m
            """)
        Self.appendCondition(filter, to: &q)
        q.appendLiteral("""
            ) t LEFT JOIN LATERAL (
                SELECT m.id, m.created, m.size, m.sender, m.state, m.attempts, m.last_error, m.next_attempt, m."user", m.department,
                       m.accepted_by, m.claimed_by, m.upstream
                FROM messages m
            """)
        Self.appendCondition(filter, to: &q)
        q.appendLiteral(" ORDER BY m.created, m.id LIMIT ")
        q.appendInterpolation(limit)
        q.appendLiteral(" OFFSET ")
        q.appendInterpolation(offset)
        q.appendLiteral(") p ON true ORDER BY p.created, p.id")
        let rows = try await execute("cannot list the queue", PostgresQuery(stringInterpolation: q))
        let total = try rows.first?[0].decode(Int.self) ?? 0
        // An entry whose columns cannot be read is left out (loading it quarantines it);
        // past the end, the one row has the total and no message.
        let listings = rows.compactMap { row in
            try? QueueListing(
                id: row[1].decode(String.self), createdAt: row[2].decode(Double.self), size: row[3].decode(Int.self),
                sender: row[4].decode(String.self), recipients: row[14].decode([String].self),
                state: QueueState(rawValue: row[5].decode(String.self)) ?? .queued,
                attempts: row[6].decode(Int.self), lastError: row[7].decode(String?.self),
                nextAttempt: row[8].decode(Double.self), user: row[9].decode(String?.self),
                department: row[10].decode(String?.self), acceptedBy: row[11].decode(String.self),
                claimedBy: row[12].decode(String?.self), upstream: row[13].decode(String?.self)
            )
        }
        return QueueListPage(rows: listings, total: total)
    }

    /// `filter` as a `WHERE` clause on `messages m` (nothing when it is empty), its
    /// values bound. Every term has an index (schema 4): the case-insensitive ones
    /// compare lower() to lower(), as those indexes are built.
    static func appendCondition(_ filter: QueueFilter, to q: inout PostgresQuery.StringInterpolation) {
        var first = true
        /// `sql` with each `?` bound to the next of `values`.
        func term(_ sql: String, _ values: [String]) {
            q.appendLiteral(first ? " WHERE " : " AND ")
            first = false
            for (n, part) in sql.split(separator: "?", omittingEmptySubsequences: false).enumerated() {
                if n > 0 { q.appendInterpolation(values[n - 1]) }
                q.appendLiteral(String(part))
            }
        }
        if let state = filter.state { term("m.state = ?", [state.rawValue]) }
        if let user = filter.user { term(#"lower(m."user") = lower(?)"#, [user]) }
        if let department = filter.department { term("lower(m.department) = lower(?)", [department]) }
        if let sender = filter.sender { term("lower(m.sender) = lower(?)", [sender]) }
        if let recipient = filter.recipient {
            term("EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.state = 'pending' AND lower(r.address) = lower(?))", [recipient])
        }
        if let upstream = filter.upstream {
            term(filter.upstreamIncludesUnrouted ? "(m.upstream = ? OR m.upstream IS NULL)" : "m.upstream = ?", [upstream])
        }
        // A claim owner is `node/pid/tag`.
        if let node = filter.node {
            term("(m.accepted_by = ? OR m.claimed_by = ? OR (m.claimed_by IS NOT NULL AND split_part(m.claimed_by, '/', 1) = ?))", [node, node, node])
        }
    }
}

extension PostgresSpool {
    public func history(_ id: String) async throws -> HistoryEntry? {
        let cutoff = Date().timeIntervalSince1970 - keepHistory
        let rows = try await execute(
            "cannot read the history",
            "SELECT id, created, completed, sender, size, attempts, upstream, accepted_by, envelope, recipients FROM history WHERE id = \(id) AND completed >= \(cutoff)"
        )
        guard let row = rows.first else { return nil }
        let envelope = try row[8].decode(ByteBuffer.self)
        let recipients = try row[9].decode(ByteBuffer.self)
        return HistoryEntry(
            id: try row[0].decode(String.self), createdAt: try row[1].decode(Double.self), completedAt: try row[2].decode(Double.self),
            sender: try row[3].decode(String.self), size: try row[4].decode(Int.self), attempts: try row[5].decode(Int.self),
            upstream: try row[6].decode(String?.self), acceptedBy: try row[7].decode(String.self),
            envelope: try JSONDecoder().decode(SpoolEnvelope.self, from: Data(envelope.readableBytesView)),
            recipients: try JSONDecoder().decode([SpoolRecipient].self, from: Data(recipients.readableBytesView))
        )
    }
}

extension PostgresSpool {
    public func breakdown() async throws -> QueueBreakdown {
        var b = QueueBreakdown()
        for row in try await execute("cannot count the queue", "SELECT state, coalesce(department, '-'), count(*) FROM messages GROUP BY 1, 2") {
            let n = try row[2].decode(Int.self)
            if let state = QueueState(rawValue: try row[0].decode(String.self)) { b.byState[state, default: 0] += n }
            b.byDepartment[try row[1].decode(String.self), default: 0] += n
        }
        for row in try await execute("cannot count the claims", "SELECT split_part(claimed_by, '/', 1), count(*) FROM messages WHERE claimed_by IS NOT NULL GROUP BY 1") {
            b.claimsByNode[try row[0].decode(String.self), default: 0] += try row[1].decode(Int.self)
        }
        return b
    }
}
