import NIOCore
import SMTPCore
import Testing

@testable import SMTPClient

/// TLS, AUTH, extension refusals and byte-exact content against the scripted upstream.
@Suite(.timeLimit(.minutes(1)))
struct FakeUpstreamTLSTests {
    @Test(arguments: ["localhost", "127.0.0.1"])
    func startTLSWithVerification(host: String) async throws {
        let upstream = try await FakeUpstream.start(["starttls": true], tls: true)
        defer { upstream.stop() }
        let connection = try await Client.connect(port: upstream.port, host: host, try Client.configuration(tls: .required))
        #expect(connection.isTLSActive)
        #expect(!connection.capabilities.contains("STARTTLS"))
        let report = try await connection.send(Client.envelope(["a@example.test"]), content: Client.message)
        #expect(report.dataReply?.code == 250)
        await connection.close()
        let session = upstream.session(1)
        #expect(session.hasPrefix("EHLO relay.tollgate.test\r\nSTARTTLS\r\n--- TLS ---\r\nEHLO relay.tollgate.test\r\nMAIL FROM:"))
    }

    @Test func selfSignedCertificateRefused() async throws {
        let upstream = try await FakeUpstream.start(["starttls": true], tls: true, selfSigned: true)
        defer { upstream.stop() }
        await expectClientError({ if case .tlsHandshake = $0 { return !$0.isPermanent } else { return false } }) {
            _ = try await Client.connect(port: upstream.port, host: "localhost", try Client.configuration(tls: .opportunistic))
        }
        // Nothing after STARTTLS: no fallback to plaintext (RELIABILITY F7).
        try await Task.sleep(for: .milliseconds(100))
        #expect(upstream.session(1) == "EHLO relay.tollgate.test\r\nSTARTTLS\r\n")
    }

    @Test func untrustedCAWithSystemRoots() async throws {
        let upstream = try await FakeUpstream.start(["starttls": true], tls: true)
        defer { upstream.stop() }
        await expectClientError({ if case .tlsHandshake = $0 { return true } else { return false } }) {
            _ = try await Client.connect(port: upstream.port, host: "localhost", try Client.configuration(tls: .required, ca: false))
        }
    }

    @Test func verificationOffAcceptsSelfSigned() async throws {
        let upstream = try await FakeUpstream.start(["starttls": true], tls: true, selfSigned: true)
        defer { upstream.stop() }
        let connection = try await Client.connect(port: upstream.port, try Client.configuration(tls: .required, verify: false, ca: false))
        #expect(connection.isTLSActive)
        await connection.close()
    }

    @Test func implicitTLS() async throws {
        let upstream = try await FakeUpstream.start(["implicit_tls": true], tls: true)
        defer { upstream.stop() }
        let connection = try await Client.connect(port: upstream.port, host: "localhost", try Client.configuration(tls: .implicit))
        #expect(connection.isTLSActive)
        let report = try await connection.send(Client.envelope(["a@example.test"]), content: Client.message)
        #expect(report.dataReply?.code == 250)
        await connection.close()
        #expect(upstream.session(1).hasPrefix("EHLO relay.tollgate.test\r\nMAIL FROM:"))
    }

    @Test func implicitTLSVerificationFailure() async throws {
        let upstream = try await FakeUpstream.start(["implicit_tls": true], tls: true, selfSigned: true)
        defer { upstream.stop() }
        await expectClientError({ if case .tlsHandshake = $0 { return true } else { return false } }) {
            _ = try await Client.connect(port: upstream.port, host: "localhost", try Client.configuration(tls: .implicit))
        }
    }

