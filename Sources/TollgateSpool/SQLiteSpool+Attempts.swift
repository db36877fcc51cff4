import Foundation
import GRDB

extension SQLiteSpool {
    /// A queued message's attempts, or those of one in the history while its entry
    /// lasts (the same cutoff as ``history(_:)``), by number.
    public func attempts(_ id: String) async throws -> [DeliveryAttempt] {
        let cutoff = Date().timeIntervalSince1970 - keepHistory
        return try await pool.read { db in
            let rows = try Row.fetchAll(
                db.cachedStatement(sql: """
                    SELECT number, at, upstream, host, owner, recipients FROM attempts
                    WHERE message_id = ? AND (EXISTS (SELECT 1 FROM messages WHERE id = ?) OR EXISTS (SELECT 1 FROM history WHERE id = ? AND completed >= ?))
                    ORDER BY number
                    """),
                arguments: [id, id, id, cutoff]
            )
            return try rows.map { row in
                DeliveryAttempt(
                    number: try row.decode(forColumn: "number"), at: try row.decode(forColumn: "at"), upstream: try row.decode(forColumn: "upstream"),
                    host: try row.decode(forColumn: "host"), owner: try row.decode(forColumn: "owner"),
                    recipients: try JSONDecoder().decode([DeliveryAttempt.Recipient].self, from: try row.decode(Data.self, forColumn: "recipients"))
                )
            }
        }
    }
}
