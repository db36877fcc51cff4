import NIOCore
import SMTPCore
import Testing

@testable import SMTPServer

/// What the tests attach to sessions: a list of labels, to see which scope keeps what.
struct Notes: SessionAnnotations, Equatable {
    var labels: [String] = []
    init() {}
    init(_ labels: String...) { self.labels = labels }
    mutating func merge(_ other: Notes) { labels += other.labels }
    /// Refusals keep their record (labels starting with `trace`) and nothing else.
    func keptOnRefusal() -> Notes {
        var kept = Notes()
        kept.labels = labels.filter { $0.hasPrefix("trace") }
        return kept
    }
}

typealias Machine = SMTPSessionStateMachine<Notes>
typealias Action = Machine.Action

/// Helpers to drive a machine directly and read its actions.
enum Drive {
    static func machine(tls: ListenerTLSMode = .starttls, auth: ListenerAuthMode = .optional, tlsActive: Bool = false, maxRecipients: Int = 100, maxMessageSize: Int = 100_000) -> Machine {
        var m = Machine(
            configuration: SMTPSessionConfiguration(hostname: "relay.test", tls: tls, auth: auth, maxMessageSize: maxMessageSize, maxRecipients: maxRecipients),
            sessionID: "S1", clientAddress: "192.0.2.7", tlsActive: tlsActive
        )
        #expect(phase(m.connected()) == .connect)
        #expect(code(m.policyDecided(.proceed)) == 220)
        return m
    }

    /// Sends a line; when the machine asks for a decision, answers with `decision`.
    @discardableResult
    static func send(_ m: inout Machine, _ line: String, _ decision: SessionDecision<Notes> = .proceed, pipelined: Bool = false) -> Action {
        var action = m.receivedLine(Array(line.utf8)[...], pipelined: pipelined)
        if case .evaluatePolicy = action { action = m.policyDecided(decision) }
        return action
    }

    static func refuse(_ code: Int, _ enhanced: String, _ text: String) -> SessionDecision<Notes> {
        SessionDecision(.refuse(SMTPReply(code, enhanced, text)))
    }

    static func code(_ action: Action) -> Int? {
        switch action {
        case .reply(let r), .replyAndClose(let r), .startTLS(let r), .receiveData(let r, _): return r.code
        default: return nil
        }
    }

    static func closes(_ action: Action) -> Bool {
        if case .replyAndClose = action { return true }
        return false
    }

    static func phase(_ action: Action) -> SessionPhase? {
        if case .evaluatePolicy(let request) = action { return request.phase }
        return nil
    }

    static func content(_ text: String, outcome: DataReceiver.Outcome = .ok) -> SMTPFramer.Frame {
        let buffer = ByteBuffer(string: text)
        return .data(ReceivedContent(content: buffer, size: buffer.readableBytes, outcome: outcome, eightBit: text.utf8.contains { $0 >= 0x80 }))
    }

    /// Runs EHLO, MAIL, one RCPT and DATA; leaves the machine reading content.
    static func openData(_ m: inout Machine) {
        send(&m, "EHLO c")
        send(&m, "MAIL FROM:<a@b.example>")
        send(&m, "RCPT TO:<c@d.example>")
        #expect(code(send(&m, "DATA")) == 354)
    }
}

/// The session state machine driven directly, without networking.
@Suite struct SessionStateMachineTests {
    typealias D = Drive

    /// Lines over 998 octets are folded when the message is received: the data
    /// decision (the stages, a DKIM signer) sees the content that is stored and sent.
    @Test func longLinesAreFoldedBeforeTheDataDecision() {
        var m = D.machine(tls: .none, auth: .none)
        D.openData(&m)
        let long = String(repeating: "L", count: 2100)
        let afterData = m.received(D.content("Subject: long\r\n\r\n\(long)\r\nend\r\n"), pipelined: false)
        guard case .evaluatePolicy(let request) = afterData, let message = request.message else { Issue.record("no data decision"); return }
        let folded = "Subject: long\r\n\r\n" + String(repeating: "L", count: 998) + "\r\n " + String(repeating: "L", count: 997) + "\r\n " + String(repeating: "L", count: 105) + "\r\nend\r\n"
        #expect(String(buffer: message.content) == folded)
        #expect(message.size == folded.utf8.count)
        guard case .store(let store) = m.policyDecided(.proceed) else { Issue.record("no store"); return }
        #expect(String(buffer: store.message.content) == folded)
    }

