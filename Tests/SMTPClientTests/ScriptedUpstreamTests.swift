import NIOCore
import SMTPCore
import Testing
import TestSupport

@testable import SMTPClient

/// Upstream misbehaviour from ``ScriptedUpstream``.
@Suite(.timeLimit(.minutes(1)))
struct ScriptedUpstreamTests {
    /// RELIABILITY C7: `220 go ahead\r\n250 injected…` in one write. The injected lines
    /// must not become the reply to the post-TLS EHLO (they would set SIZE to 10).
    @Test func startTLSResponseInjectionIgnored() async throws {
        let upstream = try await ScriptedUpstream.start(["starttls": true, "starttls_inject": "250-injected\r\n250 SIZE 10\r\n"], tls: true)
        let connection = try await Client.connect(port: upstream.port, host: "localhost", try Client.tlsConfiguration(.required))
        #expect(connection.isTLSActive)
        #expect(connection.maxSize == 10_240_000)
        #expect(connection.capabilities.contains("PIPELINING"))
        let report = try await connection.send(Client.envelope(["a@example.test", "b@example.test"]), content: Client.message)
        #expect(report.recipientReplies == Array(repeating: SMTPReply(250, "2.1.5", "Ok"), count: 2))
        #expect(report.dataReply == SMTPReply(250, "2.0.0", "queued"))
        await connection.close()
        // The server writes its transcript when the session ends: wait for it.
        #expect(await waitUntil(timeout: 10) { upstream.session(1).contains("QUIT") })
        #expect(upstream.session(1).hasPrefix("EHLO relay.tollgate.test\r\nSTARTTLS\r\n--- TLS ---\r\nEHLO relay.tollgate.test\r\nMAIL FROM:"))
    }

    /// Plaintext that follows the 220 in a later segment is never taken as a reply.
    /// Which safe outcome happens depends on timing: if it arrives once the TLS
    /// handler is in place it corrupts the handshake (an error); if it arrives before,
    /// it is buffered plaintext and discarded (a working, genuine session).
    @Test func delayedInjectionIsNeverAReply() async throws {
        let upstream = try await ScriptedUpstream.start(["starttls": true, "starttls_inject_delayed": "250 injected\r\n"], tls: true)
        do {
            let connection = try await Client.connect(port: upstream.port, host: "localhost", try Client.tlsConfiguration(.required))
            #expect(connection.isTLSActive)
            #expect(connection.maxSize == 10_240_000)
            #expect(connection.capabilities.contains("PIPELINING"))
            await connection.close()
        } catch let error as SMTPClientError {
            guard case .tlsHandshake = error else {
                Issue.record("unexpected \(error)")
                return
            }
        }
    }

    @Test func startTLSRefused() async throws {
        let upstream = try await ScriptedUpstream.start(["starttls": true, "starttls_reply": "454 4.7.0 TLS not available"], tls: true)
        await expectClientError({ $0 == .tlsRequiredButUnavailable }) {
            _ = try await Client.connect(port: upstream.port, host: "localhost", try Client.tlsConfiguration(.required))
        }
        let connection = try await Client.connect(port: upstream.port, host: "localhost", try Client.tlsConfiguration(.opportunistic))
        #expect(!connection.isTLSActive)
        #expect(try await connection.send(Client.envelope(["a@example.test"]), content: Client.message).dataReply?.code == 250)
        await connection.close()
    }

    @Test func authLoginWhenPlainIsNotOffered() async throws {
        let upstream = try await ScriptedUpstream.start(
            ["starttls": true, "auth": ["user": "relay", "password": "s3cret pw"], "auth_mechanisms": ["LOGIN"]], tls: true
        )
        let connection = try await Client.connect(
            port: upstream.port, host: "localhost", try Client.tlsConfiguration(.required, username: "relay", password: "s3cret pw")
        )
        #expect(try await connection.send(Client.envelope(["a@example.test"]), content: Client.message).dataReply?.code == 250)
        await connection.close()
        #expect(upstream.authLog == "LOGIN ok\n")
    }

    @Test func noUsableAuthMechanism() async throws {
        let upstream = try await ScriptedUpstream.start(
            ["starttls": true, "auth": ["user": "relay", "password": "pw"], "auth_mechanisms": ["CRAM-MD5"]], tls: true
        )
        await expectClientError({ if case .authFailed = $0 { return !$0.isPermanent } else { return false } }) {
            _ = try await Client.connect(port: upstream.port, host: "localhost", try Client.tlsConfiguration(.required, username: "relay", password: "pw"))
        }
    }

    /// RELIABILITY F4, RFC 2920 §3.1: every RCPT refused, DATA still answered 354 —
    /// the client sends a lone dot and no content.
    @Test func loneDotWhenNoRecipientButDataAccepted() async throws {
        let upstream = try await ScriptedUpstream.start(["always_354": true, "rcpt_replies": ["a@example.test": "550 5.1.1 no"]])
        let connection = try await Client.connect(port: upstream.port, Client.configuration())
        let report = try await connection.send(Client.envelope(["a@example.test"]), content: Client.message)
        #expect(report.recipientReplies.map(\.code) == [550])
        #expect(report.dataReply == nil)
        #expect(try #require(await upstream.message(1)) == Array(".\r\n".utf8))
        #expect(connection.isUsable)
        #expect(try await connection.send(Client.envelope(["b@example.test"]), content: Client.message).dataReply?.code == 250)
        await connection.close()
        #expect(await waitUntil(timeout: 10) { upstream.session(1).contains("QUIT") })
        #expect(!upstream.session(1).contains("Hello.\r\n.\r\nMAIL"))
    }

    /// RELIABILITY F6: silence after the dot ends in a timeout (a 451), not a success.
    @Test func hangAfterTheDotTimesOut() async throws {
        let upstream = try await ScriptedUpstream.start(["after_dot": "hang"])
        var configuration = Client.configuration()
        configuration.dataTimeout = .seconds(1)
        let connection = try await Client.connect(port: upstream.port, configuration)
        await expectClientError({ if case .timeout = $0 { return !$0.isPermanent && $0.reply?.code == 451 } else { return false } }) {
            _ = try await connection.send(Client.envelope(["a@example.test"]), content: Client.message)
        }
        #expect(!connection.isUsable)
        await connection.close()
    }

    @Test func connectionDropMidTransaction() async throws {
        let upstream = try await ScriptedUpstream.start(["rcpt_replies": ["b@example.test": "close"]])
        let connection = try await Client.connect(port: upstream.port, Client.configuration())
        await expectClientError({ $0 == .connectionClosed && $0.reply?.code == 451 }) {
            _ = try await connection.send(Client.envelope(["a@example.test", "b@example.test"]), content: Client.message)
        }
        #expect(!connection.isUsable)
    }

    @Test func serverGoneWhileIdle() async throws {
        let upstream = try await ScriptedUpstream.start([:])
        let connection = try await Client.connect(port: upstream.port, Client.configuration())
        upstream.stop()
        await waitUntil(timeout: 5, interval: 0.02) { !connection.isUsable }
        #expect(!connection.isUsable)
        await expectClientError({ $0 == .connectionClosed }) {
            _ = try await connection.send(Client.envelope(["a@example.test"]), content: Client.message)
        }
    }
}
