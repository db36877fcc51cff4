import TollgatePolicy

/// A client session as the relay presents it to its stages, phase by phase: each
/// method returns the ``PolicyContext`` a stage would get at that point and moves the
/// session on as the relay would (STARTTLS forgets what the client said, MAIL opens a
/// transaction with a new queue id, an accepted recipient joins the envelope).
///
/// ```swift
/// var session = TestSession()
/// _ = session.connect()
/// _ = session.helo()
/// let mail = session.mail(from: "alice@example.com")
/// let rcpt = session.rcpt("bob@example.net")
/// let data = session.data(TestMessages.make(subject: "hi"))
/// ```
///
/// Or let ``run(_:user:from:to:message:)`` drive a stage through its phases.
public struct TestSession: Sendable {
    public var sessionID: String
    public var listener: String
    public var clientAddress: String
    /// Ports, names, SASL mechanism and TLS session (see ``ConnectionInfo``).
    public var connection: ConnectionInfo
    /// The name given in EHLO/HELO since the last STARTTLS.
    public var heloName: String?
    public var authenticatedUser: String?
    /// The facts attached so far (``absorb(_:)`` adds a decision's).
    public var facts: SessionFacts
    public var sender: String?
    public var recipients: [String] = []
    public var queueID: String?
    private var transactions = 0

    public init(
        sessionID: String = "S1",
        listener: String = "relay",
        clientAddress: String = "192.0.2.10",
        connection: ConnectionInfo = ConnectionInfo(clientPort: 50_000, serverAddress: "192.0.2.1", serverPort: 25),
        facts: SessionFacts = SessionFacts()
    ) {
        self.sessionID = sessionID
        self.listener = listener
        self.clientAddress = clientAddress
        self.connection = connection
        self.facts = facts
    }

    /// Whether the session is encrypted (``startTLS(_:)`` was called, or the
    /// connection record has a TLS session, as on an implicit-TLS listener).
    public var tls: Bool { connection.tls != nil }

    /// The context at `phase` with what the session knows now.
    public func context(_ phase: PolicyPhase, recipient: String? = nil, message: MessageContent? = nil) -> PolicyContext {
        let inTransaction = phase == .mail || phase == .rcpt || phase == .data
        return PolicyContext(
            phase: phase,
            sessionID: sessionID,
            listener: listener,
            clientAddress: clientAddress,
            helo: heloName,
            tls: tls,
            connection: connection,
            authenticatedUser: authenticatedUser,
            sender: inTransaction ? sender : nil,
            recipients: inTransaction ? recipients : [],
            recipient: phase == .rcpt ? recipient : nil,
            messageSize: phase == .data ? message?.size : nil,
            headers: phase == .data ? message?.unfoldedHeaders ?? [] : [],
            message: phase == .data ? message : nil,
            queueID: inTransaction ? queueID : nil,
            facts: facts
        )
    }

    /// The connection is open; the greeting waits for this decision.
    public func connect() -> PolicyContext { context(.connect) }

    /// EHLO (or HELO) `name`: it ends any transaction (RFC 5321 §4.1.4).
    public mutating func helo(_ name: String = "client.example") -> PolicyContext {
        heloName = name
        endTransaction()
        return context(.helo)
    }

