import NIOCore
import SMTPCore

/// What is known of the session at the moment of a request.
public struct SessionSnapshot: Sendable {
    public var sessionID: String
    public var listener: String
    public var clientAddress: String
    /// Ports, the local address and the reverse-DNS names.
    public var connection: ConnectionFacts
    /// The name given in HELO/EHLO since the last reset.
    public var helo: String?
    /// Whether EHLO (not HELO) was used.
    public var extended: Bool
    public var tls: Bool
    /// The TLS session, once its handshake completed.
    public var tlsSession: TLSSessionFacts?
    public var authenticatedUser: String?
    /// The mechanism of the successful AUTH (`PLAIN`, `LOGIN`).
    public var saslMethod: String?

    /// The client's forward-confirmed reverse-DNS name (``ReverseDNS``); nil: unknown.
    public var clientName: String? { connection.clientName }

    public init(
        sessionID: String, listener: String, clientAddress: String, connection: ConnectionFacts = ConnectionFacts(), helo: String? = nil,
        extended: Bool = false, tls: Bool = false, tlsSession: TLSSessionFacts? = nil, authenticatedUser: String? = nil, saslMethod: String? = nil
    ) {
        self.sessionID = sessionID
        self.listener = listener
        self.clientAddress = clientAddress
        self.connection = connection
        self.helo = helo
        self.extended = extended
        self.tls = tls
        self.tlsSession = tlsSession
        self.authenticatedUser = authenticatedUser
        self.saslMethod = saslMethod
    }
}

/// A message's content once fully received, with its header fields read once.
public struct ReceivedMessage: Sendable {
    /// Canonical CRLF text without dot-stuffing.
    public var content: ByteBuffer
    public var size: Int
    public var eightBit: Bool
    /// The header fields, unfolded, in order (bounded by ``SMTPLimits/maxHeaderBlock``).
    public var headers: [(name: String, value: String)]

    public init(content: ByteBuffer, size: Int, eightBit: Bool, headers: [(name: String, value: String)]) {
        self.content = content
        self.size = size
        self.eightBit = eightBit
        self.headers = headers
    }
}

/// A decision the session asks of the application (``SMTPSessionStateMachine/Action/evaluatePolicy(_:)``).
public struct PolicyRequest<Annotations: SessionAnnotations>: Sendable {
    public var phase: SessionPhase
    public var session: SessionSnapshot
    /// The transaction under decision: the one MAIL would open, the one a recipient
    /// would join (without that recipient), the complete one at data.
    public var envelope: Envelope?
    /// At rcpt, the recipient under decision.
    public var recipient: Envelope.Recipient?
    /// At data, the message.
    public var message: ReceivedMessage?
    /// Everything attached so far in the connection, the session and the transaction.
    public var annotations: Annotations
}

/// A message to store durably (``SMTPSessionStateMachine/Action/store(_:)``).
public struct StoreRequest<Annotations: SessionAnnotations>: Sendable {
    public var session: SessionSnapshot
    public var envelope: Envelope
    public var message: ReceivedMessage
    /// Everything attached in the connection, the session and this transaction.
    public var annotations: Annotations
}
