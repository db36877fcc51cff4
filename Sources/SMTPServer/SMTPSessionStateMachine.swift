import SMTPCore
import TollgatePolicy

/// The server side of one SMTP session, without networking (RFC 5321 §4.1, RFC 3207,
/// RFC 4954, RFC 3030).
///
/// Each event method returns the actions for the channel handler to carry out. Every
/// command goes check → policy → proceed: the machine checks syntax and sequence, asks
/// for a policy decision (``Action/evaluatePolicy(_:)``) and applies the verdict when
/// ``policyDecided(_:)`` reports it.
public struct SMTPSessionStateMachine: Sendable {
    public enum Action: Sendable, Equatable {
        /// Send this reply.
        case reply(SMTPReply)
        /// Send this reply, then close the connection.
        case replyAndClose(SMTPReply)
        /// Ask the pipeline; answer with ``policyDecided(_:)``.
        case evaluatePolicy(PolicyPhase)
        /// Verify credentials; answer with ``authenticationFinished(_:)``.
        case verifyCredentials(AuthCredentials)
        /// Send the 220, discard any buffered plaintext, start the TLS handshake; answer
        /// with ``tlsEstablished()``.
        case startTLS(SMTPReply)
        /// Send the 354 and read message content; answer with ``dataReceived(_:)``.
        case receiveData(SMTPReply)
        /// Read exactly `size` octets of a BDAT chunk; `discard` if it is refused anyway.
        /// Answer with ``bdatChunkReceived(_:)``.
        case receiveBDATChunk(size: Int, last: Bool, discard: Bool, first: Bool)
        /// Store the message the handler holds; answer with ``storeFinished(_:)``.
        case storeMessage(Transaction)
        /// Nothing to do.
        case none

        public static func == (lhs: Action, rhs: Action) -> Bool {
            switch (lhs, rhs) {
            case (.reply(let a), .reply(let b)), (.replyAndClose(let a), .replyAndClose(let b)),
                (.startTLS(let a), .startTLS(let b)), (.receiveData(let a), .receiveData(let b)):
                return a == b
            case (.evaluatePolicy(let a), .evaluatePolicy(let b)): return a == b
            case (.verifyCredentials(let a), .verifyCredentials(let b)):
                return a.username == b.username && a.password == b.password && a.mechanism == b.mechanism
            case (.receiveBDATChunk(let a, let b, let c, let g), .receiveBDATChunk(let d, let e, let f, let h)):
                return a == d && b == e && c == f && g == h
            case (.storeMessage(let a), .storeMessage(let b)): return a == b
            case (.none, .none): return true
            default: return false
            }
        }
    }

    /// What a pending policy decision will complete.
    enum Pending: Sendable {
        case connect
        case helo(name: String, extended: Bool)
        case starttls
        case auth(user: String)
        case mail(Transaction)
        case rcpt(Transaction, Transaction.Recipient)
        case data(Transaction)
    }

    enum AuthStep: Sendable {
        case plain
        case loginUsername
        case loginPassword(username: String)
    }

    enum State: Sendable {
        /// Before the greeting: the connect phase is being decided.
        case connecting
        /// Between commands; `transaction` is the open one, if any.
        case ready
        case awaitingPolicy(Pending)
        case authExchange(AuthStep)
        case verifyingCredentials(user: String)
        case receivingData
        /// Between BDAT chunks (or reading one).
        case receivingBDAT(last: Bool, refused: SMTPReply?)
        case storing
        case startingTLS
        case closed
    }

    public let configuration: SMTPSessionConfiguration
    var state: State = .connecting

    // Session facts (RFC 5321 §4.1.4: reset by EHLO after STARTTLS, RFC 3207 §4.2).
    public internal(set) var helo: String?
    public internal(set) var extended = false
    public internal(set) var tlsActive: Bool
    public internal(set) var authenticatedUser: String?
    public internal(set) var transaction: Transaction?
    /// At the rcpt phase, the recipient being decided.
    public internal(set) var pendingRecipient: Mailbox?
    public internal(set) var errorCount = 0
    public internal(set) var junkCount = 0
    public internal(set) var authFailures = 0
    public internal(set) var messagesAccepted = 0
    var draining = false

    public init(configuration: SMTPSessionConfiguration, tlsActive: Bool = false) {
        self.configuration = configuration
        self.tlsActive = tlsActive
    }

    public var isClosed: Bool {
        if case .closed = state { return true }
        return false
    }

    /// Whether the session sits between commands outside a transaction (safe to close on drain).
    public var isIdle: Bool {
        if case .ready = state { return transaction == nil }
        return false
    }

    /// Whether the machine is waiting for a command line (not for policy, TLS, data or storage).
    public var acceptsCommands: Bool {
        switch state {
        case .ready, .authExchange: return true
        default: return false
        }
    }

