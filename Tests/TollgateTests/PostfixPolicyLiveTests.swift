import Foundation
import TestSupport
import Testing

/// The `postfix-policy` stage in a real `tollgate serve`, asking a real postfwd at
/// RCPT: a REJECT rule gives the client 5xx with postfwd's text, a DEFER rule 4xx for
/// that recipient only (the others are accepted and delivered), DUNNO passes, PREPEND
/// adds its header, HOLD keeps the message held; postfwd down gives the stage's
/// `on_error`. The rules are the README's example.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(3))) struct PostfixPolicyLiveTests {
        static let rules = """
            id=R1; recipient==blocked@example.net; action=REJECT postfwd R1 refuses $$recipient from $$client_address
            id=D1; recipient==later@example.net; action=DEFER postfwd D1 defers $$recipient for $$sender
            id=H1; recipient==held@example.net; action=HOLD postfwd H1 holds $$recipient
            id=P1; recipient==tagged@example.net; action=PREPEND X-Postfwd: tagged instance=$$instance

            """

        /// A relay (not started) delivering to the sink at `sinkPort`, asking postfwd at RCPT.
        static func relay(postfwd address: String, sinkPort: Int, directory dir: TemporaryDirectory) throws -> RelayProcess {
            try RelayProcess(
                rest: upstreamSection(port: sinkPort) + """

                    stages:
                      - use: postfix-policy
                        on_error: defer
                        settings:
                          server: \(address)
                          phases: [rcpt]
                          timeout: 5s
                    """,
                directory: dir
            )
        }

        @Test func postfwdRejectDeferDunnoPrependHoldAndDown() async throws {
            try #require(ExecutableLookup.find("postfwd2") != nil, "postfwd is not installed (scripts/install-deps.sh)")
            let postfwd = try await Postfwd.start(rules: Self.rules)
            var postfwdStopped = false
            defer { if !postfwdStopped { Task { await postfwd.shutdown() } } }
            let dir = try TemporaryDirectory(label: "policylive")
            let sinkPort = freePort()
            let sink = try RawSMTPSink.start(port: sinkPort, directory: dir.path + "/sink")
            defer { sink.stop() }
            let relay = try Self.relay(postfwd: postfwd.address, sinkPort: sinkPort, directory: dir)
            #expect(try relay.cli(["check"]).status == 0)
            try relay.start()
            defer { relay.stop() }

            let client = try SMTPTestClient.connect(port: relay.port)
            defer { client.close() }
            #expect(try client.readReply().code == 220)
            try client.command("EHLO client.example.org", expect: 250)
            try client.command("MAIL FROM:<alice@example.com>", expect: 250)
            let blocked = try client.command("RCPT TO:<blocked@example.net>")
            #expect(blocked.code == 554 && blocked.enhancedCode == "5.7.1", "\(blocked)")
            #expect(blocked.text.contains("postfwd R1 refuses blocked@example.net from 127.0.0.1"), "\(blocked)")
            let later = try client.command("RCPT TO:<later@example.net>")
            #expect(later.code == 450 && later.text.contains("postfwd D1 defers later@example.net for alice@example.com"), "\(later)")
            try client.command("RCPT TO:<ok@example.net>", expect: 250)
            try client.command("RCPT TO:<tagged@example.net>", expect: 250)
            try client.command("DATA", expect: 354)
            try client.sendRaw(Array("From: alice@example.com\r\nSubject: policy\r\nX-Marker: first\r\n\r\nBody.\r\n.\r\n".utf8))
            #expect(try client.readReply().code == 250)

            // A held message: accepted, kept in the queue as held.
            let held = try SMTPTestClient.sendMessage(port: relay.port, from: "alice@example.com", to: ["held@example.net"], data: Array("Subject: held\r\nX-Marker: held\r\n\r\nBody.\r\n".utf8))
            #expect(held.code == 250, "\(held)")

            #expect(await waitUntil(timeout: 20) { !sink.messages().isEmpty }, "\(relay.log.suffix(3000))")
            try await Task.sleep(for: .seconds(1))
            let messages = sink.messages()
            #expect(messages.count == 1, "\(messages.map(\.text))")
            let first = try #require(messages.first)
            // Only the accepted recipients; the deferred one is left to the client's retry.
            #expect(Set(first.rcptTo) == ["ok@example.net", "tagged@example.net"], "\(first.rcptTo)")
            #expect(first.text.contains("\r\nX-Postfwd: tagged instance=") || first.text.hasPrefix("X-Postfwd: tagged instance="), "\(first.text)")
            let heldID = held.text.split(separator: " ").last.map(String.init) ?? ""
            let list = try relay.cli(["queue", "list", "--state", "held"]).stdout
            #expect(!heldID.isEmpty && list.contains(heldID), "\(heldID): \(list)")
            // What postfwd answered is in the decision trace.
            #expect(relay.log.contains("REJECT postfwd R1 refuses blocked@example.net"), "\(relay.log.suffix(3000))")

            // postfwd down: on_error (defer, 451 4.3.0) for every recipient.
            await postfwd.shutdown()
            postfwdStopped = true
            try client.command("MAIL FROM:<alice@example.com>", expect: 250)
            let down = try client.command("RCPT TO:<ok@example.net>")
            #expect(down.code == 451 && down.enhancedCode == "4.3.0", "\(down)")
        }

        /// postfwd's `action=DISCARD` at RCPT through a real relay: the client gets `250`
        /// (as from Postfix), nothing is queued or delivered, and the log says
        /// `discarded` with postfwd's text. A message sent after it to another recipient
        /// is delivered, so the sink was reachable all along.
        @Test func postfwdDiscardAnswers250AndDeliversNothing() async throws {
            try #require(ExecutableLookup.find("postfwd2") != nil, "postfwd is not installed (scripts/install-deps.sh)")
            let postfwd = try await Postfwd.start(rules: "id=X1; recipient==dropped@example.net; action=DISCARD postfwd X1 drops $$recipient\n")
            defer { Task { await postfwd.shutdown() } }
            let dir = try TemporaryDirectory(label: "policydiscard")
            let sinkPort = freePort()
            let sink = try RawSMTPSink.start(port: sinkPort, directory: dir.path + "/sink")
            defer { sink.stop() }
            let relay = try Self.relay(postfwd: postfwd.address, sinkPort: sinkPort, directory: dir)
            try relay.start()
            defer { relay.stop() }

            let dropped = try SMTPTestClient.sendMessage(port: relay.port, from: "alice@example.com", to: ["dropped@example.net"], data: Array("Subject: dropped\r\nX-Marker: dropped\r\n\r\nBody.\r\n".utf8))
            #expect(dropped.code == 250, "\(dropped)")
            let droppedID = dropped.text.split(separator: " ").last.map(String.init) ?? ""
            let kept = try SMTPTestClient.sendMessage(port: relay.port, from: "alice@example.com", to: ["ok@example.net"], data: Array("Subject: kept\r\nX-Marker: kept\r\n\r\nBody.\r\n".utf8))
            #expect(kept.code == 250, "\(kept)")

            #expect(await waitUntil(timeout: 20) { !sink.messages().isEmpty }, "\(relay.log.suffix(3000))")
            #expect(await waitUntil(timeout: 10) { relay.log.contains("discarded") }, "\(relay.log.suffix(3000))")
            let messages = sink.messages()
            #expect(messages.count == 1, "\(messages.map(\.text))")
            #expect(messages.first?.rcptTo == ["ok@example.net"])
            #expect(!messages.contains { $0.text.contains("X-Marker: dropped") })
            let discardLine = relay.log.split(separator: "\n").first { $0.contains("discarded") && !$0.contains("asked to discard") }.map(String.init) ?? ""
            #expect(discardLine.contains("postfwd X1 drops dropped@example.net"), "\(relay.log.suffix(3000))")
            #expect(!droppedID.isEmpty && discardLine.contains(droppedID), "\(droppedID): \(discardLine)")
            let list = try relay.cli(["queue", "list"]).stdout
            #expect(!list.contains(droppedID), "\(list)")
        }

        /// What a real postfwd sees of a STARTTLS + AUTH session with a client
        /// certificate (`tls.client_ca_file`): postfwd writes the attributes into a
        /// PREPEND, and the delivered message shows them — the queue id of the `250`,
        /// the TLS protocol and cipher, the certificate's names and fingerprints
        /// (computed again here with openssl), the SASL mechanism and user, the ports
        /// and the reverse-DNS names. A client without a certificate is still served
        /// (asked, not required); one whose certificate is not from the CA is refused
        /// in the handshake.
        @Test func postfwdSeesTheTLSSessionClientCertificateAuthAndQueueID() async throws {
            try #require(ExecutableLookup.find("postfwd2") != nil, "postfwd is not installed (scripts/install-deps.sh)")
            try #require(Swaks.isAvailable, "swaks is not installed (scripts/install-deps.sh)")
            let seen = "q=$$queue_id tls=$$encryption_protocol cipher=$$encryption_cipher bits=$$encryption_keysize subject=$$ccert_subject issuer=$$ccert_issuer fp=$$ccert_fingerprint pk=$$ccert_pubkey_fingerprint sasl=$$sasl_method user=$$sasl_username name=$$client_name ptr=$$reverse_client_name port=$$client_port server=$$server_address:$$server_port"
            let postfwd = try await Postfwd.start(rules: "id=S1; recipient==seen@example.net; action=PREPEND X-Policy-Seen: \(seen)\n")
            defer { Task { await postfwd.shutdown() } }
            let slapd = try await Slapd.start()
            defer { Task { await slapd.stop() } }
            let dir = try TemporaryDirectory(label: "policytls")
            let server = try TestCertificates.make(in: dir.path + "/server")
            let client = try TestCertificates.make(in: dir.path + "/client", name: "client", hostnames: ["app1.corp.example"], ips: [])
            let rogue = try TestCertificates.makeSelfSigned(in: dir.path + "/client", name: "rogue", hostnames: ["app1.corp.example"], ips: [])
            let sinkPort = freePort()
            let sink = try RawSMTPSink.start(port: sinkPort, directory: dir.path + "/sink")
            defer { sink.stop() }
            let relay = try RelayProcess(
                listener: "tls: starttls\n    auth: required",
                rest: upstreamSection(port: sinkPort) + """

                    tls:
                      certificate: \(server.certificatePath)
                      key: \(server.keyPath)
                      client_ca_file: \(client.caCertificatePath)
                    stages:
                      - use: ldap
                        timeout: 3s
                        settings:
                          \(slapd.ldapSettings(indent: 6))
                      - use: postfix-policy
                        on_error: defer
                        settings:
                          server: \(postfwd.address)
                          phases: [rcpt]
                          timeout: 5s
                    """,
                directory: dir
            )
            #expect(try relay.cli(["check"]).status == 0)
            try relay.start()
            defer { relay.stop() }
            func send(_ marker: String, certificate: TestCertificates?) throws -> (status: Int32, transcript: String) {
                var options = ["-tls", "--tls-verify", "--tls-ca-path", server.caCertificatePath, "-a", "PLAIN", "-au", "alice", "-ap", "alice-pw",
                               "--header", "X-Marker: \(marker)"]
                if let certificate { options += ["--tls-cert", certificate.certificatePath, "--tls-key", certificate.keyPath] }
                return try Swaks.send(port: relay.port, from: "alice@example.com", to: ["seen@example.net"], options: options)
            }
            let withCertificate = try send("certificate", certificate: client)
            #expect(withCertificate.status == 0, "\(withCertificate.transcript)")
            let queueID = try #require(withCertificate.transcript.split(separator: "\n").first { $0.contains("queued as") }?.split(separator: " ").last.map(String.init))
            let without = try send("none", certificate: nil)
            #expect(without.status == 0, "\(without.transcript)")
            let refused = try send("rogue", certificate: rogue)
            #expect(refused.status != 0 && !refused.transcript.contains("queued as"), "\(refused.transcript)")

            #expect(await waitUntil(timeout: 20) { sink.messages().count >= 2 }, "\(relay.log.suffix(3000))")
            func attributes(_ marker: String) throws -> [String: String] {
                let message = try #require(sink.messages().first { $0.text.contains("X-Marker: \(marker)") })
                let line = try #require(message.text.split(separator: "\r\n").first { $0.hasPrefix("X-Policy-Seen: ") })
                var values: [String: String] = [:]
                for pair in line.dropFirst("X-Policy-Seen: ".count).split(separator: " ") {
                    let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                    values[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
                }
                return values
            }
            let a = try attributes("certificate")
            #expect(a["q"] == queueID, "\(a)")
            #expect(a["tls"] == "TLSv1.3" || a["tls"] == "TLSv1.2", "\(a)")
            #expect(a["cipher"]?.isEmpty == false && a["bits"].flatMap(Int.init).map { $0 >= 128 } == true, "\(a)")
            #expect(a["subject"] == "app1.corp.example", "\(a)")
            #expect(a["issuer"]?.hasPrefix("Tollgate") == true, "\(a)")
            let fingerprint = try ChildProcess.run("openssl", ["x509", "-in", client.certificatePath, "-noout", "-fingerprint", "-sha256"], timeout: 30).stdout
            #expect(fingerprint.trimmingCharacters(in: .whitespacesAndNewlines).hasSuffix("=" + (a["fp"] ?? "-")), "\(fingerprint) \(a)")
            let spki = try ChildProcess.run(
                "bash", ["-c", "openssl x509 -in '\(client.certificatePath)' -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256 -r"], timeout: 30
            ).stdout
            let expectedKey = spki.prefix(64).uppercased().enumerated().map { $0.offset > 0 && $0.offset % 2 == 0 ? ":" + String($0.element) : String($0.element) }.joined()
            #expect(a["pk"] == expectedKey, "\(spki) \(a)")
            #expect(a["sasl"] == "PLAIN" && a["user"] == "alice", "\(a)")
            // 127.0.0.1 is localhost both ways (/etc/hosts).
            #expect(a["name"] == "localhost" && a["ptr"] == "localhost", "\(a)")
            #expect(a["port"].flatMap(Int.init).map { $0 > 0 } == true && a["server"] == "127.0.0.1:\(relay.port)", "\(a)")
            // No certificate: the TLS session, no ccert_*; another queue id.
            let b = try attributes("none")
            #expect(b["subject"] == "" && b["fp"] == "" && b["tls"] == a["tls"] && b["q"] != queueID && b["q"]?.isEmpty == false, "\(b)")
        }

        @Test func badSettingsAreLocatedCheckErrors() throws {
            let dir = try TemporaryDirectory(label: "policycheck")
            let relay = try RelayProcess(
                rest: """
                    upstreams:
                      - name: primary
                        directory: out
                    stages:
                      - use: postfix-policy
                        settings:
                          server: nowhere
                          phases: [rcpt, vrfy]
                    """,
                directory: dir
            )
            let check = try relay.cli(["check"])
            #expect(check.status != 0)
            let output = check.stdout + check.stderr
            #expect(output.contains("tollgate.yaml:16:15: 'server' must be host:port or unix:/absolute/path, not 'nowhere'"), "\(output)")
            #expect(output.contains("tollgate.yaml:17:22: unknown phase 'vrfy'"), "\(output)")
        }
    }
}
