import SMTPCore

/// The server side of one SMTP session, without networking (RFC 5321 §4.1, RFC 2920,
/// RFC 3207, RFC 4954, RFC 3030).
///
/// The machine owns the whole session: what the client said, the open transaction
/// with its envelope, annotations and message, and the limits in force. Each event
/// method returns the action for the channel handler to carry out; actions carry
/// their payload, so the handler only does I/O. Every command goes check → decision
/// → proceed: the machine checks syntax and sequence, asks for a decision
/// (``Action/evaluatePolicy(_:)``) and applies it when ``policyDecided(_:)`` reports it.
public struct SMTPSessionStateMachine<Annotations: SessionAnnotations>: Sendable {
    public enum Action: Sendable {
        /// Send this reply.
        case reply(SMTPReply)
        /// Send this reply, then close the connection.
        case replyAndClose(SMTPReply)
        /// Ask the application; answer with ``policyDecided(_:)``.
        case evaluatePolicy(PolicyRequest<Annotations>)
        /// Verify credentials; answer with ``authenticationFinished(_:)``.
        case verifyCredentials(SASLCredentials, PolicyRequest<Annotations>)
        /// Send the 220, drop any buffered plaintext, start the TLS handshake; answer
        /// with ``tlsEstablished(_:)``.
        case startTLS(SMTPReply)
        /// Send the 354 and read message content; answer with ``received(_:pipelined:)``.
        case receiveData(SMTPReply, ContentLimits)
        /// Read exactly `size` octets of a BDAT chunk (`discard`: refused anyway).
        case receiveChunk(size: Int, last: Bool, discard: Bool, first: Bool, ContentLimits)
        /// Store the message durably; answer with ``storeFinished(queueID:)``.
        case store(StoreRequest<Annotations>)
        /// Nothing to do.
        case none
    }

    /// What a pending decision will complete.
    enum Pending: Sendable {
        case connect
        case helo(name: String, extended: Bool, previous: Transaction<Annotations>?)
        case starttls
        /// A verified login: what the verifier attached applies only if the auth phase
        /// proceeds.
        case auth(user: String, mechanism: String, verified: Scope<Annotations>)
        case mail(Transaction<Annotations>)
        case rcpt(Transaction<Annotations>, Envelope.Recipient)
        case data(Transaction<Annotations>)
    }

    enum AuthStep: Sendable {
        case plain
        case loginUsername
        case loginPassword(username: String)
    }

    enum State: Sendable {
        /// Before the greeting: the connect phase is being decided.
        case connecting
        /// Between commands, outside a transaction.
        case idle
        /// Between commands inside a transaction.
        case transaction(Transaction<Annotations>)
        case awaitingDecision(Pending)
        case authExchange(AuthStep)
        case verifyingCredentials(user: String, mechanism: String)
        case receivingData(Transaction<Annotations>)
        /// Reading a BDAT chunk: the transaction it adds to (`nil` when refused).
        case receivingChunk(Transaction<Annotations>?, last: Bool, refused: SMTPReply?)
        case storing(Transaction<Annotations>)
        case startingTLS
        case closed
    }

    public let configuration: SMTPSessionConfiguration
    var state: State = .connecting
    var session: Session<Annotations>
    /// See ``takeSizeRefusal()``.
    var lastSizeRefusal: SizeRefusal?

    public init(configuration: SMTPSessionConfiguration, sessionID: String = "-", clientAddress: String = "-", tlsActive: Bool = false) {
        self.configuration = configuration
        self.session = Session(id: sessionID, clientAddress: clientAddress, tls: tlsActive)
    }

    // MARK: - Queries

    public var isClosed: Bool {
        if case .closed = state { return true }
        return false
    }

    /// Whether the session sits between commands outside a transaction (safe to close on drain).
    public var isIdle: Bool {
        if case .idle = state { return true }
        return false
    }

    /// Whether the machine waits for a command line (not for a decision, TLS, content or storage).
    public var acceptsCommands: Bool {
        switch state {
        case .idle, .transaction, .authExchange: return true
        default: return false
        }
    }

    /// Whether it waits for message content (DATA or a BDAT chunk).
    public var acceptsContent: Bool {
        switch state {
        case .receivingData, .receivingChunk: return true
        default: return false
        }
    }

    /// Whether the session holds message content: receiving it, between BDAT chunks,
    /// or waiting for its decision or its store.
    public var holdsContent: Bool {
        switch state {
        case .receivingData, .receivingChunk, .storing, .awaitingDecision(.data): return true
        case .transaction(let tx): return tx.usingBDAT
        default: return false
        }
    }

