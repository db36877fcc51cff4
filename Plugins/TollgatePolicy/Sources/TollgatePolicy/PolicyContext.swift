/// Everything a stage may look at when it decides. A value: stages cannot change the
/// session except through the facts in their ``PolicyDecision``.
public struct PolicyContext: Sendable {
    /// The phase being decided.
    public var phase: PolicyPhase
    /// The session's id as it appears in logs.
    public var sessionID: String
    /// The listener's configured name (e.g. `relay`, `submission`).
    public var listener: String
    /// The client's IP address in text form (`192.0.2.1`, `2001:db8::1`).
    public var clientAddress: String
    /// The name given in HELO/EHLO, once given.
    public var helo: String?
    /// Whether the session is encrypted.
    public var tls: Bool
    /// Ports, reverse-DNS names, the SASL mechanism and the TLS session (its protocol,
    /// cipher and client certificate).
    public var connection: ConnectionInfo
    /// The identity proven by AUTH, once authenticated.
    public var authenticatedUser: String?
    /// The envelope sender of the current transaction (`""` for the null sender), from the mail phase on.
    public var sender: String?
    /// Recipients accepted so far in this transaction.
    public var recipients: [String]
    /// At the rcpt phase, the recipient being decided.
    public var recipient: String?
    /// At the data phase, the message size in octets.
    public var messageSize: Int?
    /// At the data phase, the message's header fields, unfolded, in order.
    public var headers: [(name: String, value: String)]
    /// At the data phase, the message itself (raw header fields and body), as the
    /// stages before this one left it. `nil` at other phases and in `tollgate explain`.
    public var message: MessageContent?
    /// The id the transaction's message will be queued under, from the mail phase on
    /// (the same id as in the `250 … queued as` reply and in `tollgate queue`); `nil`
    /// at connect, helo, starttls and auth, and in `tollgate explain`.
    public var queueID: String?
    /// The facts attached so far by earlier stages and phases.
    public var facts: SessionFacts
    /// Whether this is a dry run (`tollgate explain`): stages must not count or change state.
    public var dryRun: Bool

    public init(
        phase: PolicyPhase,
        sessionID: String,
        listener: String,
        clientAddress: String,
        helo: String? = nil,
        tls: Bool = false,
        connection: ConnectionInfo = ConnectionInfo(),
        authenticatedUser: String? = nil,
        sender: String? = nil,
        recipients: [String] = [],
        recipient: String? = nil,
        messageSize: Int? = nil,
        headers: [(name: String, value: String)] = [],
        message: MessageContent? = nil,
        queueID: String? = nil,
        facts: SessionFacts = SessionFacts(),
        dryRun: Bool = false
    ) {
        self.message = message
        self.phase = phase
        self.sessionID = sessionID
        self.listener = listener
        self.clientAddress = clientAddress
        self.helo = helo
        self.tls = tls
        self.connection = connection
        self.authenticatedUser = authenticatedUser
        self.sender = sender
        self.recipients = recipients
        self.recipient = recipient
        self.messageSize = messageSize
        self.headers = headers
        self.queueID = queueID
        self.facts = facts
        self.dryRun = dryRun
    }

    /// The first header field of that name (case-insensitive), if any.
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name.lowercased() == lower }?.value
    }
}

/// A message the relay accepted, reported to stages after it is durably queued, so
/// that counters count accepted mail and not attempts refused later.
public struct AcceptedMessage: Sendable {
    public var queueID: String
    public var context: PolicyContext

    public init(queueID: String, context: PolicyContext) {
        self.queueID = queueID
        self.context = context
    }
}
