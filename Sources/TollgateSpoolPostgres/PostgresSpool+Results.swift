import Foundation
import NIOCore
import PostgresNIO
import TollgateSpool

/// One delivery's result made ready for the grouped statement
/// (``PostgresSpool/recordAttempts(_:keepHistory:client:)``): its scalar columns and
/// recipients' states as JSON records, the history's recipients and the attempt's
/// record as bytes.
struct AttemptRow: Sendable {
    struct Columns: Encodable, Sendable {
        var n = 0
        var id: String
        var owner: String
        /// nil: the message is done (delivered or bounced) and leaves the queue.
        var next_attempt: Double?
        var last_error: String?
        /// When it was done: the history entry's `completed`.
        var completed: Double
        var logged: Bool
        var at: Double?
        var upstream: String?
        var host: String?
        var attempt_owner: String?
    }

    struct RecipientState: Encodable, Sendable {
        var message_id: String
        var idx: Int
        var state: String
        var last_reply: String?
        var attempts: Int
    }

    var columns: Columns
    var states: [RecipientState]
    /// The recipients as the history keeps them.
    var final: ByteBuffer
    /// The attempt's recipients, or empty without an attempt record.
    var log: ByteBuffer

    var id: String { columns.id }
    /// What the row weighs in a batch: its bytes.
    var cost: Int { final.readableBytes + log.readableBytes + states.count * 64 + 256 }

    init(id: String, owner: String, recipients: [SpoolRecipient], nextAttempt: Double?, lastError: String?, attempt: DeliveryAttempt?) throws {
        let encoder = JSONEncoder()
        columns = Columns(
            id: id, owner: owner, next_attempt: nextAttempt, last_error: lastError, completed: Date().timeIntervalSince1970,
            logged: attempt != nil, at: attempt?.at, upstream: attempt?.upstream, host: attempt?.host, attempt_owner: attempt?.owner
        )
        // Only a message that stays queued needs its recipients' rows updated.
        states = nextAttempt == nil ? [] : recipients.enumerated().map { index, r in
            RecipientState(message_id: id, idx: index, state: r.state.rawValue, last_reply: r.lastReply, attempts: r.attempts)
        }
        final = nextAttempt == nil ? ByteBuffer(bytes: try encoder.encode(recipients)) : ByteBuffer()
        log = try attempt.map { ByteBuffer(bytes: try encoder.encode($0.recipients)) } ?? ByteBuffer()
    }
}

extension PostgresSpool {
    /// Records the results of `batch` with one statement: for each delivery whose claim
    /// is still its owner's, the recipients' states and the next attempt (or, once done,
    /// the move to the history), the attempt's record, and the trimming of old records —
    /// data-modifying CTEs, so one implicit transaction and one round trip for all. Each
    /// item's output says whether its claim was still its own (false: nothing of it was
    /// written; another node took the message over).
    static func recordAttempts(_ batch: [AttemptRow], keepHistory keep: Bool, client: PostgresClient) async throws -> [Bool] {
        let encoder = JSONEncoder()
        let items = try String(decoding: encoder.encode(batch.enumerated().map { n, row in
            var c = row.columns
            c.n = n + 1
            return c
        }), as: UTF8.self)
        let states = try String(decoding: encoder.encode(batch.flatMap(\.states)), as: UTF8.self)
        let finals = batch.map(\.final)
        let logs = batch.map(\.log)
        let query: PostgresQuery = """
            WITH x AS (
                SELECT * FROM jsonb_to_recordset(\(items)::jsonb) AS x(
                    n bigint, id text, owner text, next_attempt float8, last_error text, completed float8,
                    logged boolean, at float8, upstream text, host text, attempt_owner text)
            ), b AS (
                SELECT * FROM unnest(\(finals)::bytea[], \(logs)::bytea[]) WITH ORDINALITY AS b(final, log, n)
            ), own AS (
                SELECT m.id, m.attempts + 1 AS number, x.n, x.next_attempt, x.last_error, x.completed
                FROM messages m JOIN x ON m.id = x.id AND m.claimed_by = x.owner
                FOR UPDATE OF m
            ), rcpt AS (
                UPDATE recipients r SET state = y.state, last_reply = y.last_reply, attempts = y.attempts
                FROM jsonb_to_recordset(\(states)::jsonb) AS y(message_id text, idx bigint, state text, last_reply text, attempts bigint), own
                WHERE own.next_attempt IS NOT NULL AND own.id = y.message_id AND r.message_id = y.message_id AND r.idx = y.idx
            ), later AS (
                -- A bounce asked for during the attempt stays due now.
                UPDATE messages m SET attempts = m.attempts + 1, last_error = own.last_error,
                    next_attempt = CASE WHEN m.bounce_now THEN 0 ELSE own.next_attempt END, claimed_by = NULL, claim_expires = NULL,
                    state = CASE WHEN m.state = 'held' THEN 'held' WHEN m.bounce_now THEN 'queued' ELSE 'deferred' END
                FROM own WHERE own.next_attempt IS NOT NULL AND m.id = own.id
            ), done AS (
                DELETE FROM messages m USING own WHERE own.next_attempt IS NULL AND m.id = own.id
                RETURNING m.id, m.created, m.sender, m.envelope, m.size, m.attempts, m.upstream, m.accepted_by, own.n, own.completed
            ), kept AS (
                INSERT INTO history (id, completed, created, sender, envelope, size, attempts, upstream, accepted_by, recipients)
                SELECT done.id, done.completed, done.created, done.sender, done.envelope, done.size, done.attempts + 1, done.upstream,
                       done.accepted_by, b.final
                FROM done JOIN b ON b.n = done.n WHERE \(keep)
                ON CONFLICT (id) DO NOTHING
            ), logged AS (
                -- The attempt's record: kept while the message is queued, then with its history entry.
                INSERT INTO attempts (message_id, number, at, upstream, host, owner, recipients)
                SELECT own.id, own.number, x.at, x.upstream, x.host, x.attempt_owner, b.log
                FROM own JOIN x ON x.n = own.n JOIN b ON b.n = own.n
                WHERE x.logged AND (own.next_attempt IS NOT NULL OR \(keep))
                ON CONFLICT (message_id, number) DO NOTHING
            ), trimmed AS (
                DELETE FROM attempts a USING own
                WHERE a.message_id = own.id
                  AND (NOT (own.next_attempt IS NOT NULL OR \(keep)) OR a.number <= own.number - \(DeliveryAttempt.keptPerMessage))
            )
            SELECT n FROM own
            """
        let own = Set(try await client.rows(query, prepared: RecordAttemptStatement.self).map { try $0[0].decode(Int.self) })
        return batch.indices.map { own.contains($0 + 1) }
    }
}