    /// The transaction a pending policy decision is about: the one being opened at
    /// the mail phase, the one a recipient is added to at rcpt, the complete one at data.
    public var transactionUnderDecision: Transaction? {
        if case .awaitingPolicy(let pending) = state {
            switch pending {
            case .mail(let tx), .rcpt(let tx, _), .data(let tx): return tx
            default: break
            }
        }
        return transaction
    }

    public var inAuthExchange: Bool {
        if case .authExchange = state { return true }
        return false
    }

    /// Whether PIPELINING was negotiated (EHLO was used, RFC 2920).
    public var pipeliningNegotiated: Bool { extended }

    // MARK: - Events

    /// The connection is up: decide the connect phase before greeting.
    public mutating func connected() -> Action {
        state = .awaitingPolicy(.connect)
        return .evaluatePolicy(.connect)
    }

    /// The server is shutting down: idle sessions are told at once, busy ones after
    /// their transaction.
    public mutating func shutdownRequested() -> Action {
        draining = true
        if isIdle || inAuthExchange {
            state = .closed
            return .replyAndClose(.shuttingDown)
        }
        return .none
    }

    /// The per-command deadline passed.
    public mutating func timedOut() -> Action {
        state = .closed
        return .replyAndClose(.timeout)
    }

    /// A command line was too long to parse.
    public mutating func lineTooLong() -> Action {
        protocolError(.lineTooLong)
    }

    /// A command line, without CRLF.
    public mutating func receivedLine(_ line: ArraySlice<UInt8>) -> Action {
        switch state {
        case .authExchange(let step):
            return authResponse(step, String(decoding: line, as: UTF8.self))
        case .ready:
            break
        default:
            // The handler only feeds lines when `acceptsCommands`.
            return .none
        }
        let command: SMTPCommand
        do {
            command = try SMTPCommandParser().parse(line)
        } catch {
            if error.isForeignProtocol {
                state = .closed
                return .replyAndClose(error.reply)
            }
            return protocolError(error.reply)
        }
        return receivedCommand(command)
    }

