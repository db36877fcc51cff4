import NIOCore
import SMTPCore
import Testing
import TestSupport

@testable import SMTPClient

/// TLS against `RawSMTPSink` with a test CA and verification on (RELIABILITY F7).
@Suite(.timeLimit(.minutes(1)))
struct RawSinkTLSTests {
    @Test(arguments: ["localhost", "127.0.0.1"])
    func startTLSWithVerification(host: String) async throws {
        let certificates = try Certificates.get()
        try await withRawSink(.init { $0.tls = .starttls(certificates.trusted); $0.advertisePipelining = true }) { sink in
            let connection = try await Client.connect(port: sink.port, host: host, try Client.tlsConfiguration(.required))
            #expect(connection.isTLSActive)
            #expect(!connection.capabilities.contains("STARTTLS"))
            let report = try await connection.send(Client.envelope(["a@example.test"]), content: Client.message)
            #expect(report.dataReply?.code == 250)
            await connection.close()
            let message = try #require(await sink.waitForMessages(count: 1, timeout: 5).first)
            #expect(message.tls)
            #expect(message.heloCommand == "EHLO")
            // SNI carries a name, never an IP literal (RFC 6066 §3).
            #expect(message.tlsServerName == (host == "localhost" ? "localhost" : nil))
            #expect(message.pipeliningViolations.isEmpty)
        }
    }

    @Test(arguments: ["self-signed", "expired"])
    func badCertificateRefused(kind: String) async throws {
        let certificates = try Certificates.get()
        let served = kind == "expired" ? certificates.expired : certificates.selfSigned
        try await withRawSink(.init { $0.tls = .starttls(served) }) { sink in
            let sentence = kind == "expired"
                ? "certificate verification failed: certificate expired on 2020-01-02 00:00 UTC"
                : "certificate verification failed: self-signed certificate"
            for mode in [UpstreamTLSMode.required, .opportunistic] {
                await expectTLSFailure(sentence) {
                    _ = try await Client.connect(port: sink.port, host: "localhost", try Client.tlsConfiguration(mode))
                }
            }
            // No fallback to plaintext: nothing after STARTTLS.
            for transcript in sink.transcripts() {
                #expect(!transcript.contains("C: MAIL"))
                #expect(transcript.components(separatedBy: "C: EHLO").count == 2)
            }
            #expect(sink.messages().isEmpty)
        }
    }

    @Test func systemRootsDoNotTrustTheTestCA() async throws {
        let certificates = try Certificates.get()
        try await withRawSink(.init { $0.tls = .starttls(certificates.trusted) }) { sink in
            await expectTLSFailure("certificate verification failed: untrusted issuer") {
                _ = try await Client.connect(port: sink.port, host: "localhost", Client.configuration(tls: .required))
            }
        }
    }

    /// A certificate from the trusted CA but for another name: refused both by name
    /// (SNI `localhost`) and by IP (no IP address in it).
    @Test(arguments: ["localhost", "127.0.0.1"])
    func wrongNameRefused(host: String) async throws {
        let certificates = try Certificates.get()
        try await withRawSink(.init { $0.tls = .starttls(certificates.otherName) }) { sink in
            let configuration = Client.configuration(tls: .required, caFile: certificates.otherName.caCertificatePath)
            await expectTLSFailure("hostname \(host) not in certificate") {
                _ = try await Client.connect(port: sink.port, host: host, configuration)
            }
        }
    }

    @Test func verificationOffAcceptsSelfSigned() async throws {
        let certificates = try Certificates.get()
        try await withRawSink(.init { $0.tls = .starttls(certificates.selfSigned) }) { sink in
            let connection = try await Client.connect(port: sink.port, Client.configuration(tls: .required, verify: false))
            #expect(connection.isTLSActive)
            #expect(try await connection.send(Client.envelope(["a@example.test"]), content: Client.message).dataReply?.code == 250)
            await connection.close()
        }
    }

    @Test func implicitTLS() async throws {
        let certificates = try Certificates.get()
        try await withRawSink(.init { $0.tls = .implicit(certificates.trusted) }) { sink in
            let connection = try await Client.connect(port: sink.port, host: "localhost", try Client.tlsConfiguration(.implicit))
            #expect(connection.isTLSActive)
            #expect(try await connection.send(Client.envelope(["a@example.test"]), content: Client.message).dataReply?.code == 250)
            await connection.close()
            let message = try #require(await sink.waitForMessages(count: 1, timeout: 5).first)
            #expect(message.tls)
            #expect(message.tlsServerName == "localhost")
        }
    }