    /// The longest command line allowed now (an AUTH exchange allows longer ones).
    public var lineLimit: Int {
        if case .authExchange = state { return SMTPLimits.maxAuthLine }
        return SMTPLimits.maxCommandLine
    }

    /// What is known of the session now.
    public var snapshot: SessionSnapshot { session.snapshot(listener: configuration.listenerName) }

    /// The envelope of the open transaction, if any.
    public var envelope: Envelope? { openTransaction?.envelope }

    public var messagesAccepted: Int { session.messagesAccepted }

    var openTransaction: Transaction<Annotations>? {
        switch state {
        case .transaction(let tx), .receivingData(let tx), .storing(let tx): return tx
        case .receivingChunk(let tx, _, _): return tx
        case .awaitingDecision(.rcpt(let tx, _)), .awaitingDecision(.data(let tx)): return tx
        case .awaitingDecision(.helo(_, _, let previous)): return previous
        default: return nil
        }
    }

    /// The message size limit in force: the listener's, or a smaller one a decision set.
    var maxMessageSize: Int {
        let scoped = openTransaction?.scope.limits?.maxMessageSize ?? session.limits?.maxMessageSize
        return min(scoped ?? .max, configuration.maxMessageSize)
    }

    /// The size limit in force and where it comes from (a department's, or
    /// `limits.max_message_size`).
    var sizeLimit: SizeRefusal.Limit {
        let limits = openTransaction?.scope.limits ?? session.limits
        if let scoped = limits?.maxMessageSize, scoped < configuration.maxMessageSize {
            return .init(bytes: scoped, source: limits?.source ?? "a policy decision")
        }
        return .init(bytes: configuration.maxMessageSize, source: "limits.max_message_size")
    }

    /// A message (or a `SIZE=` declaration) refused as too large: its size and the
    /// limit, for the log line of the `552`. Taken by the handler once.
    public struct SizeRefusal: Sendable, Hashable {
        public struct Limit: Sendable, Hashable {
            public var bytes: Int
            public var source: String
        }
        public var size: Int
        public var limit: Limit
    }

    /// The last size refusal, cleared when read.
    public mutating func takeSizeRefusal() -> SizeRefusal? {
        defer { lastSizeRefusal = nil }
        return lastSizeRefusal
    }

    var contentLimits: ContentLimits { ContentLimits(maxSize: maxMessageSize, bareNewline: configuration.bareNewline) }

    // MARK: - Events

    /// The connection is up: decide the connect phase before greeting. `facts` are
    /// what the socket and reverse DNS said of it.
    public mutating func connected(_ facts: ConnectionFacts = ConnectionFacts()) -> Action {
        session.connectionFacts = facts
        state = .awaitingDecision(.connect)
        return .evaluatePolicy(request(.connect))
    }

    /// The server is shutting down: idle sessions are told at once, busy ones after
    /// their transaction.
    public mutating func shutdownRequested() -> Action {
        session.draining = true
        switch state {
        case .idle, .authExchange:
            state = .closed
            return .replyAndClose(.shuttingDown)
        default:
            return .none
        }
    }

    /// The server's drain deadline (`limits.drain_timeout`) passed with the session
    /// still inside a transaction: it is told `421 4.3.2` and closed, whatever it was doing.
    public mutating func drainDeadlinePassed() -> Action {
        if case .closed = state { return .none }
        state = .closed
        return .replyAndClose(.shuttingDown)
    }

    /// The per-command or content deadline passed.
    public mutating func timedOut() -> Action {
        state = .closed
        return .replyAndClose(.timeout)
    }

    /// A frame from ``SMTPFramer``; `pipelined` tells whether more bytes already
    /// follow it (RFC 2920 §3.1 and RELIABILITY A2 are judged from that).
    public mutating func received(_ frame: SMTPFramer.Frame, pipelined: Bool) -> Action {
        switch frame {
        case .line(let line):
            return receivedLine(line[...], pipelined: pipelined)
        case .lineTooLong:
            if case .authExchange = state { return authLineTooLong() }
            return protocolError(.lineTooLong)
        case .data(let content):
            // RELIABILITY A2: commands in the same write as the final dot, without PIPELINING.
            if pipelined, !session.extended {
                return synchronizationError()
            }
            return dataReceived(content)
        case .chunk(let size, let last, let content):
            return chunkReceived(size: size, last: last, content: content)
        }
    }

