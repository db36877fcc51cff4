import Foundation
import NIOCore
import PostgresNIO
import TollgateSpool

extension PostgresSpool {
    /// A queued message's attempts, or those of one in the history while its entry
    /// lasts (the same cutoff as ``history(_:)``), by number; one statement.
    public func attempts(_ id: String) async throws -> [DeliveryAttempt] {
        let cutoff = Date().timeIntervalSince1970 - keepHistory
        let rows = try await execute("cannot read the delivery attempts", """
            SELECT number, at, upstream, host, owner, recipients FROM attempts
            WHERE message_id = \(id)
              AND (EXISTS (SELECT 1 FROM messages WHERE id = \(id)) OR EXISTS (SELECT 1 FROM history WHERE id = \(id) AND completed >= \(cutoff)))
            ORDER BY number
            """)
        return try rows.map { row in
            let recipients = try row[5].decode(ByteBuffer.self)
            return DeliveryAttempt(
                number: try row[0].decode(Int.self), at: try row[1].decode(Double.self), upstream: try row[2].decode(String?.self),
                host: try row[3].decode(String?.self), owner: try row[4].decode(String.self),
                recipients: try JSONDecoder().decode([DeliveryAttempt.Recipient].self, from: Data(recipients.readableBytesView))
            )
        }
    }
}
