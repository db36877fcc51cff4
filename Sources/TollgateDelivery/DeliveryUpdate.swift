import SMTPCore
import TollgateConfiguration
import TollgateSpool
import TollgateMetrics

/// What the outcome folder makes of one attempt: the recipients' new states, the next
/// attempt (or `nil`: done, remove the message) and the failures a DSN must report.
public struct DeliveryUpdate: Sendable, Hashable {
    /// What happened to one recipient, as logs and metrics name it (SPEC §8).
    public enum Disposition: String, Sendable, Hashable {
        case sent, deferred, bounced
    }

    /// One recipient tried in this attempt.
    public struct Result: Sendable, Hashable {
        public var index: Int
        public var address: String
        public var reply: SMTPReply
        public var disposition: Disposition
    }

    public var recipients: [SpoolRecipient]
    public var results: [Result] = []
    /// When to try the still pending recipients; `nil` when none is left.
    public var nextAttempt: Double?
    /// The last temporary failure, else the last permanent one.
    public var lastError: String?
    /// Failures to report to the sender now (RFC 3464), queued before the attempt is recorded.
    public var bounce: [BounceBuilder.Failure] = []
    /// Failures wanted a report, but the message is a bounce or has a null sender.
    public var bounceSuppressed = false

    public init(recipients: [SpoolRecipient]) {
        self.recipients = recipients
    }
}