    public mutating func receivedCommand(_ command: SMTPCommand) -> Action {
        guard case .ready = state else { return .none }
        switch command {
        case .helo(let name):
            return startPolicy(.helo(name: name, extended: false), .helo)
        case .ehlo(let name):
            return startPolicy(.helo(name: name, extended: true), .helo)
        case .mail(let sender, let params):
            return mail(sender, params)
        case .rcpt(let mailbox, let params, let hadRoute):
            return rcpt(mailbox, params, hadSourceRoute: hadRoute)
        case .data:
            return data()
        case .bdat(let size, let last):
            return bdat(size: size, last: last)
        case .rset:
            transaction = nil
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

    /// The pipeline's verdict for the pending phase.
    public mutating func policyDecided(_ verdict: PolicyVerdict) -> Action {
        guard case .awaitingPolicy(let pending) = state else { return .none }
        state = .ready
        if case .disconnect(let reply) = verdict {
            state = .closed
            return .replyAndClose(SMTPReply(policy: reply, defaultCode: 421))
        }
        let refusal: SMTPReply? = {
            switch verdict {
            case .reject(let r): return SMTPReply(policy: r, defaultCode: 550)
            case .defer(let r): return SMTPReply(policy: r, defaultCode: 450)
            default: return nil
            }
        }()
        switch pending {
        case .connect:
            if let refusal {
                state = .closed
                return .replyAndClose(refusal)
            }
            return .reply(SMTPReply(code: 220, enhancedCode: nil, lines: ["\(configuration.hostname) ESMTP Tollgate"]))
        case .helo(let name, let ext):
            if let refusal { return .reply(refusal) }
            helo = name
            extended = ext
            transaction = nil
            return .reply(ext ? ehloReply() : SMTPReply(250, nil, configuration.hostname))
        case .starttls:
            if let refusal {
                state = .closed
                return .replyAndClose(refusal)
            }
            // RFC 3207 §4.2: the client speaks first after the handshake.
            return .none
        case .auth(let user):
            if let refusal {
                authenticatedUser = nil
                return .reply(refusal)
            }
            authenticatedUser = user
            return .reply(SMTPReply(235, "2.7.0", "Authentication successful"))
        case .mail(let tx):
            if let refusal { return .reply(refusal) }
            transaction = tx
            return .reply(.senderOK)
        case .rcpt(var tx, let recipient):
            pendingRecipient = nil
            if let refusal { return .reply(refusal) }
            tx.recipients.append(recipient)
            transaction = tx
            return .reply(.recipientOK)
        case .data(let tx):
            if let refusal {
                transaction = nil
                return finishTransaction(refusal)
            }
            state = .storing
            return .storeMessage(tx)
        }
    }

    /// STARTTLS completed: forget everything learnt before it (RFC 3207 §4.2).
    public mutating func tlsEstablished() -> Action {
        guard case .startingTLS = state else { return .none }
        tlsActive = true
        helo = nil
        extended = false
        authenticatedUser = nil
        transaction = nil
        state = .awaitingPolicy(.starttls)
        return .evaluatePolicy(.starttls)
    }

    // MARK: - Commands

    private mutating func mail(_ sender: ReversePath, _ params: MailParameters) -> Action {
        guard helo != nil else { return protocolError(SMTPReply(503, "5.5.1", "Error: send HELO/EHLO first")) }
        guard transaction == nil else { return protocolError(SMTPReply(503, "5.5.1", "Error: nested MAIL command")) }
        if configuration.tls != .none, !tlsActive, configuration.auth == .required {
            return protocolError(SMTPReply(530, "5.7.0", "Must issue a STARTTLS command first"))
        }
        if configuration.auth == .required, authenticatedUser == nil {
            return protocolError(SMTPReply(530, "5.7.0", "Authentication required"))
        }
        if !extended, params != MailParameters() {
            return protocolError(SMTPReply(555, "5.5.4", "Error: MAIL parameters require EHLO"))
        }
        if let size = params.size, size > configuration.maxMessageSize {
            return .reply(SMTPReply(552, "5.3.4", "Error: message size exceeds fixed limit"))
        }
        return startPolicy(.mail(Transaction(sender: sender, parameters: params)), .mail)
    }

    private mutating func rcpt(_ mailbox: Mailbox, _ params: RecipientParameters, hadSourceRoute: Bool) -> Action {
        guard let tx = transaction else { return protocolError(SMTPReply(503, "5.5.1", "Error: need MAIL command")) }
        guard !tx.usingBDAT else { return protocolError(.badSequence) }
        if tx.recipients.count >= configuration.maxRecipients {
            return .reply(SMTPReply(452, "4.5.3", "Error: too many recipients"))
        }
        if hadSourceRoute || mailbox.hasRoutingCharacters {
            return .reply(SMTPReply(553, "5.7.1", "Error: sender-specified routing is not allowed"))
        }
        if mailbox.needsSMTPUTF8, !tx.parameters.smtpUTF8 {
            return .reply(SMTPReply(553, "5.6.7", "Error: this address requires SMTPUTF8"))
        }
        if !extended, params != RecipientParameters() {
            return protocolError(SMTPReply(555, "5.5.4", "Error: RCPT parameters require EHLO"))
        }
        pendingRecipient = mailbox
        return startPolicy(.rcpt(tx, Transaction.Recipient(mailbox: mailbox, parameters: params)), .rcpt)
    }

    private mutating func startTLS() -> Action {
        guard configuration.tls == .starttls else { return protocolError(SMTPReply(502, "5.5.1", "Error: STARTTLS not available")) }
        guard !tlsActive else { return protocolError(SMTPReply(554, "5.5.1", "Error: TLS already active")) }
        guard transaction == nil else { return protocolError(SMTPReply(503, "5.5.1", "Error: STARTTLS inside a mail transaction")) }
        state = .startingTLS
        return .startTLS(SMTPReply(220, "2.0.0", "Ready to start TLS"))
    }

    // MARK: - Helpers

    mutating func startPolicy(_ pending: Pending, _ phase: PolicyPhase) -> Action {
        state = .awaitingPolicy(pending)
        return .evaluatePolicy(phase)
    }

    mutating func finishTransaction(_ reply: SMTPReply) -> Action {
        if draining {
            state = .closed
            return .replyAndClose(SMTPReply(code: reply.code, enhancedCode: reply.enhancedCode, lines: reply.lines))
        }
        return .reply(reply)
    }

    mutating func protocolError(_ reply: SMTPReply) -> Action {
        errorCount += 1
        if errorCount >= configuration.maxErrors {
            state = .closed
            return .replyAndClose(.tooManyErrors)
        }
        return .reply(reply)
    }

    mutating func junk(_ reply: SMTPReply) -> Action {
        junkCount += 1
        if junkCount > configuration.maxJunkCommands {
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
        if configuration.tls == .starttls, !tlsActive { lines.append("STARTTLS") }
        if configuration.auth != .none, tlsActive, authenticatedUser == nil {
            lines.append("AUTH " + SASL.mechanisms.joined(separator: " "))
        }
        lines += ["ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8", "DSN", "CHUNKING"]
        return SMTPReply(code: 250, enhancedCode: nil, lines: lines)
    }
}

extension SMTPReply {
    /// A policy's reply with its code class checked: a stage cannot accept by
    /// answering 2xx to a refusal.
    public init(policy: PolicyReply, defaultCode: Int) {
        let valid = (400..<600).contains(policy.code) && policy.code / 100 == defaultCode / 100
        let code = valid ? policy.code : defaultCode
        self.init(code, policy.enhancedCode ?? SMTPReply.defaultEnhancedCode(for: code), policy.text)
    }
}