    @Test func fullTransaction() {
        var m = D.machine(tls: .none, auth: .none)
        guard case .reply(let ehlo) = D.send(&m, "EHLO client.test") else { Issue.record("no EHLO reply"); return }
        #expect(ehlo.lines.contains("PIPELINING"))
        #expect(ehlo.lines.contains("CHUNKING"))
        #expect(ehlo.lines.contains("SIZE 100000"))
        #expect(!ehlo.lines.contains { $0.hasPrefix("AUTH") })
        #expect(!ehlo.lines.contains("STARTTLS"))
        #expect(D.code(D.send(&m, "MAIL FROM:<a@example.com>")) == 250)
        #expect(D.code(D.send(&m, "RCPT TO:<b@example.net>")) == 250)
        guard case .receiveData(let reply, let limits) = D.send(&m, "DATA") else { Issue.record("no 354"); return }
        #expect(reply.code == 354 && limits.maxSize == 100_000)
        let afterData = m.received(D.content("Subject: hi\r\n\r\nbody\r\n"), pipelined: false)
        guard case .evaluatePolicy(let request) = afterData, request.phase == .data else { Issue.record("no data decision"); return }
        #expect(request.message?.headers.first?.name == "Subject")
        #expect(request.message?.size == 21)
        guard case .store(let store) = m.policyDecided(.proceed) else { Issue.record("no store"); return }
        #expect(store.envelope.recipients.map(\.mailbox.description) == ["b@example.net"])
        #expect(store.message.content.readableBytes == 21)
        #expect(store.session.helo == "client.test")
        guard case .reply(let queued) = m.storeFinished(queueID: "Q1") else { Issue.record("no 250"); return }
        #expect(queued.code == 250 && queued.text.contains("Q1"))
        #expect(m.envelope == nil)
        #expect(m.messagesAccepted == 1)
        #expect(D.code(D.send(&m, "QUIT")) == 221)
        #expect(m.isClosed)
    }

    @Test func storeFailureIsTemporary() {
        var m = D.machine(tls: .none, auth: .none)
        D.openData(&m)
        _ = m.received(D.content("x\r\n"), pipelined: false)
        _ = m.policyDecided(.proceed)
        #expect(D.code(m.storeFinished(queueID: nil)) == 451)
        #expect(m.isIdle)
    }

    @Test func sequenceErrors() {
        var m = D.machine(tls: .none, auth: .none)
        #expect(D.code(D.send(&m, "MAIL FROM:<a@b.example>")) == 503)
        D.send(&m, "EHLO c")
        #expect(D.code(D.send(&m, "RCPT TO:<a@b.example>")) == 503)
        #expect(D.code(D.send(&m, "DATA")) == 503)
        D.send(&m, "MAIL FROM:<a@b.example>")
        #expect(D.code(D.send(&m, "MAIL FROM:<a@b.example>")) == 503)
        #expect(D.code(D.send(&m, "DATA")) == 554)
        #expect(D.code(D.send(&m, "RSET")) == 250)
        #expect(m.envelope == nil)
        #expect(D.code(D.send(&m, "VRFY x")) == 252)
        #expect(D.code(D.send(&m, "EXPN x")) == 502)
    }

    @Test func authNeverBeforeTLS() {
        var m = D.machine()
        guard case .reply(let ehlo) = D.send(&m, "EHLO c") else { Issue.record("no EHLO reply"); return }
        #expect(!ehlo.lines.contains { $0.hasPrefix("AUTH") })
        #expect(ehlo.lines.contains("STARTTLS"))
        #expect(D.code(D.send(&m, "AUTH PLAIN AGEAYg==")) == 538)
    }

    @Test func startTLSResetsSessionAndOffersAuth() {
        var m = D.machine()
        D.send(&m, "EHLO c")
        guard case .startTLS(let r) = D.send(&m, "STARTTLS") else { Issue.record("no STARTTLS"); return }
        #expect(r.code == 220)
        #expect(!m.acceptsCommands)
        #expect(D.phase(m.tlsEstablished()) == .starttls)
        guard case .none = m.policyDecided(.proceed) else { Issue.record("spoke first after TLS"); return }
        #expect(m.snapshot.helo == nil && m.snapshot.tls)
        #expect(D.code(D.send(&m, "MAIL FROM:<a@b.example>")) == 503)
        guard case .reply(let ehlo) = D.send(&m, "EHLO c") else { Issue.record("no EHLO reply"); return }
        #expect(ehlo.lines.contains("AUTH PLAIN LOGIN"))
        #expect(!ehlo.lines.contains("STARTTLS"))
        #expect(D.code(D.send(&m, "STARTTLS")) == 554)
    }

