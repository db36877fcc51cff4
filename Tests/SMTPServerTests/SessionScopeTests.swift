import NIOCore
import SMTPCore
import Testing

@testable import SMTPServer

/// What the machine keeps, and for how long: annotations and limits per scope
/// (connection, session since STARTTLS, transaction), requests that carry the
/// transaction under decision, and the pipelining rules.
@Suite struct SessionScopeTests {
    typealias D = Drive

    func noted(_ label: String) -> SessionDecision<Notes> { SessionDecision(.proceed, annotations: Notes(label)) }

    @Test func requestsCarryTheTransactionUnderDecision() {
        var m = D.machine(tls: .none, auth: .none)
        D.send(&m, "EHLO c")
        guard case .evaluatePolicy(let mail) = m.receivedLine(Array("MAIL FROM:<a@b.example>".utf8)[...]) else { Issue.record("no mail decision"); return }
        #expect(mail.phase == .mail && mail.envelope?.sender.address == "a@b.example")
        #expect(m.envelope == nil)
        _ = m.policyDecided(.proceed)
        D.send(&m, "RCPT TO:<one@d.example>")
        guard case .evaluatePolicy(let rcpt) = m.receivedLine(Array("RCPT TO:<two@d.example>".utf8)[...]) else { Issue.record("no rcpt decision"); return }
        #expect(rcpt.envelope?.recipients.map(\.mailbox.description) == ["one@d.example"])
        #expect(rcpt.recipient?.mailbox.description == "two@d.example")
        #expect(rcpt.session.sessionID == "S1" && rcpt.session.clientAddress == "192.0.2.7")
    }

    @Test func rsetDropsTheTransactionsAnnotationsOnly() {
        var m = Machine(configuration: SMTPSessionConfiguration(hostname: "h"), sessionID: "S", clientAddress: "192.0.2.1")
        _ = m.connected()
        _ = m.policyDecided(noted("connect"))
        D.send(&m, "EHLO c", noted("helo"))
        D.send(&m, "MAIL FROM:<a@b.example>", noted("mail-1"))
        D.send(&m, "RCPT TO:<c@d.example>", SessionDecision(.refuse(SMTPReply(550, "5.1.1", "no")), annotations: Notes("refused-rcpt")))
        D.send(&m, "RSET")
        guard case .evaluatePolicy(let request) = m.receivedLine(Array("MAIL FROM:<a@b.example>".utf8)[...]) else { Issue.record("no decision"); return }
        #expect(request.annotations.labels == ["connect", "helo"])
        _ = m.policyDecided(noted("mail-2"))
        D.send(&m, "RCPT TO:<c@d.example>", noted("rcpt"))
        D.send(&m, "DATA")
        _ = m.received(D.content("x\r\n"), pipelined: false)
        guard case .store(let store) = m.policyDecided(noted("data")) else { Issue.record("no store"); return }
        #expect(store.annotations.labels == ["connect", "helo", "mail-2", "rcpt", "data"])
        _ = m.storeFinished(queueID: "Q")
        guard case .evaluatePolicy(let next) = m.receivedLine(Array("MAIL FROM:<a@b.example>".utf8)[...]) else { Issue.record("no decision"); return }
        #expect(next.annotations.labels == ["connect", "helo"])
    }

    /// RFC 3207 §4.2: what the client said before STARTTLS is forgotten; what the
    /// server knew of the client at connect (its address, its department) is not.
    @Test func startTLSDropsWhatTheClientSaid() {
        var m = Machine(configuration: SMTPSessionConfiguration(hostname: "h", tls: .starttls), sessionID: "S", clientAddress: "192.0.2.1")
        _ = m.connected()
        _ = m.policyDecided(noted("connect"))
        D.send(&m, "EHLO c", noted("helo"))
        _ = D.send(&m, "STARTTLS")
        guard case .evaluatePolicy(let starttls) = m.tlsEstablished() else { Issue.record("no starttls decision"); return }
        #expect(starttls.annotations.labels == ["connect"])
        _ = m.policyDecided(noted("tls"))
        guard case .evaluatePolicy(let helo) = m.receivedLine(Array("EHLO c".utf8)[...]) else { Issue.record("no helo decision"); return }
        #expect(helo.annotations.labels == ["connect", "tls"])
    }

    @Test func aDecisionsSizeLimitAppliesToMailAndData() {
        var m = D.machine(tls: .none, auth: .none, maxMessageSize: 100_000)
        D.send(&m, "EHLO c", SessionDecision(.proceed, limits: SessionLimits(maxMessageSize: 10_000)))
        #expect(D.code(D.send(&m, "MAIL FROM:<a@b.example> SIZE=20000")) == 552)
        D.send(&m, "MAIL FROM:<a@b.example> SIZE=5000")
        D.send(&m, "RCPT TO:<c@d.example>")
        guard case .receiveData(_, let limits) = D.send(&m, "DATA") else { Issue.record("no 354"); return }
        #expect(limits.maxSize == 10_000)
        // A larger department limit never raises the listener's.
        var n = D.machine(tls: .none, auth: .none, maxMessageSize: 100_000)
        D.send(&n, "EHLO c", SessionDecision(.proceed, limits: SessionLimits(maxMessageSize: 1_000_000)))
        #expect(D.code(D.send(&n, "MAIL FROM:<a@b.example> SIZE=200000")) == 552)
    }