    /// A command line, without CRLF.
    public mutating func receivedLine(_ line: ArraySlice<UInt8>, pipelined: Bool = false) -> Action {
        switch state {
        case .authExchange(let step):
            return authResponse(step, String(decoding: line, as: UTF8.self))
        case .idle, .transaction:
            break
        default:
            // The handler only feeds lines when `acceptsCommands`.
            return .none
        }
        if pipelined, violatesPipelining(line) {
            return synchronizationError()
        }
        let command: SMTPCommand
        do {
            command = try SMTPCommandParser(strictEnvelopes: configuration.strictEnvelopes, postmasterDomain: configuration.hostname).parse(line)
        } catch {
            if error.isForeignProtocol {
                state = .closed
                return .replyAndClose(error.reply)
            }
            // A BDAT whose size cannot be read leaves its chunk's end unknown: what
            // follows must never be taken as commands (RFC 3030 §3).
            if line.prefix(5).map({ $0 | 0x20 }) == Array("bdat ".utf8) || line.map({ $0 | 0x20 }) == Array("bdat".utf8) {
                state = .closed
                return .replyAndClose(error.reply)
            }
            return protocolError(error.reply)
        }
        return receivedCommand(command)
    }

    public mutating func receivedCommand(_ command: SMTPCommand) -> Action {
        switch state {
        case .idle, .transaction: break
        default: return .none
        }
        // Shutting down: a session back between transactions starts nothing new.
        if session.draining, case .idle = state, command != .quit {
            state = .closed
            return .replyAndClose(.shuttingDown)
        }
        switch command {
        case .helo(let name):
            return decide(.helo(name: name, extended: false, previous: openTransaction))
        case .ehlo(let name):
            return decide(.helo(name: name, extended: true, previous: openTransaction))
        case .mail(let sender, let params):
            return mail(sender, params)
        case .rcpt(let mailbox, let params, let hadRoute):
            return rcpt(mailbox, params, hadSourceRoute: hadRoute)
        case .data:
            return data()
        case .bdat(let size, let last):
            return bdat(size: size, last: last)
        case .rset:
            state = .idle
            return junk(.ok)
        case .noop:
            return junk(.ok)
        case .quit:
            state = .closed
            return .replyAndClose(.bye)
        case .vrfy:
            return junk(SMTPReply(252, "2.5.2", "Cannot VRFY user, but will accept message and attempt delivery"))
        case .expn:
            return protocolError(SMTPReply(502, "5.5.1", "Error: EXPN not supported"))
        case .help:
            return junk(SMTPReply(214, "2.0.0", "See RFC 5321"))
        case .startTLS:
            return startTLS()
        case .auth(let mechanism, let initial):
            return auth(mechanism, initial)
        }
    }

    /// The application's decision for the pending phase.
    public mutating func policyDecided(_ decision: SessionDecision<Annotations>) -> Action {
        guard case .awaitingDecision(let pending) = state else { return .none }
        if case .disconnect(let reply) = decision.verdict {
            state = .closed
            return .replyAndClose(reply)
        }
        var refusal: SMTPReply?
        if case .refuse(let reply) = decision.verdict { refusal = reply }
        switch pending {
        case .connect:
            session.connection.absorb(decision.annotations, decision.limits)
            if let refusal {
                state = .closed
                return .replyAndClose(refusal)
            }
            state = .idle
            return .reply(SMTPReply(code: 220, enhancedCode: nil, lines: ["\(configuration.hostname) ESMTP Tollgate"]))
        case .helo(let name, let extended, let previous):
            if let refusal {
                session.scope.absorb(decision.annotations.keptOnRefusal(), nil)
                state = previous.map { .transaction($0) } ?? .idle
                return .reply(refusal)
            }
            session.scope.absorb(decision.annotations, decision.limits)
            // RFC 5321 §4.1.4: EHLO/HELO also resets the transaction.
            session.helo = name
            session.extended = extended
            state = .idle
            return .reply(extended ? ehloReply() : SMTPReply(250, nil, configuration.hostname))
        case .starttls:
            session.scope.absorb(decision.annotations, decision.limits)
            if let refusal {
                state = .closed
                return .replyAndClose(refusal)
            }
            state = .idle
            // RFC 3207 §4.2: the client speaks first after the handshake.
            return .none
        case .auth(let user, let mechanism, let verified):
            state = .idle
            if let refusal {
                session.scope.absorb(verified.annotations.keptOnRefusal(), nil)
                session.scope.absorb(decision.annotations.keptOnRefusal(), nil)
                return .reply(refusal)
            }
            session.scope.absorb(verified.annotations, verified.limits)
            session.scope.absorb(decision.annotations, decision.limits)
            session.authenticatedUser = user
            session.saslMethod = mechanism
            return .reply(SMTPReply(235, "2.7.0", "Authentication successful"))
        case .mail(var tx):
            guard refusal == nil else {
                state = .idle
                return .reply(refusal!)
            }
            tx.scope.absorb(decision.annotations, decision.limits)
            state = .transaction(tx)
            return .reply(.senderOK)
        case .rcpt(var tx, let recipient):
            if let refusal {
                tx.scope.absorb(decision.annotations.keptOnRefusal(), nil)
                state = .transaction(tx)
                return .reply(refusal)
            }
            tx.scope.absorb(decision.annotations, decision.limits)
            tx.envelope.recipients.append(recipient)
            state = .transaction(tx)
            return .reply(.recipientOK)
        case .data(var tx):
            if let refusal {
                state = .idle
                return finishTransaction(refusal)
            }
            tx.scope.absorb(decision.annotations, decision.limits)
            guard let message = tx.message else {
                state = .idle
                return finishTransaction(.localError)
            }
            state = .storing(tx)
            return .store(StoreRequest(session: snapshot, envelope: tx.envelope, message: message, annotations: annotations(with: tx)))
        }
    }

