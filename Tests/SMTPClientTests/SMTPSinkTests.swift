import NIOCore
import SMTPCore
import Testing
import TestSupport

@testable import SMTPClient

/// Against Postfix's `smtp-sink` and its fault switches (RELIABILITY F1–F6).
@Suite(.timeLimit(.minutes(1)), .enabled(if: SMTPSink.isAvailable))
struct SMTPSinkTests {
    @Test func pipelinedDeliveryAndReuse() async throws {
        try await withSMTPSink { sink in
            let connection = try await Client.connect(port: sink.port, Client.configuration())
            #expect(connection.capabilities.isSuperset(of: ["PIPELINING", "8BITMIME", "DSN", "ENHANCEDSTATUSCODES"]))
            #expect(!connection.isTLSActive)

            let report = try await connection.send(Client.envelope(["a@example.test", "b@example.test"]), content: Client.message)
            #expect(report.recipientReplies.map(\.code) == [250, 250])
            #expect(report.recipientReplies[0].enhancedCode == "2.1.5")
            #expect(report.dataReply?.code == 250)
            #expect(report.deliveredIndices == [0, 1])
            #expect(connection.isUsable)

            try await connection.reset()
            let second = try await connection.send(Client.envelope(["c@example.test"], sender: ""), content: Client.message)
            #expect(second.dataReply?.code == 250)
            await connection.close()
            #expect(!connection.isUsable)

            let messages = await sink.waitForMessages(count: 2, timeout: 5)
            let first = try #require(messages.first { $0.mailFrom == "sender@example.test" })
            #expect(first.rcptTo == ["a@example.test", "b@example.test"])
            #expect(first.helo == "relay.tollgate.test")
            #expect(first.text.contains("Subject: test\n\nHello.\n"))
            #expect(messages.contains { $0.mailFrom == "" && $0.rcptTo == ["c@example.test"] })
        }
    }

    @Test func recipientsTemporarilyRefusedSkipsData() async throws {
        try await withSMTPSink(["-r", "RCPT"]) { sink in
            let connection = try await Client.connect(port: sink.port, Client.configuration())
            #expect(!connection.capabilities.contains("PIPELINING"))
            let report = try await connection.send(Client.envelope(["a@example.test", "b@example.test"]), content: Client.message)
            #expect(report.recipientReplies.map(\.code) == [450, 450])
            #expect(report.recipientReplies[0].enhancedCode == "4.3.0")
            #expect(report.dataReply == nil)
            #expect(report.outcome(forRecipientAt: 1).isTransient)
            // The open transaction is reset before the next one.
            #expect(connection.isUsable)
            let again = try await connection.send(Client.envelope(["a@example.test"]), content: Client.message)
            #expect(again.recipientReplies.map(\.code) == [450])
            await connection.close()
            #expect(sink.messages().isEmpty)
        }
    }

    /// RELIABILITY F5.
    @Test(arguments: [("-f", 500), ("-r", 450)])
    func failureAfterTheDot(option: String, code: Int) async throws {
        try await withSMTPSink([option, "."]) { sink in
            let connection = try await Client.connect(port: sink.port, Client.configuration())
            let report = try await connection.send(Client.envelope(["a@example.test", "b@example.test"]), content: Client.message)
            #expect(report.recipientReplies.map(\.code) == [250, 250])
            #expect(report.dataReply?.code == code)
            #expect(report.outcome(forRecipientAt: 0).code == code)
            #expect(report.deliveredIndices.isEmpty)
            #expect(connection.isUsable)
            await connection.close()
        }
    }

    /// RELIABILITY F6: no reply after the dot is a 451, never a success.
    @Test func disconnectAfterTheDot() async throws {
        try await withSMTPSink(["-q", "."]) { sink in
            let connection = try await Client.connect(port: sink.port, Client.configuration())
            await expectClientError({ $0 == .connectionClosed && $0.reply?.code == 451 && !$0.isPermanent }) {
                _ = try await connection.send(Client.envelope(["a@example.test"]), content: Client.message)
            }
            #expect(!connection.isUsable)
            await expectClientError({ $0 == .connectionClosed }) {
                _ = try await connection.send(Client.envelope(["a@example.test"]), content: Client.message)
            }
            await connection.close()
        }
    }

    @Test func serviceClosingAtData() async throws {
        try await withSMTPSink(["-Q", "DATA"]) { sink in
            let connection = try await Client.connect(port: sink.port, Client.configuration())
            let report = try await connection.send(Client.envelope(["a@example.test", "b@example.test"]), content: Client.message)
            #expect(report.recipientReplies.map(\.code) == [421, 421])
            #expect(report.dataReply == nil)
            #expect(report.outcome(forRecipientAt: 0).isTransient)
            #expect(!connection.isUsable)
            await connection.close()
        }
    }

