import Foundation
import MilterStage
import NIOCore
import PolicyTestSupport
import TestSupport
import Testing
import TollgatePolicy

/// The client against a recording milter: negotiation, macros, the order of steps,
/// body chunks, ABORT/QUIT, every reply and modification, timeouts and garbage.
@Suite(.serialized) struct MilterProtocolTests {
    func stage(_ milter: RecordingMilter, timeout: Double = 2) -> MilterStage {
        MilterStage(settings: MilterSettings(server: .inet(host: "127.0.0.1", port: milter.port), timeout: timeout, connectTimeout: 1, hostname: "relay.example"))
    }

    @Test func negotiatesVersion6AndSendsEveryStepInOrderWithMacros() async throws {
        let milter = try RecordingMilter(RecordingMilter.continuing())
        defer { milter.stop() }
        let stage = self.stage(milter)
        var s = Session()
        s.message = Array("From: a@example.com\r\nSubject: big\r\n\tfolded\r\n\r\n".utf8) + Array(repeating: UInt8(ascii: "x"), count: 150_000) + [13, 10]
        let decisions = try await s.run(stage, recipients: ["b@example.net", "c@example.org"], user: "alice")
        #expect(decisions.allSatisfy { $0.verdict == .continue })
        await stage.sessionClosed(sessionID: "s1")
        try await Task.sleep(for: .milliseconds(200))

        // O(ptneg), C(onnect), H(elo), M(ail), R(cpt)×2, T (data), L (header)×2, N (eoh), B×3, E(om), Q(uit)
        #expect(milter.commands == "OCHMRRTLLNBBBEQ")
        let optneg = milter.packets[0]
        #expect(Array(optneg.data[0..<4]) == be(6))
        #expect(Array(optneg.data[4..<8]) == be(0x7F))          // ADDHDRS CHGBODY ADDRCPT DELRCPT CHGHDRS QUARANTINE CHGFROM
        #expect(Array(optneg.data[8..<12]) == be(Milter.Steps.offered.rawValue))
        let bodies = milter.packets.filter { $0.code == Milter.Command.body.rawValue }.map(\.data.count)
        #expect(bodies == [65535, 65535, 150_002 - 2 * 65535])
        let connect = milter.packets.first { $0.code == Milter.Command.connect.rawValue }!
        #expect(connect.data == nul("[127.0.0.1]") + Array("4".utf8) + [0, 0] + nul("127.0.0.1"))
        let header = milter.packets.filter { $0.code == Milter.Command.header.rawValue }[1]
        #expect(header.data == nul("Subject", "big\r\n\tfolded"))
        #expect(milter.macros(for: .connect) == ["j": "relay.example", "{daemon_name}": "relay", "v": "Tollgate", "_": "unknown [127.0.0.1]", "{client_addr}": "127.0.0.1", "{client_name}": "unknown", "{client_ptr}": "unknown"])
        #expect(milter.macros(for: .helo).isEmpty, "no TLS, no TLS macros")
        #expect(milter.macros(for: .mail) == ["{auth_authen}": "alice", "{mail_addr}": "a@example.com", "{mail_host}": "example.com", "{mail_mailer}": "smtp"])
        #expect(milter.macros(for: .rcpt)["{rcpt_addr}"] == "c@example.org")     // the last one sent
        let mail = milter.packets.first { $0.code == Milter.Command.mail.rawValue }!
        #expect(mail.data == nul("<a@example.com>"))
        #expect(await stage.openSessions() == 0)
        await stage.shutdown()
    }