    /// The connection record: what the socket said at connect stays for the session
    /// (through STARTTLS); the TLS session arrives with the handshake.
    @Test func connectionAndTLSFactsReachEveryRequest() {
        var m = Machine(configuration: SMTPSessionConfiguration(hostname: "relay.test", tls: .starttls, auth: .optional), sessionID: "S1", clientAddress: "192.0.2.7")
        let facts = ConnectionFacts(clientPort: 40_001, serverAddress: "192.0.2.1", serverPort: 587, clientName: nil, clientPTR: "spoofed.example")
        guard case .evaluatePolicy(let connect) = m.connected(facts) else { Issue.record("no connect decision"); return }
        #expect(connect.session.connection == facts && connect.session.tlsSession == nil)
        _ = m.policyDecided(.proceed)
        D.send(&m, "EHLO c")
        _ = D.send(&m, "STARTTLS")
        let tls = TLSSessionFacts(protocolVersion: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256", cipherBits: 128, peerCertificate: nil)
        guard case .evaluatePolicy(let starttls) = m.tlsEstablished(tls) else { Issue.record("no starttls decision"); return }
        #expect(starttls.session.tlsSession == tls && starttls.session.connection == facts)
        _ = m.policyDecided(.proceed)
        guard case .evaluatePolicy(let helo) = m.receivedLine(Array("EHLO c".utf8)[...]) else { Issue.record("no helo decision"); return }
        #expect(helo.session.tlsSession == tls && helo.session.connection == facts)
    }

    @Test func theSASLMechanismIsKnownFromTheAuthDecisionOn() {
        var m = D.machine(tlsActive: true)
        D.send(&m, "EHLO c")
        _ = D.send(&m, "AUTH LOGIN")
        _ = D.send(&m, Base64.encode("bob"))
        guard case .verifyCredentials(let credentials, let verifying) = D.send(&m, Base64.encode("pw")) else { Issue.record("no verification"); return }
        #expect(credentials.mechanism == "LOGIN" && verifying.session.saslMethod == nil)
        guard case .evaluatePolicy(let auth) = m.authenticationFinished(AuthResult(.success(user: "bob"))) else { Issue.record("no auth decision"); return }
        #expect(auth.session.saslMethod == "LOGIN")
        #expect(D.code(m.policyDecided(.proceed)) == 235)
        #expect(m.snapshot.saslMethod == "LOGIN" && m.snapshot.authenticatedUser == "bob")
        // An implicit-TLS session learns its TLS facts without a reset.
        let tls = TLSSessionFacts(protocolVersion: "TLSv1.2", cipher: "ECDHE-RSA-AES128-GCM-SHA256", cipherBits: 128, peerCertificate: nil)
        m.implicitTLSEstablished(tls)
        #expect(m.snapshot.tlsSession == tls && m.snapshot.saslMethod == "LOGIN" && m.snapshot.helo == "c")
    }

    @Test func startTLSInsideATransactionIsRefused() {
        var m = D.machine()
        D.send(&m, "EHLO c")
        D.send(&m, "MAIL FROM:<a@b.example>")
        #expect(D.code(D.send(&m, "STARTTLS")) == 503)
    }

    @Test func authPlainExchange() {
        var m = D.machine(tlsActive: true)
        D.send(&m, "EHLO c")
        guard case .verifyCredentials(let credentials, let request) = D.send(&m, "AUTH PLAIN " + Base64.encode(Array("\u{0}alice\u{0}pw".utf8))) else {
            Issue.record("no verification"); return
        }
        #expect(credentials.username == "alice" && credentials.password == "pw" && credentials.mechanism == "PLAIN")
        #expect(request.phase == .auth && request.session.tls)
        #expect(D.phase(m.authenticationFinished(AuthResult(.success(user: "alice@corp")))) == .auth)
        #expect(D.code(m.policyDecided(.proceed)) == 235)
        #expect(m.snapshot.authenticatedUser == "alice@corp")
        #expect(D.code(D.send(&m, "AUTH PLAIN " + Base64.encode(Array("\u{0}alice\u{0}pw".utf8)))) == 503)
    }

    @Test func authLoginExchangeAndCancel() {
        var m = D.machine(tlsActive: true)
        D.send(&m, "EHLO c")
        #expect(D.code(D.send(&m, "AUTH LOGIN")) == 334)
        #expect(m.lineLimit == SMTPLimits.maxAuthLine)
        #expect(D.code(D.send(&m, Base64.encode("bob"))) == 334)
        guard case .verifyCredentials(let c, _) = D.send(&m, Base64.encode("secret")) else { Issue.record("no verification"); return }
        #expect(c.username == "bob" && c.mechanism == "LOGIN")
        #expect(D.code(m.authenticationFinished(AuthResult(.failure))) == 535)
        #expect(D.code(D.send(&m, "AUTH LOGIN")) == 334)
        #expect(D.code(D.send(&m, "*")) == 501)
        #expect(D.code(D.send(&m, "AUTH CRAM-MD5")) == 504)
        #expect(D.code(D.send(&m, "AUTH PLAIN %%%")) == 501)
    }

    @Test func emptyPasswordNeverReachesVerifier() {
        var m = D.machine(tlsActive: true)
        D.send(&m, "EHLO c")
        let action = D.send(&m, "AUTH PLAIN " + Base64.encode(Array("\u{0}alice\u{0}".utf8)))
        #expect(D.code(action) == 535)
    }

    @Test func bruteForceClosesSession() {
        var m = D.machine(tlsActive: true)
        D.send(&m, "EHLO c")
        var last: Action = .none
        for _ in 0..<3 {
            _ = D.send(&m, "AUTH PLAIN " + Base64.encode(Array("\u{0}alice\u{0}wrong".utf8)))
            last = m.authenticationFinished(AuthResult(.failure))
        }
        guard case .replyAndClose(let r) = last else { Issue.record("not closed"); return }
        #expect(r.code == 421)
    }

    @Test func backendDownIs454() {
        var m = D.machine(tlsActive: true)
        D.send(&m, "EHLO c")
        _ = D.send(&m, "AUTH PLAIN " + Base64.encode(Array("\u{0}alice\u{0}pw".utf8)))
        #expect(D.code(m.authenticationFinished(AuthResult(.temporaryFailure))) == 454)
    }

    @Test func authRequired() {
        var m = D.machine(auth: .required, tlsActive: true)
        D.send(&m, "EHLO c")
        #expect(D.code(D.send(&m, "MAIL FROM:<a@b.example>")) == 530)
    }

    @Test func recipientLimitAndRouting() {
        var m = D.machine(tls: .none, auth: .none, maxRecipients: 100)
        D.send(&m, "EHLO c")
        D.send(&m, "MAIL FROM:<a@b.example>")
        for i in 0..<100 { #expect(D.code(D.send(&m, "RCPT TO:<r\(i)@example.net>")) == 250) }
        #expect(D.code(D.send(&m, "RCPT TO:<r100@example.net>")) == 452)
        #expect(m.envelope?.recipients.count == 100)
        D.send(&m, "RSET")
        D.send(&m, "MAIL FROM:<a@b.example>")
        #expect(D.code(D.send(&m, "RCPT TO:<x%y.example@relay.example>")) == 553)
        #expect(D.code(D.send(&m, "RCPT TO:<@relay.example:x@y.example>")) == 553)
        #expect(D.code(D.send(&m, #"RCPT TO:<"x@y.example"@relay.example>"#)) == 553)
        #expect(D.code(D.send(&m, "RCPT TO:<y.example!x@relay.example>")) == 553)
        #expect(D.code(D.send(&m, "RCPT TO:<jörg@example.net>")) == 553)
    }

    /// RELIABILITY C15: octets that are not UTF-8 (a lone 0xff, a cut-off 0xc3) and NUL
    /// in commands get a 5xx and the session goes on.
    @Test func invalidOctetsInCommandsAreRefusedAndTheSessionGoesOn() {
        var m = D.machine(tls: .none, auth: .none)
        func send(_ bytes: [UInt8]) -> Int? {
            var action = m.receivedLine(bytes[...])
            if case .evaluatePolicy = action { action = m.policyDecided(.proceed) }
            return D.code(action)
        }
        #expect(send(Array("EHLO ".utf8) + [0xff, 0xfe]) == 501)
        #expect(send(Array("EHLO c".utf8)) == 250)
        for bad in [Array("MAIL FROM:<a".utf8) + [0xc3] + Array("@b.example>".utf8), Array("MAIL FROM:<a@b.example>".utf8) + [0], [0xff] + Array("MAIL".utf8)] {
            let code = send(bad)
            #expect(code.map { $0 >= 500 && $0 < 600 } == true, "\(bad): \(String(describing: code))")
        }
        #expect(send(Array("MAIL FROM:<a@b.example>".utf8)) == 250)
        #expect(send(Array("RCPT TO:<x".utf8) + [0xe9] + Array("@example.net>".utf8)) .map { $0 >= 500 } == true)
        #expect(send(Array("RCPT TO:<x@example.net>".utf8)) == 250)
    }

    @Test func addressLiteralRecipientsOnlyWhenAccepted() {
        var refusing = D.machine(tls: .none, auth: .none)
        D.send(&refusing, "EHLO c")
        D.send(&refusing, "MAIL FROM:<a@[192.0.2.1]>")
        #expect(D.code(D.send(&refusing, "RCPT TO:<x@[10.0.0.5]>")) == 553)
        #expect(D.code(D.send(&refusing, "RCPT TO:<x@[IPv6:2001:db8::1]>")) == 553)
        #expect(refusing.envelope?.recipients.isEmpty == true)

        var accepting = Machine(
            configuration: SMTPSessionConfiguration(hostname: "relay.test", acceptsAddressLiteralRecipients: true),
            sessionID: "S2", clientAddress: "192.0.2.7"
        )
        _ = accepting.connected()
        _ = accepting.policyDecided(.proceed)
        D.send(&accepting, "EHLO c")
        D.send(&accepting, "MAIL FROM:<a@b.example>")
        #expect(D.code(D.send(&accepting, "RCPT TO:<x@[10.0.0.5]>")) == 250)
        // Routing stays refused whatever the literal setting.
        #expect(D.code(D.send(&accepting, "RCPT TO:<x%y@[10.0.0.5]>")) == 553)
        #expect(accepting.envelope?.recipients.map(\.mailbox.domain) == ["[10.0.0.5]"])
    }

    @Test func sizeDeclaredTooLarge() {
        var m = D.machine(tls: .none, auth: .none)
        D.send(&m, "EHLO c")
        #expect(D.code(D.send(&m, "MAIL FROM:<a@b.example> SIZE=100001")) == 552)
    }

    @Test func policyRefusalsAtEachPhase() {
        var m = D.machine(tls: .none, auth: .none)
        D.send(&m, "EHLO c")
        #expect(D.code(D.send(&m, "MAIL FROM:<a@b.example>", D.refuse(553, "5.7.1", "not yours"))) == 553)
        #expect(m.envelope == nil)
        D.send(&m, "MAIL FROM:<a@b.example>")
        #expect(D.code(D.send(&m, "RCPT TO:<c@d.example>", D.refuse(451, "4.7.1", "slow down"))) == 451)
        #expect(m.envelope?.recipients.isEmpty == true)
        let action = D.send(&m, "RCPT TO:<c@d.example>", SessionDecision(.disconnect(SMTPReply(421, "4.7.0", "bye"))))
        guard case .replyAndClose(let r) = action else { Issue.record("not closed"); return }
        #expect(r.code == 421)
    }

    @Test func refusedHELOKeepsTheTransaction() {
        var m = D.machine(tls: .none, auth: .none)
        D.send(&m, "EHLO c")
        D.send(&m, "MAIL FROM:<a@b.example>")
        #expect(D.code(D.send(&m, "EHLO d", D.refuse(550, "5.7.1", "no"))) == 550)
        #expect(m.envelope?.sender.address == "a@b.example")
        #expect(D.code(D.send(&m, "EHLO d")) == 250)
        #expect(m.envelope == nil)
    }

    @Test func dataRefusedContentResetsTransaction() {
        var m = D.machine(tls: .none, auth: .none)
        D.openData(&m)
        #expect(D.code(m.received(D.content("x\r\n", outcome: .smuggling), pipelined: false)) == 550)
        #expect(m.envelope == nil)
        #expect(m.acceptsCommands)
    }

    /// RFC 5321 §6.3: 50 `Received:` headers are a loop (Postfix `hopcount_limit`).
    @Test func mailLoopsAreRefused() {
        var m = D.machine(tls: .none, auth: .none)
        D.openData(&m)
        let hops = String(repeating: "Received: from x by y; Mon, 1 Jan 2026 00:00:00 +0000\r\n", count: 50)
        #expect(D.code(m.received(D.content(hops + "\r\nbody\r\n"), pipelined: false)) == 554)
        var n = D.machine(tls: .none, auth: .none)
        D.openData(&n)
        #expect(D.phase(n.received(D.content(String(hops.dropFirst(55)) + "\r\nbody\r\n"), pipelined: false)) == .data)
    }

    @Test func bdatFlow() {
        var m = D.machine(tls: .none, auth: .none)
        D.send(&m, "EHLO c")
        guard case .receiveChunk(10, false, true, false, _) = D.send(&m, "BDAT 10") else { Issue.record("refused chunk not read"); return }
        #expect(D.code(m.received(.chunk(size: 10, last: false, content: nil), pipelined: false)) == 503)
        D.send(&m, "MAIL FROM:<a@b.example>")
        D.send(&m, "RCPT TO:<c@d.example>")
        guard case .receiveChunk(5, false, false, true, _) = D.send(&m, "BDAT 5") else { Issue.record("first chunk"); return }
        let partial = ReceivedContent(content: ByteBuffer(), size: 5, outcome: .ok, eightBit: false)
        #expect(D.code(m.received(.chunk(size: 5, last: false, content: partial), pipelined: false)) == 250)
        #expect(D.code(D.send(&m, "DATA")) == 503)
        #expect(D.code(D.send(&m, "RCPT TO:<e@d.example>")) == 503)
        guard case .receiveChunk(3, true, false, false, _) = D.send(&m, "BDAT 3 LAST") else { Issue.record("last chunk"); return }
        let whole = ReceivedContent(content: ByteBuffer(string: "abcdefgh\r\n"), size: 10, outcome: .ok, eightBit: false)
        #expect(D.phase(m.received(.chunk(size: 3, last: true, content: whole), pipelined: false)) == .data)
        guard case .store(let store) = m.policyDecided(.proceed) else { Issue.record("no store"); return }
        #expect(store.message.size == 10)
    }

    @Test func junkAndErrorLimits() {
        var m = D.machine(tls: .none, auth: .none)
        var last: Action = .none
        for _ in 0..<20 { last = D.send(&m, "BOGUS") }
        guard case .replyAndClose(let r) = last else { Issue.record("not closed"); return }
        #expect(r.code == 421)
        var n = D.machine(tls: .none, auth: .none)
        for _ in 0..<100 { #expect(D.code(D.send(&n, "NOOP")) == 250) }
        #expect(D.closes(D.send(&n, "NOOP")))
    }

    @Test func drainWaitsForTransaction() {
        var m = D.machine(tls: .none, auth: .none)
        D.send(&m, "EHLO c")
        D.send(&m, "MAIL FROM:<a@b.example>")
        guard case .none = m.shutdownRequested() else { Issue.record("closed a busy session"); return }
        D.send(&m, "RCPT TO:<c@d.example>")
        D.send(&m, "DATA")
        _ = m.received(D.content("x\r\n"), pipelined: false)
        _ = m.policyDecided(.proceed)
        guard case .replyAndClose(let r) = m.storeFinished(queueID: "Q") else { Issue.record("not closed after drain"); return }
        #expect(r.code == 250)
        var idle = D.machine(tls: .none, auth: .none)
        guard case .replyAndClose(let bye) = idle.shutdownRequested() else { Issue.record("idle session kept"); return }
        #expect(bye.code == 421)
    }

    @Test func connectRefused() {
        var m = Machine(configuration: SMTPSessionConfiguration(hostname: "h"))
        _ = m.connected()
        guard case .replyAndClose(let r) = m.policyDecided(D.refuse(554, "5.7.1", "go away")) else {
            Issue.record("not closed"); return
        }
        #expect(r.code == 554)
    }
}
