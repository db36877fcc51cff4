import Foundation
import PolicyTestSupport
import TestSupport
import Testing
import TollgatePolicy

@testable import PostfixPolicyStage

/// The stage against a recording policy server: what is sent at each phase, the
/// `instance`, connection reuse, timeouts, garbage, a server that goes away.
@Suite struct PostfixPolicyRecordingTests {
    /// One transaction through every phase; the server answers DUNNO.
    @Test func attributesAtEachPhaseAndInstance() async throws {
        let server = try RecordingPolicyServer { _ in .action("DUNNO") }
        defer { server.stop() }
        let stage = try await makeStage([("server", .scalar(server.address)), ("phases", ["connect", "helo", "mail", "rcpt", "data"])])
        defer { Task { await stage.shutdown() } }
        for phase in [PolicyPhase.connect, .helo, .mail] {
            #expect(try await stage.evaluate(context(phase)).verdict == .continue)
        }
        _ = try await stage.evaluate(context(.rcpt, recipient: "bob@example.net"))
        _ = try await stage.evaluate(context(.rcpt, recipient: "carol@example.net", recipients: ["bob@example.net"]))
        let data = try await stage.evaluate(context(.data, recipients: ["bob@example.net", "carol@example.net"], size: 1234))
        #expect(data.reason == "\(server.address) said \"DUNNO\"")
        // The next transaction in the same session.
        _ = try await stage.evaluate(context(.mail, sender: "second@example.com"))
        _ = try await stage.evaluate(context(.rcpt, recipient: "dave@example.net", sender: "second@example.com"))

        let seen = server.requests
        try #require(seen.count == 8)
        // Every attribute Postfix sends, in its order, nothing else.
        for request in seen { #expect(request.attributes.map(\.0) == PolicyProtocol.attributeNames) }
        #expect(seen.map { $0["protocol_state"]! } == ["CONNECT", "EHLO", "MAIL", "RCPT", "RCPT", "END-OF-MESSAGE", "MAIL", "RCPT"])
        #expect(seen.allSatisfy { $0["request"] == "smtpd_access_policy" && $0["client_address"] == "192.0.2.7" })
        #expect(seen[0]["helo_name"] == "" && seen[1]["helo_name"] == "client.example.org")
        #expect(seen[2]["sender"] == "alice@example.com" && seen[2]["recipient"] == "")
        #expect(seen[3]["recipient"] == "bob@example.net" && seen[4]["recipient"] == "carol@example.net")
        #expect(seen[3]["recipient_count"] == "0" && seen[5]["recipient_count"] == "2" && seen[5]["size"] == "1234")
        #expect(seen[6]["sender"] == "second@example.com" && seen[7]["recipient"] == "dave@example.net")
        // instance: one value for MAIL…END-OF-MESSAGE of a transaction, another for the next.
        let first = Set(seen[2...5].map { $0["instance"]! })
        let second = Set(seen[6...7].map { $0["instance"]! })
        #expect(first.count == 1 && second.count == 1 && first != second, "\(first) \(second)")
        // Not known here (no TLS, no queue id, no reverse DNS): empty, or "unknown" as Postfix says.
        #expect(seen.allSatisfy { $0["queue_id"] == "" && $0["ccert_fingerprint"] == "" && $0["encryption_cipher"] == "" && $0["client_port"] == "" })
        #expect(seen.allSatisfy { $0["client_name"] == "unknown" && $0["reverse_client_name"] == "unknown" })
        // One connection, reused for every request.
        #expect(server.connections == 1 && stage.pool.connectionsOpened == 1)
        // A new session gets another instance again.
        _ = try await stage.evaluate(context(.mail, session: "S2"))
        #expect(server.requests.last!["instance"]! != seen[6]["instance"]!)
    }

    /// The connection record as Postfix sends it: names, ports, the SASL mechanism,
    /// the TLS session, the client certificate, and the queue id from MAIL on.
    @Test func connectionTLSCertificateAndQueueIDAttributes() async throws {
        let server = try RecordingPolicyServer { _ in .action("DUNNO") }
        defer { server.stop() }
        let stage = try await makeStage([("server", .scalar(server.address)), ("phases", ["connect", "mail", "rcpt"])])
        defer { Task { await stage.shutdown() } }
        let certificate = ClientCertificate(subject: "app1.corp.example", issuer: "Corp Issuing CA", fingerprint: "AA:BB:CC", publicKeyFingerprint: "DD:EE:FF")
        let connection = ConnectionInfo(
            clientPort: 40_001, clientName: nil, reverseClientName: "spoofed.example", serverAddress: "192.0.2.1", serverPort: 587,
            saslMethod: "LOGIN", tls: TLSInfo(protocolVersion: "TLSv1.2", cipher: "ECDHE-RSA-AES256-GCM-SHA384", cipherBits: 256, clientCertificate: certificate)
        )
        _ = try await stage.evaluate(context(.connect, connection: connection))
        _ = try await stage.evaluate(context(.mail, user: "alice", connection: connection, queueID: "4Q1R2S3T"))
        _ = try await stage.evaluate(context(.rcpt, recipient: "bob@example.net", user: "alice", connection: connection, queueID: "4Q1R2S3T"))
        let seen = server.requests
        try #require(seen.count == 3)
        for request in seen {
            #expect(request["client_port"] == "40001" && request["server_address"] == "192.0.2.1" && request["server_port"] == "587")
            // A PTR name that is not forward-confirmed: the client is unknown, its reverse name is kept.
            #expect(request["client_name"] == "unknown" && request["reverse_client_name"] == "spoofed.example")
            #expect(request["encryption_protocol"] == "TLSv1.2" && request["encryption_cipher"] == "ECDHE-RSA-AES256-GCM-SHA384" && request["encryption_keysize"] == "256")
            #expect(request["ccert_subject"] == "app1.corp.example" && request["ccert_issuer"] == "Corp Issuing CA")
            #expect(request["ccert_fingerprint"] == "AA:BB:CC" && request["ccert_pubkey_fingerprint"] == "DD:EE:FF")
        }
        #expect(seen[0]["queue_id"] == "" && seen[0]["sasl_method"] == "")
        #expect(seen[1]["queue_id"] == "4Q1R2S3T" && seen[2]["queue_id"] == "4Q1R2S3T")
        #expect(seen[1]["sasl_method"] == "LOGIN" && seen[1]["sasl_username"] == "alice")
    }

    @Test func unixSocketsAndSaslUser() async throws {
        let dir = try TemporaryDirectory(label: "policy-unix")
        defer { dir.remove() }
        let server = try RecordingPolicyServer(unixPath: dir.file("policy.sock")) { r in
            .action(r["sasl_username"] == "alice" ? "OK" : "REJECT who are you")
        }
        defer { server.stop() }
        let stage = try await makeStage([("server", .scalar(server.address))])
        #expect(try await stage.evaluate(context(.rcpt, recipient: "b@example.net", user: "alice")).verdict == .continue)
        #expect(try await stage.evaluate(context(.rcpt, recipient: "b@example.net")).verdict == .reject(PolicyReply(code: 554, enhancedCode: "5.7.1", text: "who are you")))
        // Default phases (rcpt only): MAIL sends nothing but starts a new instance.
        #expect(try await stage.evaluate(context(.mail)).verdict == .continue)
        _ = try await stage.evaluate(context(.rcpt, recipient: "b@example.net", user: "alice"))
        #expect(server.requests.count == 3 && server.requests.allSatisfy { $0["protocol_state"] == "RCPT" })
        #expect(server.requests[0]["instance"] == server.requests[1]["instance"])
        #expect(server.requests[2]["instance"] != server.requests[1]["instance"])
        #expect(server.connections == 1)
    }

    @Test func aClosedKeptConnectionIsReopenedOnce() async throws {
        let server = try RecordingPolicyServer { _ in .actionThenClose("DUNNO") }
        defer { server.stop() }
        let stage = try await makeStage([("server", .scalar(server.address)), ("connections", "1")])
        for n in 0..<3 {
            #expect(try await stage.evaluate(context(.rcpt, recipient: "r\(n)@example.net")).verdict == .continue)
        }
        #expect(server.requests.count == 3 && server.connections == 3)
    }

    @Test func timeoutsGarbageAndAServerThatIsDownThrow() async throws {
        let slow = try RecordingPolicyServer { _ in .silence(3) }
        defer { slow.stop() }
        let stage = try await makeStage([("server", .scalar(slow.address)), ("timeout", "300ms")])
        let started = Date()
        let error = await #expect(throws: PolicyServerError.self) { try await stage.evaluate(context(.rcpt, recipient: "b@example.net")) }
        let took = Date().timeIntervalSince(started)
        // The stage's own timeout ended the wait: had it waited for the server, the
        // server's close after 3 s would have been a broken connection, not a timeout.
        // Not before the limit; no upper time bound, which a loaded run broke (6 s).
        if case .timeout = error {} else { Issue.record("not a timeout: \(String(describing: error))") }
        #expect(took >= 0.29, "\(took)")

        let answers = ["action=MAYBE\n\n", "no action here\n\n", "action=REDIRECT x@example.net\n\n", "action=DUNNO"]
        let garbage = try RecordingPolicyServer { r in .raw(answers[Int(r["recipient"]!.prefix(1))!]) }
        defer { garbage.stop() }
        let g = try await makeStage([("server", .scalar(garbage.address)), ("timeout", "500ms")])
        for n in 0..<answers.count {
            await #expect(throws: PolicyServerError.self, "answer \(answers[n].debugDescription)") {
                try await g.evaluate(context(.rcpt, recipient: "\(n)@example.net"))
            }
        }

        let down = try await makeStage([("server", .scalar("127.0.0.1:\(freePort())")), ("timeout", "1s")])
        do {
            _ = try await down.evaluate(context(.rcpt, recipient: "b@example.net"))
            Issue.record("a server that is down must make the stage throw")
        } catch let error as PolicyServerError {
            guard case .connect = error else { Issue.record("\(error)"); return }
        }
    }