    /// Postfix's macros from the connection record: names and ports at CONNECT (and
    /// the name and port in its packet), the TLS session and client certificate at
    /// HELO, the mechanism at MAIL, the queue id `i` with MAIL, RCPT, DATA, EOH and EOM.
    @Test func macrosCarryTheConnectionTLSAuthAndQueueID() async throws {
        let milter = try RecordingMilter(RecordingMilter.continuing())
        defer { milter.stop() }
        let stage = self.stage(milter)
        var s = Session()
        let certificate = ClientCertificate(subject: "app1.corp.example", issuer: "Corp Issuing CA", fingerprint: "AA:BB", publicKeyFingerprint: "CC:DD")
        s.connection = ConnectionInfo(
            clientPort: 40_001, clientName: "app1.corp.example", reverseClientName: "app1.corp.example", serverAddress: "127.0.0.2", serverPort: 587,
            saslMethod: "PLAIN", tls: TLSInfo(protocolVersion: "TLSv1.3", cipher: "TLS_AES_256_GCM_SHA384", cipherBits: 256, clientCertificate: certificate)
        )
        s.queueID = "4Q1R2S3T"
        _ = try await s.run(stage, recipients: ["b@example.net"], user: "alice")
        await stage.sessionClosed(sessionID: "s1")
        try await Task.sleep(for: .milliseconds(200))
        let connect = milter.packets.first { $0.code == Milter.Command.connect.rawValue }!
        #expect(connect.data == nul("app1.corp.example") + Array("4".utf8) + [0x9C, 0x41] + nul("127.0.0.1"))
        #expect(milter.macros(for: .connect) == [
            "j": "relay.example", "{daemon_name}": "relay", "v": "Tollgate", "{daemon_addr}": "127.0.0.2", "{daemon_port}": "587",
            "_": "app1.corp.example [127.0.0.1]", "{client_addr}": "127.0.0.1", "{client_port}": "40001",
            "{client_name}": "app1.corp.example", "{client_ptr}": "app1.corp.example",
        ])
        #expect(milter.macros(for: .helo) == [
            "{tls_version}": "TLSv1.3", "{cipher}": "TLS_AES_256_GCM_SHA384", "{cipher_bits}": "256",
            "{cert_subject}": "app1.corp.example", "{cert_issuer}": "Corp Issuing CA",
        ])
        #expect(milter.macros(for: .mail) == [
            "i": "4Q1R2S3T", "{auth_type}": "PLAIN", "{auth_authen}": "alice", "{mail_addr}": "a@example.com", "{mail_host}": "example.com", "{mail_mailer}": "smtp",
        ])
        for command in [Milter.Command.rcpt, .data, .endOfHeader, .endOfMessage] {
            #expect(milter.macros(for: command)["i"] == "4Q1R2S3T", "\(command)")
        }
        // A PTR name that does not resolve back: Postfix's "(may be forged)".
        let forged = try RecordingMilter(RecordingMilter.continuing())
        defer { forged.stop() }
        var f = Session()
        f.connection = ConnectionInfo(clientPort: 1, clientName: nil, reverseClientName: "spoofed.example")
        _ = try await self.stage(forged).evaluate(f.context(.connect))
        #expect(forged.macros(for: .connect)["_"] == "spoofed.example [127.0.0.1] (may be forged)")
        await stage.shutdown()
    }

    @Test func abortsATransactionWithoutEndOfMessageAndHonoursNoStepAndNoReplyFlags() async throws {
        let milter = try RecordingMilter(RecordingMilter.continuing(steps: [.noHelo, .noRcpt, .noReplyHeader, .noBody, .noData]))
        defer { milter.stop() }
        let stage = self.stage(milter)
        let s = Session()
        _ = try await stage.evaluate(s.context(.connect))
        _ = try await stage.evaluate(s.context(.helo))
        _ = try await stage.evaluate(s.context(.mail, sender: "a@example.com"))
        _ = try await stage.evaluate(s.context(.rcpt, sender: "a@example.com", recipient: "x@example.net"))
        // the client said RSET (or the transaction was refused): a new MAIL
        _ = try await stage.evaluate(s.context(.mail, sender: "b@example.com"))
        let d = try await stage.evaluate(s.context(.data, sender: "b@example.com", recipients: ["y@example.net"]))
        #expect(d.verdict == .continue)
        await stage.sessionClosed(sessionID: "s1")
        try await Task.sleep(for: .milliseconds(200))
        // no H, R, T or B; headers sent without waiting for a reply (NR_HDR), ABORT before the second MAIL
        #expect(milter.commands == "OCMAMLLLNEQ")
        await stage.shutdown()
    }

    @Test func repliesBecomeVerdicts() async throws {
        // reject at RCPT for one recipient, replycode at EOM
        let milter = try RecordingMilter(RecordingMilter.continuing(override: { p in
            if p.code == Milter.Command.rcpt.rawValue, p.data == nul("<bad@example.net>") { return .packets([reply(.reject)]) }
            if p.code == Milter.Command.rcpt.rawValue, p.data == nul("<later@example.net>") { return .packets([reply(.tempfail)]) }
            if p.code == Milter.Command.endOfMessage.rawValue { return .packets([reply(.replyCode, nul("554 5.7.1 Spam message rejected; see https://example.com/x"))]) }
            return nil
        }))
        defer { milter.stop() }
        let stage = self.stage(milter)
        let decisions = try await Session().run(stage, recipients: ["bad@example.net", "later@example.net", "ok@example.net"])
        #expect(decisions[3].verdict == .reject(PolicyReply(code: 550, enhancedCode: "5.7.1", text: "Command rejected")))
        #expect(decisions[4].verdict == .defer(PolicyReply(code: 451, enhancedCode: "4.7.1", text: "Service unavailable - try again later")))
        #expect(decisions[5].verdict == .continue)
        #expect(decisions[6].verdict == .reject(PolicyReply(code: 554, enhancedCode: "5.7.1", text: "Spam message rejected; see https://example.com/x")))
        await stage.shutdown()

        // tempfail by replycode at MAIL; the transaction is over for the milter
        let m2 = try RecordingMilter(RecordingMilter.continuing(override: { p in
            p.code == Milter.Command.mail.rawValue ? .packets([reply(.replyCode, nul("421 4.3.2 going down"))]) : nil
        }))
        defer { m2.stop() }
        let st2 = self.stage(m2)
        let d2 = try await Session().run(st2)
        #expect(d2[2].verdict == .defer(PolicyReply(code: 421, enhancedCode: "4.3.2", text: "going down")))
        #expect(!m2.commands.contains("R"))
        await st2.shutdown()
    }

    @Test func acceptAndDiscardAndQuarantine() async throws {
        // accept at MAIL: nothing more is sent for the message
        let m1 = try RecordingMilter(RecordingMilter.continuing(override: { p in
            p.code == Milter.Command.mail.rawValue ? .packets([reply(.accept)]) : nil
        }))
        defer { m1.stop() }
        let s1 = self.stage(m1)
        let d1 = try await Session().run(s1)
        #expect(d1.allSatisfy { $0.verdict == .continue && $0.disposition == .deliver })
        #expect(m1.commands == "OCHM")
        await s1.shutdown()

        // discard at RCPT: the message is accepted and dropped
        let m2 = try RecordingMilter(RecordingMilter.continuing(override: { p in
            p.code == Milter.Command.rcpt.rawValue ? .packets([reply(.discard)]) : nil
        }))
        defer { m2.stop() }
        let s2 = self.stage(m2)
        let d2 = try await Session().run(s2)
        #expect(d2[3].disposition == .discard(reason: "discarded by the milter"))
        #expect(d2[4].disposition == .discard(reason: "discarded by the milter"))
        await s2.shutdown()

        // quarantine at EOM: held
        let m3 = try RecordingMilter(RecordingMilter.continuing(eom: [reply(.quarantine, nul("looks odd"))]))
        defer { m3.stop() }
        let s3 = self.stage(m3)
        let d3 = try await Session().run(s3)
        #expect(d3.last!.disposition == .hold(reason: "quarantined by the milter: looks odd"))
        #expect(d3.last!.verdict == .continue)
        await s3.shutdown()
    }

    @Test func modificationsAtEndOfMessage() async throws {
        let eom = [
            reply(.addHeader, nul("X-Added", "yes\n\tfolded")),
            reply(.insertHeader, be(0) + nul("X-Top", "first")),
            reply(.changeHeader, be(1) + nul("Subject", "[milter] hi")),
            reply(.changeHeader, be(2) + nul("X-Dup", "")),
            reply(.replaceBody, Array("new body\n".utf8)),
            reply(.replaceBody, Array("second chunk\r\n".utf8)),
            reply(.addRecipient, nul("<added@example.net>")),
            reply(.deleteRecipient, nul("<b@example.net>")),
            reply(.changeFrom, nul("<bounce@example.com>")),
            reply(.progress),
        ]
        let milter = try RecordingMilter(RecordingMilter.continuing(eom: eom))
        defer { milter.stop() }
        let stage = self.stage(milter)
        var s = Session()
        s.message = Array("From: a@example.com\r\nSubject: hi\r\nX-Dup: 1\r\nX-Dup: 2\r\n\r\nold\r\n".utf8)
        let d = try await s.run(stage).last!
        #expect(d.verdict == .continue)
        #expect(d.changes == [
            .addHeader(name: "X-Added", value: "yes\r\n\tfolded"),
            .insertHeader(index: 0, name: "X-Top", value: "first"),
            .changeHeader(name: "Subject", occurrence: 1, value: "[milter] hi"),
            .removeHeader(name: "X-Dup", occurrence: 2),
            .replaceBody(Array("new body\r\nsecond chunk\r\n".utf8)),
        ])
        #expect(d.envelopeChanges == [.addRecipient("added@example.net"), .removeRecipient("b@example.net"), .changeSender("bounce@example.com")])
        let changed = try MessageContent(parsing: s.message).applying(d.changes)
        #expect(String(decoding: changed.bytes, as: UTF8.self)
            == "X-Top: first\r\nFrom: a@example.com\r\nSubject: [milter] hi\r\nX-Dup: 1\r\nX-Added: yes\r\n\tfolded\r\n\r\nnew body\r\nsecond chunk\r\n")
        await stage.shutdown()
    }

    @Test func anActionNotNegotiatedIsAProtocolError() async throws {
        let milter = try RecordingMilter(RecordingMilter.continuing(actions: [.addHeaders], eom: [reply(.replaceBody, Array("x\r\n".utf8))]))
        defer { milter.stop() }
        let stage = self.stage(milter)
        await #expect(throws: MilterError.notNegotiated("REPLBODY")) { _ = try await Session().run(stage) }
        await stage.shutdown()

        // actions beyond those offered at negotiation
        let m2 = try RecordingMilter(RecordingMilter.continuing(actions: Milter.Actions(rawValue: 0x1FF)))
        defer { m2.stop() }
        let s2 = self.stage(m2)
        await #expect(throws: MilterError.self) { _ = try await s2.evaluate(Session().context(.connect)) }
        await s2.shutdown()
    }

    @Test func progressKeepsWaitingAndSilenceTimesOut() async throws {
        // progress every 500 ms for 2 s, then continue; the timeout is 1.2 s (room for a
        // loaded machine between two progress replies, none for the whole wait)
        let milter = try RecordingMilter(RecordingMilter.continuing(override: { p in
            guard p.code == Milter.Command.endOfMessage.rawValue else { return nil }
            return .delayed([(0.5, reply(.progress)), (0.5, reply(.progress)), (0.5, reply(.progress)), (0.5, reply(.progress)), (0.5, reply(.continue))])
        }))
        defer { milter.stop() }
        let stage = self.stage(milter, timeout: 1.2)
        let d = try await Session().run(stage)
        #expect(d.last!.verdict == .continue)
        await stage.shutdown()

        let silent = try RecordingMilter(RecordingMilter.continuing(override: { p in
            p.code == Milter.Command.mail.rawValue ? .silent : nil
        }))
        defer { silent.stop() }
        let st = self.stage(silent, timeout: 0.3)
        let s = Session()
        _ = try await st.evaluate(s.context(.connect))
        _ = try await st.evaluate(s.context(.helo))
        let start = Date()
        await #expect(throws: MilterError.timeout("no reply to MAIL within 300ms")) { _ = try await st.evaluate(s.context(.mail, sender: "a@example.com")) }
        #expect(Date().timeIntervalSince(start) < 5)
        // the rest of the session fails at once (the stage's on_error applies)
        await #expect(throws: MilterError.self) { _ = try await st.evaluate(s.context(.rcpt, sender: "a@example.com", recipient: "b@example.net")) }
        await st.shutdown()
    }

    @Test func garbageIsAProtocolError() async throws {
        let milter = try RecordingMilter { _ in .raw(Array("HTTP/1.1 400 Bad Request\r\n\r\n".utf8)) }
        defer { milter.stop() }
        let st = self.stage(milter)
        await #expect(throws: MilterError.self) { _ = try await st.evaluate(Session().context(.connect)) }
        await st.shutdown()
    }

    @Test func anUnknownReplyIsAProtocolError() async throws {
        let m2 = try RecordingMilter(RecordingMilter.continuing(override: { p in
            p.code == Milter.Command.helo.rawValue ? .packets([MilterPacket(code: UInt8(ascii: "Z"))]) : nil
        }))
        defer { m2.stop() }
        let s2 = self.stage(m2)
        _ = try await s2.evaluate(Session().context(.connect))
        await #expect(throws: MilterError.self) { _ = try await s2.evaluate(Session().context(.helo)) }
        await s2.shutdown()
    }

    @Test func aMilterThatIsDownIsAConnectError() async throws {
        let down = MilterStage(settings: MilterSettings(server: .inet(host: "127.0.0.1", port: freePort()), timeout: 1, connectTimeout: 1))
        do {
            _ = try await down.evaluate(Session().context(.connect))
            Issue.record("connected to a closed port")
        } catch let error as MilterError {
            #expect("\(error)".contains("connection refused"), "\(error)")
        }
        await down.shutdown()
    }

    @Test func oneConnectionPerSession() async throws {
        let milter = try RecordingMilter(RecordingMilter.continuing())
        defer { milter.stop() }
        let stage = self.stage(milter)
        for i in 0..<5 {
            var s = Session()
            s.id = "s\(i)"
            _ = try await stage.evaluate(s.context(.connect))
        }
        #expect(await stage.openSessions() == 5)
        #expect(milter.connections.withLockedValue { $0 } == 5)
        for i in 0..<5 { await stage.sessionClosed(sessionID: "s\(i)") }
        #expect(await stage.openSessions() == 0)
        await stage.shutdown()
    }

    @Test func settingsAreCheckedWithLocations() {
        let host = TestHost()
        let bad: Y = ["server": "tcp://127.0.0.1:8891", "timeout": "10", "colour": "red"]
        let problems = MilterFactory().validate(settings: bad.settings(), host: host).map(\.description)
        #expect(problems.contains { $0.hasPrefix("/etc/tollgate/tollgate.yaml:") && $0.contains("server is inet:HOST:PORT") }, "\(problems)")
        #expect(problems.contains { $0.contains("colour") }, "\(problems)")
        #expect(problems.contains { $0.contains("timeout") }, "\(problems)")
        let good: Y = ["server": "inet:127.0.0.1:8891", "timeout": "5s"]
        #expect(MilterFactory().validate(settings: good.settings(), host: host).isEmpty)
        #expect(MilterAddress.parse("inet:8891@localhost") == .inet(host: "localhost", port: 8891))
        #expect(MilterAddress.parse("unix:/run/opendkim/opendkim.sock") == .unix(path: "/run/opendkim/opendkim.sock"))
        #expect(MilterAddress.parse("inet6:[::1]:11332") == .inet(host: "::1", port: 11332))
        #expect(MilterAddress.parse("inet:host") == nil)
    }
}