    @Test func implicitTLSVerificationFailure() async throws {
        let certificates = try Certificates.get()
        try await withRawSink(.init { $0.tls = .implicit(certificates.selfSigned) }) { sink in
            await expectTLSFailure("certificate verification failed: self-signed certificate") {
                _ = try await Client.connect(port: sink.port, host: "localhost", try Client.tlsConfiguration(.implicit))
            }
        }
    }

    /// Implicit TLS to a server that speaks plaintext SMTP: BoringSSL's
    /// WRONG_VERSION_NUMBER, in words.
    @Test func implicitTLSToAPlaintextServer() async throws {
        try await withRawSink(.init()) { sink in
            await expectTLSFailure("upstream does not speak TLS (wrong version number)") {
                _ = try await Client.connect(port: sink.port, host: "localhost", try Client.tlsConfiguration(.implicit))
            }
        }
    }

    /// A certificate from a CA the client was not given (another test CA as `ca_file`).
    @Test func certificateFromAnotherCA() async throws {
        let certificates = try Certificates.get()
        try await withRawSink(.init { $0.tls = .starttls(certificates.otherName) }) { sink in
            let configuration = Client.configuration(tls: .required, caFile: certificates.trusted.caCertificatePath)
            await expectTLSFailure("certificate verification failed: untrusted issuer") {
                _ = try await Client.connect(port: sink.port, host: "localhost", configuration)
            }
        }
    }
}

/// AUTH PLAIN over STARTTLS, failures, and credentials never sent in plaintext.
@Suite(.timeLimit(.minutes(1)))
struct RawSinkAuthTests {
    private static func options() throws -> RawSMTPSink.Options {
        let certificates = try Certificates.get()
        return .init {
            $0.tls = .starttls(certificates.trusted)
            $0.authUser = "relay"
            $0.authPassword = "s3cret pw"
            $0.requireAuth = true
        }
    }

    @Test func authenticatesWithPlain() async throws {
        try await withRawSink(try Self.options()) { sink in
            let connection = try await Client.connect(
                port: sink.port, host: "localhost", try Client.tlsConfiguration(.required, username: "relay", password: "s3cret pw")
            )
            #expect(try await connection.send(Client.envelope(["a@example.test"]), content: Client.message).dataReply?.code == 250)
            await connection.close()
            let message = try #require(await sink.waitForMessages(count: 1, timeout: 5).first)
            #expect(message.authUser == "relay")
            #expect(sink.transcripts().joined().contains("C: AUTH PLAIN"))
        }
    }

    @Test func wrongPasswordIsTemporary() async throws {
        try await withRawSink(try Self.options()) { sink in
            await expectClientError({
                if case .authFailed(let reply) = $0 { return reply.code == 535 && !$0.isPermanent && $0.reply?.code == 451 }
                return false
            }) {
                _ = try await Client.connect(
                    port: sink.port, host: "localhost", try Client.tlsConfiguration(.required, username: "relay", password: "wrong")
                )
            }
        }
    }

    @Test func noCredentialsWithoutTLS() async throws {
        let options = RawSMTPSink.Options {
            $0.authUser = "relay"
            $0.authPassword = "s3cret pw"
            $0.authWithoutTLS = true
        }
        try await withRawSink(options) { sink in
            for mode in [UpstreamTLSMode.none, .opportunistic] {
                await expectClientError({ $0 == .tlsRequiredButUnavailable }) {
                    _ = try await Client.connect(port: sink.port, Client.configuration(tls: mode, username: "relay", password: "s3cret pw"))
                }
            }
            try await Task.sleep(for: .milliseconds(100))
            let transcripts = sink.transcripts()
            #expect(transcripts.count == 2)
            #expect(!transcripts.joined().contains("C: AUTH"))
        }
    }
}