    /// STARTTLS could not start (no TLS context): `454`, and the session goes on in
    /// plaintext.
    public mutating func tlsUnavailable() -> Action {
        guard case .startingTLS = state else { return .none }
        state = .idle
        return .reply(SMTPReply(454, "4.7.0", "TLS not available due to local problem"))
    }

    /// STARTTLS completed: forget everything learnt from the client before it
    /// (RFC 3207 §4.2); what the server knew at connect stays. `facts` is the
    /// negotiated session (nil if it could not be read).
    public mutating func tlsEstablished(_ facts: TLSSessionFacts? = nil) -> Action {
        guard case .startingTLS = state else { return .none }
        session.startedTLS(facts)
        state = .awaitingDecision(.starttls)
        return .evaluatePolicy(request(.starttls))
    }

    /// The handshake of an implicit-TLS listener completed: the session was encrypted
    /// from the start, so nothing is reset; decisions from here on see the session's
    /// facts. (The connect phase may already have been decided without them.)
    public mutating func implicitTLSEstablished(_ facts: TLSSessionFacts?) {
        guard session.tls, session.tlsFacts == nil else { return }
        session.tlsFacts = facts
    }

    // MARK: - Commands

    private mutating func mail(_ sender: ReversePath, _ params: MailParameters) -> Action {
        guard session.helo != nil else { return protocolError(SMTPReply(503, "5.5.1", "Error: send HELO/EHLO first")) }
        guard case .idle = state else { return protocolError(SMTPReply(503, "5.5.1", "Error: nested MAIL command")) }
        if configuration.tls != .none, !session.tls, configuration.auth == .required {
            return protocolError(SMTPReply(530, "5.7.0", "Must issue a STARTTLS command first"))
        }
        if configuration.auth == .required, session.authenticatedUser == nil {
            return protocolError(SMTPReply(530, "5.7.0", "Authentication required"))
        }
        if !session.extended, params != MailParameters() {
            return protocolError(SMTPReply(555, "5.5.4", "Error: MAIL parameters require EHLO"))
        }
        if let size = params.size, size > maxMessageSize {
            lastSizeRefusal = SizeRefusal(size: size, limit: sizeLimit)
            return .reply(SMTPReply(552, "5.3.4", "Error: message size exceeds fixed limit"))
        }
        return decide(.mail(Transaction(envelope: Envelope(sender: sender, parameters: params))))
    }

    private mutating func rcpt(_ mailbox: Mailbox, _ params: RecipientParameters, hadSourceRoute: Bool) -> Action {
        guard case .transaction(let tx) = state else { return protocolError(SMTPReply(503, "5.5.1", "Error: need MAIL command")) }
        guard !tx.usingBDAT else { return protocolError(.badSequence) }
        if tx.envelope.recipients.count >= configuration.maxRecipients {
            return .reply(SMTPReply(452, "4.5.3", "Error: too many recipients"))
        }
        if hadSourceRoute || mailbox.hasRoutingCharacters {
            return .reply(SMTPReply(553, "5.7.1", "Error: sender-specified routing is not allowed"))
        }
        if mailbox.isAddressLiteral, !configuration.acceptsAddressLiteralRecipients {
            return .reply(SMTPReply(553, "5.7.1", "Error: address literals are not relayed; use a domain name"))
        }
        if mailbox.needsSMTPUTF8, !tx.envelope.parameters.smtpUTF8 {
            return .reply(SMTPReply(553, "5.6.7", "Error: this address requires SMTPUTF8"))
        }
        if !session.extended, params != RecipientParameters() {
            return protocolError(SMTPReply(555, "5.5.4", "Error: RCPT parameters require EHLO"))
        }
        return decide(.rcpt(tx, Envelope.Recipient(mailbox: mailbox, parameters: params)))
    }

