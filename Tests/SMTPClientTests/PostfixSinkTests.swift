import Foundation
import NIOCore
import SMTPCore
import Testing

@testable import SMTPClient

/// Against Postfix's `smtp-sink` (RELIABILITY F2, F3, F5, F6 fakes).
@Suite(.timeLimit(.minutes(1)), .enabled(if: FileManager.default.isExecutableFile(atPath: PostfixSink.executable)))
struct PostfixSinkTests {
    @Test func pipelinedDeliveryAndReuse() async throws {
        let sink = try await PostfixSink.start()
        defer { sink.stop() }
        let connection = try await Client.connect(port: sink.port, try Client.configuration())
        #expect(connection.capabilities.contains("PIPELINING"))
        #expect(connection.capabilities.contains("8BITMIME"))
        #expect(!connection.isTLSActive)

        let report = try await connection.send(Client.envelope(["a@example.test", "b@example.test"]), content: Client.message)
        #expect(report.recipientReplies.map(\.code) == [250, 250])
        #expect(report.dataReply?.code == 250)
        #expect(report.deliveredIndices == [0, 1])
        #expect(connection.isUsable)

        try await connection.reset()
        let second = try await connection.send(Client.envelope(["c@example.test"], sender: ""), content: Client.message)
        #expect(second.dataReply?.code == 250)
        await connection.close()
        #expect(!connection.isUsable)

        let dumps = try await waitForDumps(sink, count: 2)
        let first = try #require(dumps.first { $0.contains("X-Mail-Args: <sender@example.test>") })
        #expect(first.contains("X-Rcpt-Args: <a@example.test>\nX-Rcpt-Args: <b@example.test>"))
        #expect(first.contains("Subject: test\n\nHello.\n"))
        #expect(dumps.contains { $0.contains("X-Mail-Args: <>") })
    }

    @Test func recipientsTemporarilyRefusedSkipsData() async throws {
        let sink = try await PostfixSink.start(["-r", "RCPT"])
        defer { sink.stop() }
        let connection = try await Client.connect(port: sink.port, try Client.configuration())
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
    }

    @Test(arguments: [("-f", 500), ("-r", 450)])
    func failureAfterTheDot(option: String, code: Int) async throws {
        let sink = try await PostfixSink.start([option, "."])
        defer { sink.stop() }
        let connection = try await Client.connect(port: sink.port, try Client.configuration())
        let report = try await connection.send(Client.envelope(["a@example.test", "b@example.test"]), content: Client.message)
        #expect(report.recipientReplies.map(\.code) == [250, 250])
        #expect(report.dataReply?.code == code)
        #expect(report.outcome(forRecipientAt: 0).code == code)
        #expect(report.deliveredIndices.isEmpty)
        #expect(connection.isUsable)
        await connection.close()
    }

    /// RELIABILITY F6: no reply after the dot is a 451, never a success.
    @Test func disconnectAfterTheDot() async throws {
        let sink = try await PostfixSink.start(["-q", "."])
        defer { sink.stop() }
        let connection = try await Client.connect(port: sink.port, try Client.configuration())
        await expectClientError({ $0 == .connectionClosed && $0.reply?.code == 451 && !$0.isPermanent }) {
            _ = try await connection.send(Client.envelope(["a@example.test"]), content: Client.message)
        }
        #expect(!connection.isUsable)
        await expectClientError({ $0 == .connectionClosed }) {
            _ = try await connection.send(Client.envelope(["a@example.test"]), content: Client.message)
        }
        await connection.close()
    }

    @Test func serviceClosingAtData() async throws {
        let sink = try await PostfixSink.start(["-Q", "DATA"])
        defer { sink.stop() }
        let connection = try await Client.connect(port: sink.port, try Client.configuration())
        let report = try await connection.send(Client.envelope(["a@example.test", "b@example.test"]), content: Client.message)
        #expect(report.recipientReplies.map(\.code) == [421, 421])
        #expect(report.dataReply == nil)
        #expect(!connection.isUsable)
        await connection.close()
    }

    @Test func refusedGreetingIsTemporary() async throws {
        let sink = try await PostfixSink.start(["-f", "CONNECT"])
        defer { sink.stop() }
        await expectClientError({
            if case .greeting(let reply) = $0 { return reply.isPermanent && !$0.isPermanent && $0.reply?.code == 451 }
            return false
        }) {
            _ = try await Client.connect(port: sink.port, try Client.configuration())
        }
    }

    @Test func heloFallbackAndEightBitRefusal() async throws {
        let sink = try await PostfixSink.start(["-f", "EHLO"])
        defer { sink.stop() }
        let connection = try await Client.connect(port: sink.port, try Client.configuration())
        #expect(connection.capabilities.isEmpty)
        // RELIABILITY C16: 8-bit content to a server without 8BITMIME is refused up front.
        await expectClientError({ $0 == .eightBitNotSupported && $0.isPermanent && $0.reply?.enhancedCode == "5.6.3" }) {
            _ = try await connection.send(Client.envelope(["a@example.test"]), content: ByteBuffer(string: "Subject: caf\u{e9}\r\n\r\nna\u{ef}ve\r\n"))
        }
        #expect(connection.isUsable)
        let report = try await connection.send(Client.envelope(["a@example.test"]), content: Client.message)
        #expect(report.dataReply?.code == 250)
        await connection.close()
        let dumps = try await waitForDumps(sink, count: 1)
        #expect(dumps.count == 1)
        #expect(dumps[0].contains("X-Client-Proto: SMTP"))
    }

    @Test func noEightBitMIMEAnnounced() async throws {
        let sink = try await PostfixSink.start(["-8"])
        defer { sink.stop() }
        let connection = try await Client.connect(port: sink.port, try Client.configuration())
        var envelope = Client.envelope(["a@example.test"])
        envelope.eightBit = true
        await expectClientError({ $0 == .eightBitNotSupported }) {
            _ = try await connection.send(envelope, content: Client.message)
        }
        await connection.close()
    }

    @Test func requiredTLSWithoutStartTLS() async throws {
        let sink = try await PostfixSink.start()
        defer { sink.stop() }
        await expectClientError({ $0 == .tlsRequiredButUnavailable && !$0.isPermanent }) {
            _ = try await Client.connect(port: sink.port, try Client.configuration(tls: .required))
        }
    }

    @Test func opportunisticWithoutStartTLSContinues() async throws {
        let sink = try await PostfixSink.start()
        defer { sink.stop() }
        let connection = try await Client.connect(port: sink.port, try Client.configuration(tls: .opportunistic))
        #expect(!connection.isTLSActive)
        #expect(try await connection.send(Client.envelope(["a@example.test"]), content: Client.message).dataReply?.code == 250)
        await connection.close()
    }

    @Test func slowReplyTimesOut() async throws {
        let sink = try await PostfixSink.start(["-w", "30"])
        defer { sink.stop() }
        var configuration = try Client.configuration()
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

    @Test func connectionRefused() async throws {
        let port = try unusedPort()
        await expectClientError({ if case .connectFailed = $0 { return $0.reply?.enhancedCode == "4.4.1" } else { return false } }) {
            _ = try await Client.connect(port: port, try Client.configuration())
        }
    }

    private func waitForDumps(_ sink: PostfixSink, count: Int) async throws -> [String] {
        for _ in 0..<100 {
            let dumps = sink.dumps()
            if dumps.count >= count { return dumps }
            try await Task.sleep(for: .milliseconds(50))
        }
        return sink.dumps()
    }
}
