import NIOCore
import SMTPCore
import Testing
import TollgatePolicy

@testable import SMTPServer

/// The session state machine driven directly, without networking.
@Suite struct SessionStateMachineTests {
    typealias Action = SMTPSessionStateMachine.Action

    func machine(tls: ListenerTLSMode = .starttls, auth: ListenerAuthMode = .optional, tlsActive: Bool = false, maxRecipients: Int = 100) -> SMTPSessionStateMachine {
        var m = SMTPSessionStateMachine(
            configuration: SMTPSessionConfiguration(hostname: "relay.test", tls: tls, auth: auth, maxMessageSize: 100_000, maxRecipients: maxRecipients),
            tlsActive: tlsActive
        )
        #expect(m.connected() == .evaluatePolicy(.connect))
        guard case .reply(let greeting) = m.policyDecided(.continue) else { Issue.record("no greeting"); return m }
        #expect(greeting.code == 220)
        return m
    }

    /// Sends a line; when the machine asks for policy, answers `continue`.
    @discardableResult
    func send(_ m: inout SMTPSessionStateMachine, _ line: String, verdict: PolicyVerdict = .continue) -> Action {
        var action = m.receivedLine(Array(line.utf8)[...])
        if case .evaluatePolicy = action { action = m.policyDecided(verdict) }
        return action
    }

    func code(_ action: Action) -> Int? {
        switch action {
        case .reply(let r), .replyAndClose(let r), .startTLS(let r), .receiveData(let r): return r.code
        default: return nil
        }
    }

    @Test func fullTransaction() {
        var m = machine(tls: .none, auth: .none)
        guard case .reply(let ehlo) = send(&m, "EHLO client.test") else { Issue.record("no EHLO reply"); return }
        #expect(ehlo.lines.contains("PIPELINING"))
        #expect(ehlo.lines.contains("CHUNKING"))
        #expect(ehlo.lines.contains("SIZE 100000"))
        #expect(!ehlo.lines.contains { $0.hasPrefix("AUTH") })
        #expect(!ehlo.lines.contains("STARTTLS"))
        #expect(code(send(&m, "MAIL FROM:<a@example.com>")) == 250)
        #expect(code(send(&m, "RCPT TO:<b@example.net>")) == 250)
        #expect(code(send(&m, "DATA")) == 354)
        let afterData = m.dataReceived(.ok)
        #expect(afterData == .evaluatePolicy(.data))
        guard case .storeMessage(let tx) = m.policyDecided(.continue) else { Issue.record("no store"); return }
        #expect(tx.recipients.map(\.mailbox.description) == ["b@example.net"])
        guard case .reply(let queued) = m.storeFinished(queueID: "Q1") else { Issue.record("no 250"); return }
        #expect(queued.code == 250 && queued.text.contains("Q1"))
        #expect(m.transaction == nil)
        #expect(code(send(&m, "QUIT")) == 221)
        #expect(m.isClosed)
    }

    @Test func storeFailureIsTemporary() {
        var m = machine(tls: .none, auth: .none)
        send(&m, "EHLO c")
        send(&m, "MAIL FROM:<a@example.com>")
        send(&m, "RCPT TO:<b@example.net>")
        send(&m, "DATA")
        _ = m.dataReceived(.ok)
        _ = m.policyDecided(.continue)
        #expect(code(m.storeFinished(queueID: nil)) == 451)
    }

    @Test func sequenceErrors() {
        var m = machine(tls: .none, auth: .none)
        #expect(code(send(&m, "MAIL FROM:<a@b.example>")) == 503)
        send(&m, "EHLO c")
        #expect(code(send(&m, "RCPT TO:<a@b.example>")) == 503)
        #expect(code(send(&m, "DATA")) == 503)
        send(&m, "MAIL FROM:<a@b.example>")
        #expect(code(send(&m, "MAIL FROM:<a@b.example>")) == 503)
        #expect(code(send(&m, "DATA")) == 554)
        #expect(code(send(&m, "RSET")) == 250)
        #expect(m.transaction == nil)
        #expect(code(send(&m, "VRFY x")) == 252)
        #expect(code(send(&m, "EXPN x")) == 502)
    }

    @Test func authNeverBeforeTLS() {
        var m = machine()
        guard case .reply(let ehlo) = send(&m, "EHLO c") else { Issue.record("no EHLO reply"); return }
        #expect(!ehlo.lines.contains { $0.hasPrefix("AUTH") })
        #expect(ehlo.lines.contains("STARTTLS"))
        #expect(code(send(&m, "AUTH PLAIN AGEAYg==")) == 538)
    }

    @Test func startTLSResetsSessionAndOffersAuth() {
        var m = machine()
        send(&m, "EHLO c")
        guard case .startTLS(let r) = send(&m, "STARTTLS") else { Issue.record("no STARTTLS"); return }
        #expect(r.code == 220)
        #expect(m.tlsEstablished() == .evaluatePolicy(.starttls))
        #expect(m.policyDecided(.continue) == .none)
        #expect(m.helo == nil)
        #expect(code(send(&m, "MAIL FROM:<a@b.example>")) == 503)
        guard case .reply(let ehlo) = send(&m, "EHLO c") else { Issue.record("no EHLO reply"); return }
        #expect(ehlo.lines.contains("AUTH PLAIN LOGIN"))
        #expect(!ehlo.lines.contains("STARTTLS"))
        #expect(code(send(&m, "STARTTLS")) == 554)
    }