    @Test func identicalRequestsAreCachedOnlyWhenAsked() async throws {
        let server = try RecordingPolicyServer { _ in .action("REJECT cached answer") }
        defer { server.stop() }
        let cached = try await makeStage([("server", .scalar(server.address)), ("cache", "1m")])
        for session in ["S1", "S2", "S3"] {
            let d = try await cached.evaluate(context(.rcpt, session: "S-\(session)", recipient: "b@example.net"))
            #expect(d.verdict.name == "reject")
        }
        #expect(server.requests.count == 1)
        let plain = try await makeStage([("server", .scalar(server.address))])
        for _ in 0..<3 { _ = try await plain.evaluate(context(.rcpt, recipient: "b@example.net")) }
        #expect(server.requests.count == 4)
    }

    @Test func prependHoldDiscardWarnAtTheStage() async throws {
        let answers = ["PREPEND X-Policy: looked at", "HOLD check this one", "DISCARD not wanted", "WARN odd sender", "BCC audit@example.com"]
        let server = try RecordingPolicyServer { r in .action(answers[Int(r["recipient"]!.prefix(1))!]) }
        defer { server.stop() }
        let host = TestHost()
        let stage = try await makeStage([("server", .scalar(server.address))], host: host)
        let d = try await (0..<answers.count).asyncMap { try await stage.evaluate(context(.rcpt, recipient: "\($0)@example.net")) }
        #expect(d.allSatisfy { $0.verdict == .continue })
        #expect(d[0].changes == [.insertHeader(index: 0, name: "X-Policy", value: "looked at")])
        #expect(d[1].disposition == .hold(reason: "check this one"))
        #expect(d[2].disposition == .discard(reason: "not wanted"))
        #expect(host.logs.contains { $0.contains("policy server warning: odd sender") })
        #expect(host.logs.contains { $0.contains("BCC is not supported") })
    }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for e in self { out.append(try await transform(e)) }
        return out
    }
}