    /// RELIABILITY C7: `220 go ahead\r\n250 injected` in one write; the injected lines must
    /// not be read as the reply to the post-TLS EHLO.
    @Test func startTLSResponseInjectionIgnored() async throws {
        let upstream = try await FakeUpstream.start(
            ["starttls": true, "starttls_inject": "250-injected\r\n250 SIZE 10\r\n"], tls: true
        )
        defer { upstream.stop() }
        let connection = try await Client.connect(port: upstream.port, host: "localhost", try Client.configuration(tls: .required))
        #expect(connection.isTLSActive)
        #expect(connection.maxSize == 10_240_000)
        #expect(connection.capabilities.contains("PIPELINING"))
        let report = try await connection.send(Client.envelope(["a@example.test", "b@example.test"]), content: Client.message)
        #expect(report.recipientReplies.map(\.code) == [250, 250])
        #expect(report.dataReply == SMTPReply(250, "2.0.0", "queued"))
        await connection.close()
    }

    /// Plaintext that arrives after the 220 but in a later segment reaches the TLS layer,
    /// which fails the handshake rather than passing it up.
    @Test func delayedInjectionFailsTheHandshake() async throws {
        let upstream = try await FakeUpstream.start(["starttls": true, "starttls_inject_delayed": "250 injected\r\n"], tls: true)
        defer { upstream.stop() }
        await expectClientError({ if case .tlsHandshake = $0 { return true } else { return false } }) {
            _ = try await Client.connect(port: upstream.port, host: "localhost", try Client.configuration(tls: .required))
        }
    }

    @Test func startTLSRefused() async throws {
        let upstream = try await FakeUpstream.start(["starttls": true, "starttls_reply": "454 4.7.0 TLS not available"], tls: true)
        defer { upstream.stop() }
        await expectClientError({ $0 == .tlsRequiredButUnavailable }) {
            _ = try await Client.connect(port: upstream.port, host: "localhost", try Client.configuration(tls: .required))
        }
        let connection = try await Client.connect(port: upstream.port, host: "localhost", try Client.configuration(tls: .opportunistic))
        #expect(!connection.isTLSActive)
        #expect(try await connection.send(Client.envelope(["a@example.test"]), content: Client.message).dataReply?.code == 250)
        await connection.close()
    }
}

@Suite(.timeLimit(.minutes(1)))
struct FakeUpstreamAuthTests {
    static let auth: [String: any Sendable] = ["user": "relay", "password": "s3cret pw"]

    @Test(arguments: [["PLAIN", "LOGIN"], ["LOGIN"]])
    func authenticates(mechanisms: [String]) async throws {
        let upstream = try await FakeUpstream.start(["starttls": true, "auth": Self.auth, "auth_mechanisms": mechanisms], tls: true)
        defer { upstream.stop() }
        let connection = try await Client.connect(
            port: upstream.port, host: "localhost",
            try Client.configuration(tls: .required, username: "relay", password: "s3cret pw")
        )
        #expect(try await connection.send(Client.envelope(["a@example.test"]), content: Client.message).dataReply?.code == 250)
        await connection.close()
        #expect(upstream.authLog == "\(mechanisms[0]) ok\n")
    }

    @Test func wrongPasswordIsTemporary() async throws {
        let upstream = try await FakeUpstream.start(["starttls": true, "auth": Self.auth], tls: true)
        defer { upstream.stop() }
        await expectClientError({
            if case .authFailed(let reply) = $0 { return reply.code == 535 && !$0.isPermanent && $0.reply?.code == 451 }
            return false
        }) {
            _ = try await Client.connect(
                port: upstream.port, host: "localhost",
                try Client.configuration(tls: .required, username: "relay", password: "wrong")
            )
        }
    }

    /// Credentials never go out in plaintext, even when the server would take them.
    @Test func noCredentialsWithoutTLS() async throws {
        let upstream = try await FakeUpstream.start(["auth": Self.auth, "auth_plaintext": true])
        defer { upstream.stop() }
        await expectClientError({ $0 == .tlsRequiredButUnavailable }) {
            _ = try await Client.connect(port: upstream.port, try Client.configuration(tls: .opportunistic, username: "relay", password: "s3cret pw"))
        }
        await expectClientError({ $0 == .tlsRequiredButUnavailable }) {
            _ = try await Client.connect(port: upstream.port, try Client.configuration(tls: .none, username: "relay", password: "s3cret pw"))
        }
        try await Task.sleep(for: .milliseconds(100))
        #expect(!upstream.session(1).contains("AUTH"))
        #expect(!upstream.session(2).contains("AUTH"))
        #expect(upstream.authLog.isEmpty)
    }
}