    private mutating func startTLS() -> Action {
        guard configuration.tls == .starttls else { return protocolError(SMTPReply(502, "5.5.1", "Error: STARTTLS not available")) }
        guard !session.tls else { return protocolError(SMTPReply(554, "5.5.1", "Error: TLS already active")) }
        guard case .idle = state else { return protocolError(SMTPReply(503, "5.5.1", "Error: STARTTLS inside a mail transaction")) }
        state = .startingTLS
        return .startTLS(SMTPReply(220, "2.0.0", "Ready to start TLS"))
    }

    // MARK: - Helpers

    /// Asks for the decision that completes `pending`.
    mutating func decide(_ pending: Pending) -> Action {
        state = .awaitingDecision(pending)
        switch pending {
        case .connect: return .evaluatePolicy(request(.connect))
        case .helo: return .evaluatePolicy(request(.helo))
        case .starttls: return .evaluatePolicy(request(.starttls))
        case .auth(_, let mechanism, let verified):
            var request = request(.auth)
            request.session.saslMethod = mechanism
            request.annotations.merge(verified.annotations)
            return .evaluatePolicy(request)
        case .mail(let tx): return .evaluatePolicy(request(.mail, tx))
        case .rcpt(let tx, let recipient): return .evaluatePolicy(request(.rcpt, tx, recipient: recipient))
        case .data(let tx): return .evaluatePolicy(request(.data, tx, message: tx.message))
        }
    }

    /// Everything attached so far, outermost scope first.
    func annotations(with tx: Transaction<Annotations>?) -> Annotations {
        var all = session.connection.annotations
        all.merge(session.scope.annotations)
        if let tx { all.merge(tx.scope.annotations) }
        return all
    }

    func request(_ phase: SessionPhase, _ tx: Transaction<Annotations>? = nil, recipient: Envelope.Recipient? = nil, message: ReceivedMessage? = nil) -> PolicyRequest<Annotations> {
        PolicyRequest(phase: phase, session: snapshot, envelope: tx?.envelope, recipient: recipient, message: message, annotations: annotations(with: tx))
    }

    /// RFC 2920 §3.1: some commands must end a pipelined group, and a client that
    /// said HELO (no PIPELINING) may not pipeline at all.
    func violatesPipelining(_ line: ArraySlice<UInt8>) -> Bool {
        if !session.extended, session.helo != nil { return true }
        let verb = String(decoding: line.prefix { $0 != 32 }.prefix(8), as: UTF8.self)
        return SMTPCommand.mustEndPipelineGroup(verb: verb)
    }

    mutating func synchronizationError() -> Action {
        state = .closed
        return .replyAndClose(.syncError)
    }

    mutating func finishTransaction(_ reply: SMTPReply) -> Action {
        if session.draining {
            state = .closed
            return .replyAndClose(reply)
        }
        return .reply(reply)
    }

    mutating func protocolError(_ reply: SMTPReply) -> Action {
        session.errorCount += 1
        if session.errorCount >= configuration.maxErrors {
            state = .closed
            return .replyAndClose(.tooManyErrors)
        }
        return .reply(reply)
    }

    mutating func junk(_ reply: SMTPReply) -> Action {
        session.junkCount += 1
        if session.junkCount > configuration.maxJunkCommands {
            state = .closed
            return .replyAndClose(.tooManyErrors)
        }
        return .reply(reply)
    }

    func ehloReply() -> SMTPReply {
        var lines = [
            configuration.hostname,
            "PIPELINING",
            "SIZE \(configuration.maxMessageSize)",
        ]
        if configuration.tls == .starttls, !session.tls { lines.append("STARTTLS") }
        if configuration.auth != .none, session.tls, session.authenticatedUser == nil {
            lines.append("AUTH " + SASL.mechanisms.joined(separator: " "))
        }
        lines += ["ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8", "DSN", "CHUNKING"]
        return SMTPReply(code: 250, enhancedCode: nil, lines: lines)
    }
}