    @Test func authPlainExchange() {
        var m = machine(tlsActive: true)
        send(&m, "EHLO c")
        guard case .verifyCredentials(let credentials) = send(&m, "AUTH PLAIN " + Base64.encode(Array("\u{0}alice\u{0}pw".utf8))) else {
            Issue.record("no verification"); return
        }
        #expect(credentials.username == "alice" && credentials.password == "pw")
        #expect(m.authenticationFinished(.success(SessionFacts(user: "alice"))) == .evaluatePolicy(.auth))
        #expect(code(m.policyDecided(.continue)) == 235)
        #expect(m.authenticatedUser == "alice")
        #expect(code(send(&m, "AUTH PLAIN " + Base64.encode(Array("\u{0}alice\u{0}pw".utf8)))) == 503)
    }

    @Test func authLoginExchangeAndCancel() {
        var m = machine(tlsActive: true)
        send(&m, "EHLO c")
        #expect(code(send(&m, "AUTH LOGIN")) == 334)
        #expect(code(send(&m, Base64.encode("bob"))) == 334)
        guard case .verifyCredentials(let c) = send(&m, Base64.encode("secret")) else { Issue.record("no verification"); return }
        #expect(c.username == "bob" && c.mechanism == "LOGIN")
        #expect(code(m.authenticationFinished(.failure(reason: "bad"))) == 535)
        #expect(code(send(&m, "AUTH LOGIN")) == 334)
        #expect(code(send(&m, "*")) == 501)
        #expect(code(send(&m, "AUTH CRAM-MD5")) == 504)
        #expect(code(send(&m, "AUTH PLAIN %%%")) == 501)
    }

    @Test func emptyPasswordNeverReachesVerifier() {
        var m = machine(tlsActive: true)
        send(&m, "EHLO c")
        let action = send(&m, "AUTH PLAIN " + Base64.encode(Array("\u{0}alice\u{0}".utf8)))
        #expect(code(action) == 535)
    }

    @Test func bruteForceClosesSession() {
        var m = machine(tlsActive: true)
        send(&m, "EHLO c")
        var last: Action = .none
        for _ in 0..<3 {
            _ = send(&m, "AUTH PLAIN " + Base64.encode(Array("\u{0}alice\u{0}wrong".utf8)))
            last = m.authenticationFinished(.failure(reason: "bad password"))
        }
        guard case .replyAndClose(let r) = last else { Issue.record("not closed"); return }
        #expect(r.code == 421)
    }

    @Test func backendDownIs454() {
        var m = machine(tlsActive: true)
        send(&m, "EHLO c")
        _ = send(&m, "AUTH PLAIN " + Base64.encode(Array("\u{0}alice\u{0}pw".utf8)))
        #expect(code(m.authenticationFinished(.temporaryFailure(reason: "ldap down"))) == 454)
    }

    @Test func authRequired() {
        var m = machine(auth: .required, tlsActive: true)
        send(&m, "EHLO c")
        #expect(code(send(&m, "MAIL FROM:<a@b.example>")) == 530)
    }

