import SMTPCore
import TollgateConfiguration
import TollgateSpool
import TollgateMetrics

/// What one delivery attempt got: a reply per recipient tried (2xx delivered, 4xx try
/// again, 5xx failed), and the host that gave them.
public struct DeliveryOutcome: Sendable, Hashable {
    /// Replies by recipient index (into `SpoolMessage.recipients`). A pending recipient
    /// without one was not attempted and is tried again.
    public var replies: [Int: SMTPReply]
    /// The upstream host that answered, for logs and the DSN's `Remote-MTA`.
    public var remoteMTA: String?

    public init(replies: [Int: SMTPReply], remoteMTA: String? = nil) {
        self.replies = replies
        self.remoteMTA = remoteMTA
    }

    /// The same reply for every recipient in `recipients`.
    public static func all(_ recipients: [Int], _ reply: SMTPReply, remoteMTA: String? = nil) -> DeliveryOutcome {
        DeliveryOutcome(replies: Dictionary(uniqueKeysWithValues: recipients.map { ($0, reply) }), remoteMTA: remoteMTA)
    }
}