/// Envelopes, extensions and exact content bytes against `RawSMTPSink`.
@Suite(.timeLimit(.minutes(1)))
struct RawSinkTransactionTests {
    /// RFC 5321 §4.5.2, RELIABILITY C2/A4: dot-stuffing, canonical CRLF, lines ≤ 998 octets.
    @Test func dotStuffingRoundTrip() async throws {
        try await withRawSink(.init { $0.advertisePipelining = true }) { sink in
            let connection = try await Client.connect(port: sink.port, Client.configuration())
            let long = String(repeating: "A", count: 1500)
            let content = ByteBuffer(string: "Subject: dots\r\n\r\n.From: x\r\n..x\r\n.\r\n\(long)\r\nbare\nlf\rcr\r\nend")
            #expect(try await connection.send(Client.envelope(["a@example.test"]), content: content).dataReply?.code == 250)
            await connection.close()

            let message = try #require(await sink.waitForMessages(count: 1, timeout: 5).first)
            let folded = String(repeating: "A", count: 998) + "\r\n " + String(repeating: "A", count: 502)
            let raw = "Subject: dots\r\n\r\n..From: x\r\n...x\r\n..\r\n\(folded)\r\nbare\r\nlf\r\ncr\r\nend\r\n"
            #expect(String(decoding: message.raw, as: UTF8.self) == raw)
            #expect(message.text == "Subject: dots\r\n\r\n.From: x\r\n..x\r\n.\r\n\(folded)\r\nbare\r\nlf\r\ncr\r\nend\r\n")
            #expect(message.rawIsCanonicalCRLF)
            #expect(message.raw.split(separator: 10).allSatisfy { $0.count <= 999 })
            #expect(message.pipeliningViolations.isEmpty)
        }
    }

    /// RELIABILITY F3, RFC 2920: one pipelined group, each recipient keeps its answer.
    @Test func pipelinedPerRecipientReplies() async throws {
        let options = RawSMTPSink.Options {
            $0.advertisePipelining = true
            $0.rcptReply = ["reject": "550 5.1.1 no such user", "tempfail": "450 4.2.0 try later", "full": "452 4.5.3 too many recipients"]
        }
        try await withRawSink(options) { sink in
            let connection = try await Client.connect(port: sink.port, Client.configuration())
            let recipients = ["ok@example.test", "reject@example.test", "tempfail@example.test", "full@example.test", "ok2@example.test"]
            let report = try await connection.send(Client.envelope(recipients), content: Client.message)
            #expect(report.recipientReplies.map(\.code) == [250, 550, 450, 452, 250])
            #expect(report.recipientReplies[1] == SMTPReply(550, "5.1.1", "no such user"))
            #expect(report.dataReply?.code == 250)
            #expect(report.deliveredIndices == [0, 4])
            #expect(report.outcome(forRecipientAt: 2).isTransient)
            await connection.close()
            let message = try #require(await sink.waitForMessages(count: 1, timeout: 5).first)
            #expect(message.rcptTo == ["ok@example.test", "ok2@example.test"])
            #expect(message.pipeliningViolations.isEmpty)
        }
    }

    /// Without PIPELINING, one command per reply: the sink records no violation.
    @Test func lockStepWithoutPipelining() async throws {
        try await withRawSink(.init { $0.rcptReply = ["reject": "550 5.1.1 no"] }) { sink in
            let connection = try await Client.connect(port: sink.port, Client.configuration())
            #expect(!connection.capabilities.contains("PIPELINING"))
            let report = try await connection.send(Client.envelope(["a@example.test", "reject@example.test", "b@example.test"]), content: Client.message)
            #expect(report.recipientReplies.map(\.code) == [250, 550, 250])
            let second = try await connection.send(Client.envelope(["reject@example.test"]), content: Client.message)
            #expect(second.dataReply == nil)
            let third = try await connection.send(Client.envelope(["c@example.test"]), content: Client.message)
            #expect(third.dataReply?.code == 250)
            await connection.close()
            let messages = await sink.waitForMessages(count: 2, timeout: 5)
            #expect(messages.allSatisfy { $0.pipeliningViolations.isEmpty })
            #expect(sink.transcripts().joined().contains("C: RSET"))
        }
    }

    @Test func dsnAndBodyParameters() async throws {
        let options = RawSMTPSink.Options {
            $0.advertisePipelining = true
            $0.advertiseDSN = true
            $0.advertise8BITMIME = true
            $0.maxSize = 1_000_000
        }
        try await withRawSink(options) { sink in
            let connection = try await Client.connect(port: sink.port, Client.configuration())
            #expect(connection.maxSize == 1_000_000)
            let envelope = OutboundEnvelope(
                sender: "s@example.test", recipients: ["a@example.test", "b@example.test"], eightBit: true,
                ret: "HDRS", envelopeID: "ID+2B1", notify: [["FAILURE", "DELAY"], nil], orcpt: [nil, "rfc822;b@example.test"]
            )
            #expect(try await connection.send(envelope, content: Client.message).dataReply?.code == 250)
            await connection.close()
            let message = try #require(await sink.waitForMessages(count: 1, timeout: 5).first)
            #expect(message.mailParameters == ["SIZE=\(Client.message.readableBytes)", "BODY=8BITMIME", "RET=HDRS", "ENVID=ID+2B1"])
            #expect(message.rcptParameters == [["NOTIFY=FAILURE,DELAY"], ["ORCPT=rfc822;b@example.test"]])
        }
    }