@Suite(.timeLimit(.minutes(1)))
struct FakeUpstreamTransactionTests {
    /// RELIABILITY C2, C18 and RFC 5321 §4.5.2: dot-stuffing, CRLF only, 998-octet lines.
    @Test func contentArrivesDotStuffedAndCanonical() async throws {
        let upstream = try await FakeUpstream.start([:])
        defer { upstream.stop() }
        let connection = try await Client.connect(port: upstream.port, try Client.configuration())
        let long = String(repeating: "A", count: 1500)
        let content = ByteBuffer(string: "Subject: dots\r\n\r\n.From: x\r\n..x\r\n.\r\n\(long)\r\nbare\nlf\rcr\r\nend")
        let report = try await connection.send(Client.envelope(["a@example.test"]), content: content)
        #expect(report.dataReply?.code == 250)
        await connection.close()

        let expected = "Subject: dots\r\n\r\n..From: x\r\n...x\r\n..\r\n" + String(repeating: "A", count: 998) + "\r\n "
            + String(repeating: "A", count: 502) + "\r\nbare\r\nlf\r\ncr\r\nend\r\n.\r\n"
        let received = try #require(await upstream.message(1))
        #expect(String(decoding: received, as: UTF8.self) == expected)

        let wire = Array(upstream.session(1).utf8)
        for (index, byte) in wire.enumerated() {
            if byte == 10 { #expect(index > 0 && wire[index - 1] == 13, "bare LF at \(index)") }
            if byte == 13 { #expect(index + 1 < wire.count && wire[index + 1] == 10, "bare CR at \(index)") }
            #expect(byte != 0)
        }
        for line in upstream.session(1).components(separatedBy: "\r\n") {
            #expect(line.utf8.count <= 998)
        }
    }

    @Test func mailParametersFollowExtensions() async throws {
        let upstream = try await FakeUpstream.start([:])
        defer { upstream.stop() }
        let connection = try await Client.connect(port: upstream.port, try Client.configuration())
        let envelope = OutboundEnvelope(
            sender: "s@example.test", recipients: ["a@example.test", "b@example.test"], size: 0, eightBit: true,
            ret: "HDRS", envelopeID: "ID+2B1", notify: [["FAILURE", "DELAY"], nil], orcpt: [nil, "rfc822;b@example.test"]
        )
        _ = try await connection.send(envelope, content: Client.message)
        await connection.close()
        let session = upstream.session(1)
        #expect(session.contains("MAIL FROM:<s@example.test> SIZE=\(Client.message.readableBytes) BODY=8BITMIME RET=HDRS ENVID=ID+2B1\r\nRCPT TO:<a@example.test> NOTIFY=FAILURE,DELAY\r\nRCPT TO:<b@example.test> ORCPT=rfc822;b@example.test\r\nDATA\r\n"))
    }

    /// RELIABILITY F3: each recipient keeps its own answer.
    @Test func perRecipientReplies() async throws {
        let upstream = try await FakeUpstream.start([
            "rcpt_replies": ["bad@example.test": "550 5.1.1 no such user", "later@example.test": "450 4.2.1 mailbox busy", "full@example.test": "452 4.5.3 too many recipients"]
        ])
        defer { upstream.stop() }
        let connection = try await Client.connect(port: upstream.port, try Client.configuration())
        let report = try await connection.send(
            Client.envelope(["ok@example.test", "bad@example.test", "later@example.test", "full@example.test"]), content: Client.message
        )
        #expect(report.recipientReplies.map(\.code) == [250, 550, 450, 452])
        #expect(report.recipientReplies[1] == SMTPReply(550, "5.1.1", "no such user"))
        #expect(report.dataReply?.code == 250)
        #expect(report.deliveredIndices == [0])
        await connection.close()
    }

    /// RELIABILITY F4: every RCPT refused, DATA still answered 354 — a lone dot, no content.
    @Test func loneDotWhenNoRecipientButDataAccepted() async throws {
        let upstream = try await FakeUpstream.start(["always_354": true, "rcpt_replies": ["a@example.test": "550 5.1.1 no"]])
        defer { upstream.stop() }
        let connection = try await Client.connect(port: upstream.port, try Client.configuration())
        let report = try await connection.send(Client.envelope(["a@example.test"]), content: Client.message)
        #expect(report.recipientReplies.map(\.code) == [550])
        #expect(report.dataReply == nil)
        #expect(try #require(await upstream.message(1)) == Array(".\r\n".utf8))
        #expect(connection.isUsable)
        await connection.close()
    }

    @Test func openTransactionIsResetBeforeTheNext() async throws {
        let upstream = try await FakeUpstream.start(["rcpt_replies": ["a@example.test": "550 5.1.1 no"]])
        defer { upstream.stop() }
        let connection = try await Client.connect(port: upstream.port, try Client.configuration())
        let first = try await connection.send(Client.envelope(["a@example.test"]), content: Client.message)
        #expect(first.dataReply == nil)
        let second = try await connection.send(Client.envelope(["b@example.test"]), content: Client.message)
        #expect(second.dataReply?.code == 250)
        await connection.close()
        #expect(upstream.session(1).contains("DATA\r\nRSET\r\nMAIL FROM:<sender@example.test>"))
        #expect(upstream.session(1).hasSuffix("QUIT\r\n"))
    }

    @Test func refusedSenderAppliesToAll() async throws {
        let upstream = try await FakeUpstream.start(["mail_reply": "451 4.3.0 try later"])
        defer { upstream.stop() }
        let connection = try await Client.connect(port: upstream.port, try Client.configuration())
        let report = try await connection.send(Client.envelope(["a@example.test", "b@example.test"]), content: Client.message)
        #expect(report.recipientReplies == Array(repeating: SMTPReply(451, "4.3.0", "try later"), count: 2))
        #expect(report.dataReply == nil)
        await connection.close()
    }

    @Test func smtputf8Refused() async throws {
        let upstream = try await FakeUpstream.start(["extensions": ["PIPELINING", "8BITMIME"]])
        defer { upstream.stop() }
        let connection = try await Client.connect(port: upstream.port, try Client.configuration())
        await expectClientError({ $0 == .smtputf8NotSupported && $0.isPermanent && $0.reply?.enhancedCode == "5.6.7" }) {
            _ = try await connection.send(Client.envelope(["👾@example.com"]), content: Client.message)
        }
        #expect(connection.isUsable)
        await connection.close()
        #expect(!upstream.session(1).contains("MAIL"))
    }

    @Test func smtputf8Sent() async throws {
        let upstream = try await FakeUpstream.start([:])
        defer { upstream.stop() }
        let connection = try await Client.connect(port: upstream.port, try Client.configuration())
        let report = try await connection.send(Client.envelope(["👾@example.com"], sender: "josé@example.test"), content: Client.message)
        #expect(report.dataReply?.code == 250)
        await connection.close()
        #expect(upstream.session(1).contains("MAIL FROM:<josé@example.test> SIZE=\(Client.message.readableBytes) SMTPUTF8\r\nRCPT TO:<👾@example.com>\r\n"))
    }

    @Test func sizeLimitRefused() async throws {
        let upstream = try await FakeUpstream.start(["extensions": ["PIPELINING", "SIZE 50", "8BITMIME"]])
        defer { upstream.stop() }
        let connection = try await Client.connect(port: upstream.port, try Client.configuration())
        #expect(connection.maxSize == 50)
        await expectClientError({ $0 == .messageTooLarge(limit: 50) && $0.reply?.code == 552 }) {
            _ = try await connection.send(Client.envelope(["a@example.test"]), content: Client.message)
        }
        let small = ByteBuffer(string: "Subject: x\r\n\r\nhi\r\n")
        #expect(try await connection.send(Client.envelope(["a@example.test"]), content: small).dataReply?.code == 250)
        await connection.close()
        #expect(upstream.session(1).contains("MAIL FROM:<sender@example.test> SIZE=\(small.readableBytes)\r\n"))
    }

    /// RELIABILITY C18 end to end: nothing is written, the connection stays usable.
    @Test func crlfInjectionRefusedBeforeSending() async throws {
        let upstream = try await FakeUpstream.start([:])
        defer { upstream.stop() }
        let connection = try await Client.connect(port: upstream.port, try Client.configuration())
        await expectClientError({ if case .invalidArgument = $0 { return $0.isPermanent } else { return false } }) {
            _ = try await connection.send(
                Client.envelope(["ok@example.test", "user@gmail.com>\r\nDATA\r\nInjected message body\r\n.\r\nQUIT\r\n"]),
                content: Client.message
            )
        }
        var envelope = Client.envelope(["ok@example.test"])
        envelope.envelopeID = "x\r\nRSET"
        await expectClientError({ if case .invalidArgument = $0 { return true } else { return false } }) {
            _ = try await connection.send(envelope, content: Client.message)
        }
        #expect(connection.isUsable)
        #expect(try await connection.send(Client.envelope(["ok@example.test"]), content: Client.message).dataReply?.code == 250)
        await connection.close()
        #expect(!upstream.session(1).contains("Injected"))
        #expect(!upstream.session(1).contains("RSET"))
    }

    @Test func hangAfterTheDotTimesOut() async throws {
        let upstream = try await FakeUpstream.start(["after_dot": "hang"])
        defer { upstream.stop() }
        var configuration = try Client.configuration()
        configuration.dataTimeout = .seconds(1)
        let connection = try await Client.connect(port: upstream.port, configuration)
        await expectClientError({ if case .timeout = $0 { return !$0.isPermanent } else { return false } }) {
            _ = try await connection.send(Client.envelope(["a@example.test"]), content: Client.message)
        }
        #expect(!connection.isUsable)
        await connection.close()
    }

    @Test func connectionDropAtRecipient() async throws {
        let upstream = try await FakeUpstream.start(["rcpt_replies": ["b@example.test": "close"]])
        defer { upstream.stop() }
        let connection = try await Client.connect(port: upstream.port, try Client.configuration())
        await expectClientError({ $0 == .connectionClosed && $0.reply?.code == 451 }) {
            _ = try await connection.send(Client.envelope(["a@example.test", "b@example.test"]), content: Client.message)
        }
        #expect(!connection.isUsable)
    }

    @Test func refusedGreeting() async throws {
        let upstream = try await FakeUpstream.start(["greeting": "554 5.7.1 no service for you"])
        defer { upstream.stop() }
        await expectClientError({ $0 == .greeting(SMTPReply(554, "5.7.1", "no service for you")) && !$0.isPermanent }) {
            _ = try await Client.connect(port: upstream.port, try Client.configuration())
        }
    }

    @Test func serverClosingWhileIdleMakesConnectionUnusable() async throws {
        let upstream = try await FakeUpstream.start([:])
        defer { upstream.stop() }
        let connection = try await Client.connect(port: upstream.port, try Client.configuration())
        upstream.stop()
        for _ in 0..<100 where connection.isUsable { try await Task.sleep(for: .milliseconds(20)) }
        #expect(!connection.isUsable)
        await expectClientError({ $0 == .connectionClosed }) {
            _ = try await connection.send(Client.envelope(["a@example.test"]), content: Client.message)
        }
    }
}
