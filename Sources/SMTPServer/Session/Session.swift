/// What one SMTP session knows beyond its current transaction, owned by
/// ``SMTPSessionStateMachine``.
struct Session<Annotations: SessionAnnotations>: Sendable {
    let id: String
    let clientAddress: String
    /// Set once at connect (``SMTPSessionStateMachine/connected(_:)``): ports, the
    /// local address, the reverse-DNS names.
    var connectionFacts = ConnectionFacts()
    var tls: Bool
    /// Set when a handshake completes (``SMTPSessionStateMachine/tlsEstablished(_:)``,
    /// ``SMTPSessionStateMachine/implicitTLSEstablished(_:)``).
    var tlsFacts: TLSSessionFacts?
    // Learnt from the client: reset by STARTTLS (RFC 3207 §4.2).
    var helo: String?
    var extended = false
    var authenticatedUser: String?
    /// The mechanism of the successful AUTH.
    var saslMethod: String?
    /// Attached at connect, from what the server knows of the client (its address):
    /// kept across STARTTLS.
    var connection = Scope<Annotations>()
    /// Attached at helo, starttls and auth since the last STARTTLS.
    var scope = Scope<Annotations>()
    var errorCount = 0
    var junkCount = 0
    var authFailures = 0
    var messagesAccepted = 0
    var draining = false

    init(id: String, clientAddress: String, tls: Bool) {
        self.id = id
        self.clientAddress = clientAddress
        self.tls = tls
    }

    /// The limits in force outside a transaction.
    var limits: SessionLimits? { scope.limits ?? connection.limits }

    mutating func startedTLS(_ facts: TLSSessionFacts?) {
        tls = true
        tlsFacts = facts
        helo = nil
        extended = false
        authenticatedUser = nil
        saslMethod = nil
        scope = Scope()
    }

    func snapshot(listener: String) -> SessionSnapshot {
        SessionSnapshot(
            sessionID: id, listener: listener, clientAddress: clientAddress, connection: connectionFacts, helo: helo, extended: extended,
            tls: tls, tlsSession: tlsFacts, authenticatedUser: authenticatedUser, saslMethod: saslMethod
        )
    }
}
