import NIOCore
import SMTPClient
import SMTPCore
import TollgateConfiguration
import TollgateSpool
import TollgateMetrics

/// An SMTP upstream as a transport: a connection from the upstream's pool, one
/// transaction, per-recipient replies (RFC 5321 §3.3).
struct SMTPTransport: Transport {
    let pool: UpstreamPool

    func deliver(_ message: SpoolMessage, to indices: [Int]) async -> DeliveryOutcome {
        let connection: SMTPClientConnection
        let host: String
        do {
            (connection, host) = try await pool.acquire()
        } catch {
            // Connection trouble on every host is always temporary (the client says
            // so: even a 5xx greeting means "try another host").
            let reply = (error as? SMTPClientError)?.reply ?? SMTPReply(451, "4.4.1", "cannot connect to upstream")
            return .all(indices, reply.isTransient ? reply : SMTPReply(451, "4.4.1", reply.text))
        }
        do {
            let report = try await connection.send(Self.envelope(message, indices), content: message.content, prefix: message.receivedHeader)
            await pool.release(connection, host: host, reusable: true)
            var replies: [Int: SMTPReply] = [:]
            for (k, index) in indices.enumerated() {
                replies[index] = report.outcome(forRecipientAt: k)
            }
            return DeliveryOutcome(replies: replies, remoteMTA: host)
        } catch {
            await pool.release(connection, host: host, reusable: false)
            let clientError = error as? SMTPClientError
            let reply = clientError?.reply ?? SMTPReply(451, "4.4.2", "upstream connection failed")
            if clientError?.isPermanent == true {
                return .all(indices, reply, remoteMTA: host)
            }
            // Whatever the reply said, a transaction that failed part-way is retried.
            return .all(indices, reply.isTransient ? reply : SMTPReply(451, "4.4.2", reply.text))
        }
    }

    func shutdown() async {
        await pool.closeAll()
    }

    static func envelope(_ message: SpoolMessage, _ indices: [Int]) -> OutboundEnvelope {
        let recipients = indices.map { message.recipients[$0] }
        return OutboundEnvelope(
            sender: message.sender,
            recipients: recipients.map(\.address),
            size: message.size,
            eightBit: message.envelope.eightBit,
            smtpUTF8: message.envelope.smtpUTF8 || message.sender.utf8.contains { $0 >= 0x80 } || recipients.contains { $0.address.utf8.contains { $0 >= 0x80 } },
            ret: message.envelope.ret,
            envelopeID: message.envelope.envelopeID,
            notify: recipients.map(\.notify),
            orcpt: recipients.map(\.originalRecipient)
        )
    }
}