    @Test func recipientLimitAndRouting() {
        var m = machine(tls: .none, auth: .none, maxRecipients: 100)
        send(&m, "EHLO c")
        send(&m, "MAIL FROM:<a@b.example>")
        for i in 0..<100 { #expect(code(send(&m, "RCPT TO:<r\(i)@example.net>")) == 250) }
        #expect(code(send(&m, "RCPT TO:<r100@example.net>")) == 452)
        #expect(m.transaction?.recipients.count == 100)
        send(&m, "RSET")
        send(&m, "MAIL FROM:<a@b.example>")
        #expect(code(send(&m, "RCPT TO:<x%y.example@relay.example>")) == 553)
        #expect(code(send(&m, "RCPT TO:<@relay.example:x@y.example>")) == 553)
        #expect(code(send(&m, #"RCPT TO:<"x@y.example"@relay.example>"#)) == 553)
        #expect(code(send(&m, "RCPT TO:<y.example!x@relay.example>")) == 553)
        #expect(code(send(&m, "RCPT TO:<jörg@example.net>")) == 553)
    }

    @Test func sizeDeclaredTooLarge() {
        var m = machine(tls: .none, auth: .none)
        send(&m, "EHLO c")
        #expect(code(send(&m, "MAIL FROM:<a@b.example> SIZE=100001")) == 552)
    }

    @Test func policyRefusalsAtEachPhase() {
        var m = machine(tls: .none, auth: .none)
        send(&m, "EHLO c")
        #expect(code(send(&m, "MAIL FROM:<a@b.example>", verdict: .reject(PolicyReply(code: 553, enhancedCode: "5.7.1", text: "not yours")))) == 553)
        #expect(m.transaction == nil)
        send(&m, "MAIL FROM:<a@b.example>")
        #expect(code(send(&m, "RCPT TO:<c@d.example>", verdict: .defer(PolicyReply(code: 451, enhancedCode: "4.7.1", text: "slow down")))) == 451)
        #expect(m.transaction?.recipients.isEmpty == true)
        // A stage cannot "reject" with a 2xx code.
        #expect(code(send(&m, "RCPT TO:<c@d.example>", verdict: .reject(PolicyReply(code: 250, text: "sneaky")))) == 550)
        let action = send(&m, "RCPT TO:<c@d.example>", verdict: .disconnect(PolicyReply(code: 421, enhancedCode: "4.7.0", text: "bye")))
        guard case .replyAndClose(let r) = action else { Issue.record("not closed"); return }
        #expect(r.code == 421)
    }

    @Test func dataRefusedContentResetsTransaction() {
        var m = machine(tls: .none, auth: .none)
        send(&m, "EHLO c")
        send(&m, "MAIL FROM:<a@b.example>")
        send(&m, "RCPT TO:<c@d.example>")
        send(&m, "DATA")
        #expect(code(m.dataReceived(.smuggling)) == 550)
        #expect(m.transaction == nil)
        #expect(m.acceptsCommands)
    }

    @Test func bdatFlow() {
        var m = machine(tls: .none, auth: .none)
        send(&m, "EHLO c")
        #expect(send(&m, "BDAT 10") == .receiveBDATChunk(size: 10, last: false, discard: true, first: false))
        #expect(code(m.bdatChunkReceived(size: 10, outcome: .ok)) == 503)
        send(&m, "MAIL FROM:<a@b.example>")
        send(&m, "RCPT TO:<c@d.example>")
        #expect(send(&m, "BDAT 5") == .receiveBDATChunk(size: 5, last: false, discard: false, first: true))
        #expect(code(m.bdatChunkReceived(size: 5, outcome: .ok)) == 250)
        #expect(code(send(&m, "DATA")) == 503)
        #expect(send(&m, "BDAT 3 LAST") == .receiveBDATChunk(size: 3, last: true, discard: false, first: false))
        #expect(m.bdatChunkReceived(size: 3, outcome: .ok) == .evaluatePolicy(.data))
        guard case .storeMessage = m.policyDecided(.continue) else { Issue.record("no store"); return }
    }

    @Test func junkAndErrorLimits() {
        var m = machine(tls: .none, auth: .none)
        var last: Action = .none
        for _ in 0..<20 { last = send(&m, "BOGUS") }
        guard case .replyAndClose(let r) = last else { Issue.record("not closed"); return }
        #expect(r.code == 421)
        var n = machine(tls: .none, auth: .none)
        for _ in 0..<100 { #expect(code(send(&n, "NOOP")) == 250) }
        guard case .replyAndClose = send(&n, "NOOP") else { Issue.record("101st NOOP accepted"); return }
    }

    @Test func drainWaitsForTransaction() {
        var m = machine(tls: .none, auth: .none)
        send(&m, "EHLO c")
        send(&m, "MAIL FROM:<a@b.example>")
        #expect(m.shutdownRequested() == .none)
        send(&m, "RCPT TO:<c@d.example>")
        send(&m, "DATA")
        _ = m.dataReceived(.ok)
        _ = m.policyDecided(.continue)
        guard case .replyAndClose(let r) = m.storeFinished(queueID: "Q") else { Issue.record("not closed after drain"); return }
        #expect(r.code == 250)
    }

    @Test func connectRefused() {
        var m = SMTPSessionStateMachine(configuration: SMTPSessionConfiguration(hostname: "h"))
        _ = m.connected()
        guard case .replyAndClose(let r) = m.policyDecided(.reject(PolicyReply(code: 554, enhancedCode: "5.7.1", text: "go away"))) else {
            Issue.record("not closed"); return
        }
        #expect(r.code == 554)
    }
}

extension SessionStateMachineTests {
    /// Stages must see the sender at the mail phase and the recipients so far at rcpt,
    /// although the transaction is only opened once the verdict is in.
    @Test func policySeesTheTransactionUnderDecision() {
        var m = machine(tls: .none, auth: .none)
        send(&m, "EHLO c")
        #expect(m.receivedLine(Array("MAIL FROM:<a@b.example>".utf8)[...]) == .evaluatePolicy(.mail))
        #expect(m.transaction == nil)
        #expect(m.transactionUnderDecision?.sender.address == "a@b.example")
        _ = m.policyDecided(.continue)
        send(&m, "RCPT TO:<one@d.example>")
        #expect(m.receivedLine(Array("RCPT TO:<two@d.example>".utf8)[...]) == .evaluatePolicy(.rcpt))
        #expect(m.transactionUnderDecision?.recipients.map(\.mailbox.description) == ["one@d.example"])
        #expect(m.pendingRecipient?.description == "two@d.example")
    }
}
