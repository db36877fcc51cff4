import SMTPCore

/// The envelope of one mail transaction: the sender, its parameters and the recipients
/// accepted so far (RFC 5321 §3.3).
public struct Envelope: Sendable, Hashable {
    public var sender: ReversePath
    public var parameters: MailParameters
    public var recipients: [Recipient]

    public struct Recipient: Sendable, Hashable {
        public var mailbox: Mailbox
        public var parameters: RecipientParameters

        public init(mailbox: Mailbox, parameters: RecipientParameters) {
            self.mailbox = mailbox
            self.parameters = parameters
        }
    }

    public init(sender: ReversePath, parameters: MailParameters, recipients: [Recipient] = []) {
        self.sender = sender
        self.parameters = parameters
        self.recipients = recipients
    }
}

/// One mail transaction, from `MAIL` to the end of the message or `RSET`: its
/// envelope, what was attached while it ran, and its message once received.
struct Transaction<Annotations: SessionAnnotations>: Sendable {
    var envelope: Envelope
    var scope = Scope<Annotations>()
    /// Set once the first `BDAT` arrives: `DATA` may not follow (RFC 3030 §3).
    var usingBDAT = false
    var bdatChunks = 0
    var message: ReceivedMessage?

    init(envelope: Envelope) {
        self.envelope = envelope
    }
}

/// What decisions attached in one scope (connection, session, transaction).
struct Scope<Annotations: SessionAnnotations>: Sendable {
    var annotations = Annotations()
    var limits: SessionLimits?

    mutating func absorb(_ annotations: Annotations, _ limits: SessionLimits?) {
        self.annotations.merge(annotations)
        if let limits { self.limits = limits }
    }
}