    @Test func dsnParametersDroppedWhenNotOffered() async throws {
        try await withRawSink(.init { $0.advertise8BITMIME = true }) { sink in
            let connection = try await Client.connect(port: sink.port, Client.configuration())
            let envelope = OutboundEnvelope(
                sender: "s@example.test", recipients: ["a@example.test"], ret: "FULL", envelopeID: "x", notify: [["NEVER"]], orcpt: ["rfc822;a@example.test"]
            )
            #expect(try await connection.send(envelope, content: Client.message).dataReply?.code == 250)
            await connection.close()
            let message = try #require(await sink.waitForMessages(count: 1, timeout: 5).first)
            #expect(message.mailParameters.isEmpty)
            #expect(message.rcptParameters == [[]])
        }
    }

    /// RELIABILITY C16: 8-bit content never reaches a server without 8BITMIME.
    @Test func eightBitRefusedWithoutEightBitMIME() async throws {
        try await withRawSink { sink in
            let connection = try await Client.connect(port: sink.port, Client.configuration())
            await expectClientError({ $0 == .eightBitNotSupported }) {
                _ = try await connection.send(Client.envelope(["a@example.test"]), content: ByteBuffer(string: "Subject: \u{2603}\r\n\r\nsnow\r\n"))
            }
            #expect(connection.isUsable)
            await connection.close()
            #expect(!sink.transcripts().joined().contains("C: MAIL"))
        }
    }

    /// RELIABILITY C16: an 8-bit body goes to a server without 8BITMIME as
    /// quoted-printable, without BODY=8BITMIME; the same message to a server with
    /// 8BITMIME goes unchanged (the conversion runs only when it must).
    @Test func eightBitBodyConvertedWithoutEightBitMIME() async throws {
        let content = ByteBuffer(string: "Subject: snow\r\n\r\nSchnee \u{2603} = kalt\r\n")
        var envelope = Client.envelope(["a@example.test"])
        envelope.eightBit = true
        envelope.size = content.readableBytes
        try await withRawSink(.init { $0.maxSize = 1000 }) { sink in
            let connection = try await Client.connect(port: sink.port, Client.configuration())
            #expect(try await connection.send(envelope, content: content).dataReply?.code == 250)
            await connection.close()
            let message = try #require(await sink.waitForMessages(count: 1, timeout: 5).first)
            #expect(!message.mailParameters.contains("BODY=8BITMIME"))
            // SIZE= is the size of what was sent, not of the 8-bit original.
            #expect(message.mailParameters.contains("SIZE=\(message.content.count)"))
            #expect(message.text == "Subject: snow\r\nContent-Transfer-Encoding: quoted-printable\r\nMIME-Version: 1.0\r\n\r\nSchnee =E2=98=83 =3D kalt\r\n")
        }
        try await withRawSink(.init { $0.advertise8BITMIME = true }) { sink in
            let connection = try await Client.connect(port: sink.port, Client.configuration())
            #expect(try await connection.send(envelope, content: content).dataReply?.code == 250)
            await connection.close()
            let message = try #require(await sink.waitForMessages(count: 1, timeout: 5).first)
            #expect(message.mailParameters.contains("BODY=8BITMIME"))
            #expect(message.content == Array(content.readableBytesView))
        }
    }

    /// RELIABILITY C17.
    @Test func smtputf8RefusedWhenNotOffered() async throws {
        try await withRawSink(.init { $0.advertise8BITMIME = true }) { sink in
            let connection = try await Client.connect(port: sink.port, Client.configuration())
            await expectClientError({ $0 == .smtputf8NotSupported && $0.isPermanent && $0.reply?.enhancedCode == "5.6.7" }) {
                _ = try await connection.send(Client.envelope(["👾@example.com"]), content: Client.message)
            }
            var flagged = Client.envelope(["a@example.test"])
            flagged.smtpUTF8 = true
            await expectClientError({ $0 == .smtputf8NotSupported }) {
                _ = try await connection.send(flagged, content: Client.message)
            }
            #expect(connection.isUsable)
            await connection.close()
            #expect(!sink.transcripts().joined().contains("C: MAIL"))
        }
        // Neither extension, a UTF-8 envelope and 8-bit headers: the envelope is what
        // cannot go (5.6.7), not the content (no conversion is tried).
        try await withRawSink { sink in
            let connection = try await Client.connect(port: sink.port, Client.configuration())
            var envelope = Client.envelope(["👾@example.com"])
            envelope.eightBit = true
            await expectClientError({ $0 == .smtputf8NotSupported }) {
                _ = try await connection.send(envelope, content: ByteBuffer(string: "Subject: 👾\r\n\r\n👾\r\n"))
            }
            await connection.close()
        }
    }

