import SMTPCore

/// One mail transaction: from `MAIL` to the end of the message or `RSET`
/// (RFC 5321 §3.3). Session-wide facts live in the state machine, not here.
public struct Transaction: Sendable, Hashable {
    public var sender: ReversePath
    public var parameters: MailParameters
    public var recipients: [Recipient]
    /// Set once the first `BDAT` arrives: `DATA` may not follow (RFC 3030 §3).
    public var usingBDAT = false
    /// BDAT chunks accepted so far.
    public var bdatChunks = 0

    public struct Recipient: Sendable, Hashable {
        public var mailbox: Mailbox
        public var parameters: RecipientParameters
    }

    public init(sender: ReversePath, parameters: MailParameters) {
        self.sender = sender
        self.parameters = parameters
        self.recipients = []
    }
}