    /// STARTTLS completed: everything the client said before is forgotten (RFC 3207
    /// §4.2); what the server knew at connect stays.
    public mutating func startTLS(_ session: TLSInfo = TLSInfo(protocolVersion: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256", cipherBits: 128)) -> PolicyContext {
        connection.tls = session
        heloName = nil
        authenticatedUser = nil
        connection.saslMethod = nil
        endTransaction()
        return context(.starttls)
    }

    /// The auth phase, as the relay asks it after the credentials verified: the
    /// mechanism is known and `facts.user` is the verifier's user; `authenticatedUser`
    /// is set for the contexts after it (the relay sets it once the phase proceeds).
    public mutating func auth(user: String, mechanism: String = "PLAIN") -> PolicyContext {
        connection.saslMethod = mechanism
        if facts.user == nil { facts.user = user }
        let answer = context(.auth)
        authenticatedUser = user
        return answer
    }

    /// MAIL FROM: a new transaction with a new queue id.
    public mutating func mail(from sender: String) -> PolicyContext {
        endTransaction()
        transactions += 1
        self.sender = sender
        queueID = "TESTQ\(transactions)"
        return context(.mail)
    }

    /// RCPT TO `recipient`: the context has the recipients accepted before it; with
    /// `accepted`, it then joins them (as when the stages let it through).
    public mutating func rcpt(_ recipient: String, accepted: Bool = true) -> PolicyContext {
        let answer = context(.rcpt, recipient: recipient)
        if accepted { recipients.append(recipient) }
        return answer
    }

    /// The end of DATA: the whole message and the envelope.
    public func data(_ message: MessageContent) -> PolicyContext { context(.data, message: message) }

    /// Adds what a stage attached, as the relay keeps it for the later phases.
    public mutating func absorb(_ decision: PolicyDecision) { facts.merge(decision.facts) }

    /// RSET, or the end of a transaction.
    public mutating func endTransaction() {
        sender = nil
        recipients = []
        queueID = nil
    }

    /// One phase's answer in ``run(_:user:from:to:message:)``.
    public struct Step: Sendable {
        public var phase: PolicyPhase
        /// At the rcpt phase, the recipient decided.
        public var recipient: String?
        public var decision: PolicyDecision
    }

    /// Drives `stage` through one session as the relay would: only the phases the
    /// stage declares are asked — connect, helo; starttls and helo again when the
    /// connection record has a TLS session; auth when `user` is given; mail, each
    /// recipient, data. The facts of each answer are kept for the next, a refused
    /// recipient does not join the envelope, any other refusal ends the session. The
    /// data phase's changes are applied and, when the message is accepted, the stage
    /// is told (``PolicyStage/messageAccepted(_:)``); at the end the session closes
    /// (``PolicyStage/sessionClosed(sessionID:)``).
    ///
    /// Returns every answer in order, and the message as the stage left it.
    public mutating func run(
        _ stage: any PolicyStage, user: String? = nil, from sender: String, to recipients: [String], message: MessageContent = TestMessages.make()
    ) async throws -> (steps: [Step], message: MessageContent) {
        do {
            let result = try await drive(stage, user: user, from: sender, to: recipients, message: message)
            await stage.sessionClosed(sessionID: sessionID)
            return result
        } catch {
            await stage.sessionClosed(sessionID: sessionID)
            throw error
        }
    }

    private mutating func drive(
        _ stage: any PolicyStage, user: String?, from sender: String, to recipients: [String], message: MessageContent
    ) async throws -> (steps: [Step], message: MessageContent) {
        let phases = stage.phases
        var steps: [Step] = []
        var current = message
        /// Asks the stage if it decides this phase; false when it refused.
        func ask(_ context: PolicyContext, recipient: String? = nil, into session: inout TestSession) async throws -> Bool {
            guard phases.contains(context.phase) else { return true }
            let decision = try await stage.evaluate(context)
            steps.append(Step(phase: context.phase, recipient: recipient, decision: decision))
            switch decision.verdict {
            case .reject, .defer, .disconnect:
                return false
            case .continue, .accept:
                session.absorb(decision)
                if context.phase == .data { current = try current.applying(decision.changes) }
                return true
            }
        }
        let name = heloName ?? "client.example"
        var asked = connect()
        guard try await ask(asked, into: &self) else { return (steps, current) }
        asked = helo(name)
        guard try await ask(asked, into: &self) else { return (steps, current) }
        if let tls = connection.tls {
            asked = startTLS(tls)
            guard try await ask(asked, into: &self) else { return (steps, current) }
            asked = helo(name)
            guard try await ask(asked, into: &self) else { return (steps, current) }
        }
        if let user {
            asked = auth(user: user, mechanism: connection.saslMethod ?? "PLAIN")
            guard try await ask(asked, into: &self) else { return (steps, current) }
        }
        asked = mail(from: sender)
        guard try await ask(asked, into: &self) else { return (steps, current) }
        for recipient in recipients {
            asked = rcpt(recipient, accepted: false)
            if try await ask(asked, recipient: recipient, into: &self) { self.recipients.append(recipient) }
        }
        guard !self.recipients.isEmpty else { return (steps, current) }
        asked = data(current)
        guard try await ask(asked, into: &self) else { return (steps, current) }
        await stage.messageAccepted(AcceptedMessage(queueID: queueID ?? "TESTQ", context: data(current)))
        endTransaction()
        return (steps, current)
    }
}