    @Test func smtputf8SentWhenNeeded() async throws {
        try await withRawSink(.init { $0.advertise8BITMIME = true; $0.advertiseSMTPUTF8 = true }) { sink in
            let connection = try await Client.connect(port: sink.port, Client.configuration())
            let report = try await connection.send(Client.envelope(["👾@example.com"], sender: "josé@example.test"), content: Client.message)
            #expect(report.dataReply?.code == 250)
            await connection.close()
            let message = try #require(await sink.waitForMessages(count: 1, timeout: 5).first)
            #expect(message.mailFrom == "josé@example.test")
            #expect(message.rcptTo == ["👾@example.com"])
            #expect(message.mailParameters == ["SMTPUTF8"])
        }
    }

    /// RELIABILITY F8, RFC 1870.
    @Test func sizeLimit() async throws {
        try await withRawSink(.init { $0.maxSize = 50 }) { sink in
            let connection = try await Client.connect(port: sink.port, Client.configuration())
            #expect(connection.maxSize == 50)
            await expectClientError({ $0 == .messageTooLarge(limit: 50) && $0.reply?.code == 552 && $0.reply?.enhancedCode == "5.3.4" }) {
                _ = try await connection.send(Client.envelope(["a@example.test"]), content: Client.message)
            }
            let small = ByteBuffer(string: "Subject: x\r\n\r\nhi\r\n")
            #expect(try await connection.send(Client.envelope(["a@example.test"]), content: small).dataReply?.code == 250)
            await connection.close()
            let message = try #require(await sink.waitForMessages(count: 1, timeout: 5).first)
            #expect(message.mailParameters == ["SIZE=\(small.readableBytes)"])
        }
    }

    @Test func failureAfterTheDot() async throws {
        try await withRawSink(.init { $0.dataReply = "554 5.7.1 content rejected" }) { sink in
            let connection = try await Client.connect(port: sink.port, Client.configuration())
            let report = try await connection.send(Client.envelope(["a@example.test", "b@example.test"]), content: Client.message)
            #expect(report.dataReply == SMTPReply(554, "5.7.1", "content rejected"))
            #expect(report.outcome(forRecipientAt: 1).isPermanent)
            #expect(connection.isUsable)
            await connection.close()
        }
    }

    @Test func refusedSenderAppliesToEveryRecipient() async throws {
        try await withRawSink(.init { $0.advertisePipelining = true; $0.mailReply = ["blocked": "553 5.7.1 sender not allowed"] }) { sink in
            let connection = try await Client.connect(port: sink.port, Client.configuration())
            let report = try await connection.send(Client.envelope(["a@example.test", "b@example.test"], sender: "blocked@example.test"), content: Client.message)
            #expect(report.recipientReplies == Array(repeating: SMTPReply(553, "5.7.1", "sender not allowed"), count: 2))
            #expect(report.dataReply == nil)
            #expect(connection.isUsable)
            #expect(try await connection.send(Client.envelope(["a@example.test"]), content: Client.message).dataReply?.code == 250)
            await connection.close()
        }
    }

    @Test func refusedGreeting() async throws {
        try await withRawSink(.init { $0.greetingReply = "554 5.7.1 no service for you" }) { sink in
            await expectClientError({ $0 == .greeting(SMTPReply(554, "5.7.1", "no service for you")) && !$0.isPermanent }) {
                _ = try await Client.connect(port: sink.port, Client.configuration())
            }
        }
    }

    /// RELIABILITY C18 end to end: nothing is written and the connection stays usable.
    @Test func crlfInjectionRefusedBeforeSending() async throws {
        try await withRawSink(.init { $0.advertiseDSN = true }) { sink in
            let connection = try await Client.connect(port: sink.port, Client.configuration())
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
            await expectClientError({ if case .invalidArgument = $0 { return true } else { return false } }) {
                _ = try await connection.send(Client.envelope(["ok@example.test"], sender: "a@b.test\0"), content: Client.message)
            }
            #expect(connection.isUsable)
            #expect(try await connection.send(Client.envelope(["ok@example.test"]), content: Client.message).dataReply?.code == 250)
            await connection.close()
            let transcript = sink.transcripts().joined()
            #expect(!transcript.contains("Injected"))
            #expect(!transcript.contains("RSET"))
            #expect(transcript.components(separatedBy: "C: MAIL").count == 2)
            #expect(transcript.contains("C: QUIT"))
        }
    }
}