    /// RELIABILITY F2: a 5xx greeting means "try another host", not "bounce".
    @Test func refusedGreetingIsTemporary() async throws {
        try await withSMTPSink(["-f", "CONNECT"]) { sink in
            await expectClientError({
                if case .greeting(let reply) = $0 { return reply.isPermanent && !$0.isPermanent && $0.reply?.code == 451 }
                return false
            }) {
                _ = try await Client.connect(port: sink.port, Client.configuration())
            }
        }
    }

    @Test func temporaryGreeting() async throws {
        try await withSMTPSink(["-Q", "CONNECT"]) { sink in
            await expectClientError({ if case .greeting(let reply) = $0 { return reply.code == 421 && $0.reply == reply } else { return false } }) {
                _ = try await Client.connect(port: sink.port, Client.configuration())
            }
        }
    }

    /// HELO after a 5xx to EHLO; then no extensions, so 8-bit content is refused (C16).
    @Test func heloFallbackAndEightBitRefusal() async throws {
        try await withSMTPSink(["-f", "EHLO"]) { sink in
            let connection = try await Client.connect(port: sink.port, Client.configuration())
            #expect(connection.capabilities.isEmpty)
            await expectClientError({ $0 == .eightBitNotSupported && $0.isPermanent && $0.reply?.enhancedCode == "5.6.3" }) {
                _ = try await connection.send(Client.envelope(["a@example.test"]), content: ByteBuffer(string: "Subject: caf\u{e9}\r\n\r\nna\u{ef}ve\r\n"))
            }
            #expect(connection.isUsable)
            let report = try await connection.send(Client.envelope(["a@example.test"]), content: Client.message)
            #expect(report.dataReply?.code == 250)
            await connection.close()
            let messages = await sink.waitForMessages(count: 1, timeout: 5)
            #expect(messages.count == 1)
            #expect(messages.first?.clientProtocol == "SMTP")
        }
    }

    /// RELIABILITY C16 against Postfix's smtp-sink hiding 8BITMIME (`-8`): an 8-bit body
    /// is converted to quoted-printable and accepted; 8-bit in a header cannot be.
    @Test func noEightBitMIMEAnnounced() async throws {
        try await withSMTPSink(["-8"]) { sink in
            let connection = try await Client.connect(port: sink.port, Client.configuration())
            var envelope = Client.envelope(["a@example.test"])
            envelope.eightBit = true
            let report = try await connection.send(envelope, content: ByteBuffer(string: "Subject: x\r\n\r\nna\u{ef}ve\r\n"))
            #expect(report.dataReply?.code == 250)
            await expectClientError({ $0 == .eightBitNotSupported }) {
                _ = try await connection.send(envelope, content: ByteBuffer(string: "Subject: caf\u{e9}\r\n\r\nx\r\n"))
            }
            await connection.close()
            let message = try #require(await sink.waitForMessages(count: 1, timeout: 5).first)
            #expect(message.mailParameters.isEmpty)
            #expect(message.content.allSatisfy { $0 < 0x80 })
            #expect(String(decoding: message.content, as: UTF8.self).contains("na=C3=AFve"))
        }
    }

    /// RELIABILITY F7: required TLS never falls back to plaintext.
    @Test func requiredTLSWithoutStartTLS() async throws {
        try await withSMTPSink { sink in
            await expectClientError({ $0 == .tlsRequiredButUnavailable && !$0.isPermanent }) {
                _ = try await Client.connect(port: sink.port, try Client.tlsConfiguration(.required))
            }
        }
    }

    @Test func opportunisticWithoutStartTLSContinues() async throws {
        try await withSMTPSink { sink in
            let connection = try await Client.connect(port: sink.port, try Client.tlsConfiguration(.opportunistic))
            #expect(!connection.isTLSActive)
            #expect(try await connection.send(Client.envelope(["a@example.test"]), content: Client.message).dataReply?.code == 250)
            await connection.close()
        }
    }

    @Test func slowReplyTimesOut() async throws {
        try await withSMTPSink(["-w", "30"]) { sink in
            var configuration = Client.configuration()
            configuration.commandTimeout = .seconds(1)
            let connection = try await Client.connect(port: sink.port, configuration)
            let clock = ContinuousClock()
            let start = clock.now
            await expectClientError({ if case .timeout = $0 { return $0.reply?.code == 451 } else { return false } }) {
                _ = try await connection.send(Client.envelope(["a@example.test"]), content: Client.message)
            }
            #expect(clock.now - start < .seconds(10))
            #expect(!connection.isUsable)
        }
    }

    /// RELIABILITY F1.
    @Test func connectionRefused() async throws {
        let port = freePort()
        // One attempt (a second could find the port taken by another test meanwhile).
        // In words (issue 7): the stored reply names what failed and where.
        await expectClientError({
            guard case .connectFailed = $0 else { return false }
            return !$0.isPermanent && $0.reply?.enhancedCode == "4.4.1"
                && $0.reply?.text == "cannot connect to upstream: connection refused by 127.0.0.1:\(port)"
        }) {
            _ = try await Client.connect(port: port, host: "127.0.0.1", Client.configuration())
        }
    }
}
