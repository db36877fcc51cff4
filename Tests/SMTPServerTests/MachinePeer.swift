import NIOCore
import SMTPCore
import TestSupport

@testable import SMTPServer

/// A transcript's server side without networking: the client's bytes go through a
/// real ``SMTPFramer`` into the session state machine exactly as
/// `SMTPServerHandler.process` feeds them, and the machine's actions are carried out
/// at once — decisions from the scenario's `policy` lines (else proceed), a test
/// verifier (`alice` / `secret`), a store that hands out queue ids, STARTTLS as a
/// handshake that completes as soon as the buffered plaintext is dropped.
struct MachinePeer: TranscriptPeer {
    private var machine: Machine
    private var framer = SMTPFramer()
    /// Replies not read yet, with whether the connection closes after each.
    private var replies: [(reply: SMTPTestReply, closes: Bool)] = []
    private var lastClosed = false
    private var policies: [SessionPhase: SessionDecision<Notes>] = [:]
    private var verifierAvailable = true
    private var storeSucceeds = true
    private var stored = 0
    /// Broken promises found on the way (a stored message that is not canonical).
    private(set) var violations: [String] = []

    init(_ config: Transcript.Config) {
        let configuration = SMTPSessionConfiguration(
            hostname: "relay.test",
            tls: ListenerTLSMode(rawValue: config.tls) ?? .none,
            auth: ListenerAuthMode(rawValue: config.auth) ?? .none,
            maxMessageSize: config.maxMessageSize,
            maxRecipients: config.maxRecipients,
            bareNewline: config.bareNewline == "reject" ? .reject : .normalize,
            authAfterHelo: config.authAfterHelo,
            strictEnvelopes: config.strictEnvelopes
        )
        machine = Machine(configuration: configuration, sessionID: "T1", clientAddress: "127.0.0.1", tlsActive: config.tls == "implicit")
    }

    private var connected = false

    /// The connection opens with the first line of the dialogue, so `policy connect`
    /// lines before it apply: the connect phase is decided and the greeting sent.
    private mutating func connectIfNeeded() {
        guard !connected else { return }
        connected = true
        perform(machine.connected())
    }

    // MARK: - TranscriptPeer

    mutating func write(_ bytes: [UInt8]) throws {
        connectIfNeeded()
        var buffer = ByteBuffer(bytes: bytes)
        framer.append(&buffer)
        while !machine.isClosed, machine.acceptsCommands || machine.acceptsContent,
            let frame = framer.next(lineLimit: machine.lineLimit)
        {
            perform(machine.received(frame, pipelined: framer.bufferedBytes > 0))
        }
    }

    mutating func nextReply() throws -> SMTPTestReply {
        connectIfNeeded()
        guard !replies.isEmpty else {
            throw TestSupportError(.timedOut, "the server sent no reply (it waits for more input)")
        }
        let next = replies.removeFirst()
        lastClosed = next.closes
        return next.reply
    }

    mutating func closedAfterReply(expected: Bool) -> Bool { lastClosed }

    mutating func unreadReplies() -> [SMTPTestReply] { replies.map(\.reply) }

    mutating func apply(_ step: Transcript.Step.Kind) throws {
        switch step {
        case .policy(let name, let verdict):
            guard let phase = SessionPhase(rawValue: name) else { throw TestSupportError(.notFound, "no phase \(name)") }
            policies[phase] = Self.decision(verdict)
        case .verifier(let available):
            verifierAvailable = available
        case .store(let succeeds):
            storeSucceeds = succeeds
        case .send, .expect:
            break
        }
    }

    // MARK: - Actions

    private mutating func perform(_ action: Machine.Action) {
        switch action {
        case .none:
            break
        case .reply(let reply):
            replies.append((Self.wire(reply), false))
        case .replyAndClose(let reply):
            replies.append((Self.wire(reply), true))
        case .evaluatePolicy(let request):
            perform(machine.policyDecided(policies[request.phase] ?? .proceed))
        case .verifyCredentials(let credentials, _):
            perform(machine.authenticationFinished(verify(credentials)))
        case .startTLS(let reply):
            replies.append((Self.wire(reply), false))
            framer.ignoreInput()
            framer.resumeCommands()
            perform(machine.tlsEstablished())
        case .receiveData(let reply, let limits):
            framer.expectData(limits)
            replies.append((Self.wire(reply), false))
        case .receiveChunk(let size, let last, let discard, let first, let limits):
            framer.expectChunk(size: size, last: last, discard: discard, first: first, limits: limits)
        case .store(let request):
            check(request.message)
            guard storeSucceeds else {
                perform(machine.storeFinished(queueID: nil))
                return
            }
            stored += 1
            perform(machine.storeFinished(queueID: "TQ\(stored)"))
        }
    }

    private func verify(_ credentials: SASLCredentials) -> AuthResult<Notes> {
        guard verifierAvailable else { return AuthResult(.temporaryFailure) }
        guard credentials.username == "alice", credentials.password == "secret" else { return AuthResult(.failure) }
        return AuthResult(.success(user: "alice"))
    }

    /// README "End of DATA": what is stored is canonical CRLF text without NUL.
    private mutating func check(_ message: ReceivedMessage) {
        let bytes = Array(message.content.readableBytesView)
        for (index, byte) in bytes.enumerated() {
            let bareCR = byte == 13 && (index + 1 == bytes.count || bytes[index + 1] != 10)
            let bareLF = byte == 10 && (index == 0 || bytes[index - 1] != 13)
            if byte == 0 || bareCR || bareLF {
                violations.append("stored message has a \(byte == 0 ? "NUL" : bareCR ? "bare CR" : "bare LF") at offset \(index)")
                return
            }
        }
    }

    private static func decision(_ verdict: Transcript.Verdict) -> SessionDecision<Notes> {
        switch verdict {
        case .proceed: return .proceed
        case .refuse(let code, let enhanced, let text): return SessionDecision(.refuse(SMTPReply(code, enhanced, text)))
        case .disconnect(let code, let enhanced, let text): return SessionDecision(.disconnect(SMTPReply(code, enhanced, text)))
        }
    }

    /// The reply as a client reads it off the wire.
    private static func wire(_ reply: SMTPReply) -> SMTPTestReply {
        let lines = reply.wireString.split(separator: "\r\n").map { String($0.dropFirst(4)) }
        return SMTPTestReply(code: reply.code, lines: lines)
    }
}
