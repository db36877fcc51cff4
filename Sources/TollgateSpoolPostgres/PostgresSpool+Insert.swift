import Foundation
import NIOCore
import PostgresNIO
import TollgateSpool

/// A new message made ready for the insert statement: its scalar columns and
/// recipients as JSON records, its envelope and content as bytes.
struct InsertRow: Sendable {
    struct Columns: Encodable, Sendable {
        var n = 0
        var id: String
        var created: Double
        var sender: String
        var size: Int
        var checksum: Int64
        var checksum_kind: Int
        var state: String
        var next_attempt: Double
        var upstream: String?
        var user: String?
        var department: String?
        var accepted_by: String
        var received_header: String
        var claimed_by: String?
        var claim_expires: Double?
    }

    struct Recipient: Encodable, Sendable {
        var message_id: String
        var idx: Int
        var address: String
        var notify: String?
        var orcpt: String?
        var state: String
    }

    var columns: Columns
    var recipients: [Recipient]
    var envelope: ByteBuffer
    var content: ByteBuffer

    /// What the row weighs in a batch: its bytes.
    var cost: Int { content.readableBytes + envelope.readableBytes + columns.received_header.utf8.count + 512 }

    init(_ message: SpoolMessage, node: String, claim: SpoolClaim?) throws {
        let checksumKind = Checksum.current
        columns = Columns(
            id: message.id, created: message.createdAt, sender: message.sender, size: message.size,
            checksum: Checksum.of(header: message.receivedHeader, content: message.content, kind: checksumKind),
            checksum_kind: checksumKind.rawValue, state: message.state.rawValue, next_attempt: message.nextAttempt,
            upstream: message.upstream, user: message.envelope.user, department: message.envelope.department,
            accepted_by: node, received_header: message.receivedHeader, claimed_by: claim?.owner, claim_expires: claim?.expires
        )
        recipients = message.recipients.enumerated().map { index, r in
            Recipient(message_id: message.id, idx: index, address: r.address, notify: r.notify?.joined(separator: ","), orcpt: r.originalRecipient, state: r.state.rawValue)
        }
        envelope = ByteBuffer(bytes: try JSONEncoder().encode(message.envelope))
        content = message.content
    }
}

extension PostgresSpool {
    /// Stores `batch` with one statement: three inserts in data-modifying CTEs, so
    /// that the whole batch is one implicit transaction and one round trip.
    static func insertBatch(_ batch: [InsertRow], client: PostgresClient) async throws {
        let encoder = JSONEncoder()
        let columns = try String(decoding: encoder.encode(batch.enumerated().map { n, row in
            var c = row.columns
            c.n = n + 1
            return c
        }), as: UTF8.self)
        let recipients = try String(decoding: encoder.encode(batch.flatMap(\.recipients)), as: UTF8.self)
        let envelopes = batch.map(\.envelope)
        let ids = batch.map(\.columns.id)
        let contents = batch.map(\.content)
        let query: PostgresQuery = """
            WITH m AS (
                INSERT INTO messages (id, created, sender, envelope, size, checksum, checksum_kind, state, next_attempt,
                                      upstream, "user", department, accepted_by, received_header, claimed_by, claim_expires)
                SELECT x.id, x.created, x.sender, e.envelope, x.size, x.checksum, x.checksum_kind, x.state, x.next_attempt,
                       x.upstream, x."user", x.department, x.accepted_by, x.received_header, x.claimed_by, x.claim_expires
                FROM jsonb_to_recordset(\(columns)::jsonb) AS x(
                    n bigint, id text, created float8, sender text, size bigint, checksum bigint, checksum_kind bigint, state text,
                    next_attempt float8, upstream text, "user" text, department text, accepted_by text, received_header text,
                    claimed_by text, claim_expires float8)
                JOIN unnest(\(envelopes)::bytea[]) WITH ORDINALITY AS e(envelope, n) ON e.n = x.n
            ), r AS (
                INSERT INTO recipients (message_id, idx, address, notify, orcpt, state)
                SELECT y.message_id, y.idx, y.address, y.notify, y.orcpt, y.state
                FROM jsonb_to_recordset(\(recipients)::jsonb) AS y(message_id text, idx bigint, address text, notify text, orcpt text, state text)
            )
            INSERT INTO bodies (message_id, content) SELECT * FROM unnest(\(ids)::text[], \(contents)::bytea[])
            """
        _ = try await client.rows(query, prepared: InsertBatchStatement.self)
    }
}