    /// RFC 2920 §3.1 and RELIABILITY A2.
    @Test func pipeliningRules() {
        var m = D.machine(tls: .none, auth: .none)
        D.send(&m, "EHLO c")
        #expect(D.code(D.send(&m, "MAIL FROM:<a@b.example>", pipelined: true)) == 250)
        #expect(D.code(D.send(&m, "RCPT TO:<c@d.example>", pipelined: true)) == 250)
        for verb in ["DATA", "NOOP", "EHLO x", "HELO x", "VRFY x", "EXPN x", "TURN"] {
            var n = D.machine(tls: .none, auth: .none)
            D.send(&n, "EHLO c")
            let action = D.send(&n, verb, pipelined: true)
            guard case .replyAndClose(let reply) = action else { Issue.record("\(verb) may end a group only"); continue }
            #expect(reply.code == 554 && reply.enhancedCode == "5.5.0")
        }
        // HELO: no pipelining at all, not even after the final dot.
        var h = D.machine(tls: .none, auth: .none)
        D.send(&h, "HELO c")
        #expect(D.closes(D.send(&h, "MAIL FROM:<a@b.example>", pipelined: true)))
        var d = D.machine(tls: .none, auth: .none)
        D.send(&d, "HELO c")
        D.send(&d, "MAIL FROM:<a@b.example>")
        D.send(&d, "RCPT TO:<c@d.example>")
        D.send(&d, "DATA")
        #expect(D.closes(d.received(D.content("x\r\n"), pipelined: true)))
    }

    /// An auth-phase refusal after good credentials leaves the session as if the
    /// login never happened: no user, no facts, no limits — only the record.
    @Test func aRefusedLoginLeavesOnlyItsRecord() {
        var m = D.machine(tlsActive: true, maxMessageSize: 100_000)
        D.send(&m, "EHLO c")
        guard case .verifyCredentials = D.send(&m, "AUTH PLAIN " + Base64.encode(Array("\u{0}alice\u{0}pw".utf8))) else { Issue.record("no verification"); return }
        let verified = AuthResult<Notes>(.success(user: "alice"), annotations: Notes("user-alice", "trace-verified"), limits: SessionLimits(maxMessageSize: 1000))
        guard case .evaluatePolicy(let auth) = m.authenticationFinished(verified) else { Issue.record("no auth decision"); return }
        #expect(auth.annotations.labels.contains("user-alice"))
        #expect(D.code(m.policyDecided(SessionDecision(.refuse(SMTPReply(535, "5.7.8", "not today")), annotations: Notes("dept-x", "trace-refused")))) == 535)
        #expect(m.snapshot.authenticatedUser == nil)
        guard case .evaluatePolicy(let mail) = m.receivedLine(Array("MAIL FROM:<a@b.example> SIZE=5000".utf8)[...]) else { Issue.record("limit applied"); return }
        #expect(mail.annotations.labels == ["trace-verified", "trace-refused"])
    }

    @Test func aRefusedRecipientLeavesOnlyItsRecord() {
        var m = D.machine(tls: .none, auth: .none)
        D.send(&m, "EHLO c")
        D.send(&m, "MAIL FROM:<a@b.example>")
        D.send(&m, "RCPT TO:<c@d.example>", SessionDecision(.refuse(SMTPReply(550, "5.1.1", "no")), annotations: Notes("dept-y", "trace-rcpt"), limits: SessionLimits(maxMessageSize: 10)))
        D.send(&m, "RCPT TO:<e@d.example>")
        guard case .receiveData(_, let limits) = D.send(&m, "DATA") else { Issue.record("no 354"); return }
        #expect(limits.maxSize == 100_000)
        _ = m.received(D.content("x\r\n"), pipelined: false)
        guard case .store(let store) = m.policyDecided(.proceed) else { Issue.record("no store"); return }
        #expect(store.annotations.labels == ["trace-rcpt"])
    }

    /// Shutting down: a session that is back between transactions starts nothing new.
    @Test func aDrainingSessionStartsNoNewTransaction() {
        var m = D.machine(tls: .none, auth: .none)
        D.send(&m, "EHLO c")
        D.send(&m, "MAIL FROM:<a@b.example>")
        guard case .none = m.shutdownRequested() else { Issue.record("closed mid-transaction"); return }
        #expect(D.code(D.send(&m, "RSET")) == 250)
        let next = D.send(&m, "MAIL FROM:<a@b.example>")
        guard case .replyAndClose(let reply) = next else { Issue.record("new transaction while draining"); return }
        #expect(reply.code == 421)
    }

    /// RFC 3030 §3: a BDAT whose size cannot be read leaves the chunk's end unknown.
    @Test func anUnreadableBDATClosesTheSession() {
        for line in ["BDAT 99999999999999999999", "BDAT -1", "BDAT 10 LAST x", "bdat x"] {
            var m = D.machine(tls: .none, auth: .none)
            D.send(&m, "EHLO c")
            #expect(D.closes(D.send(&m, line)), "\(line)")
        }
    }

    @Test func startTLSWithoutTLSGoesOnInPlaintext() {
        var m = D.machine()
        D.send(&m, "EHLO c")
        guard case .startTLS = D.send(&m, "STARTTLS") else { Issue.record("no STARTTLS"); return }
        #expect(D.code(m.tlsUnavailable()) == 454)
        #expect(m.acceptsCommands && D.code(D.send(&m, "NOOP")) == 250)
    }
}
