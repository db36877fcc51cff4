import Foundation
import TestSupport
import Testing

/// A live `tollgate serve` process relaying to real SMTP server processes.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(5))) struct RelayIntegrationTests {
        /// A started relay whose listener uses `tls` and `auth`, with the test's
        /// certificate, relaying to an upstream on `upstreamPort`.
        func startTLSRelay(tls: String, auth: String, certs: TestCertificates, upstreamPort: Int, directory: TemporaryDirectory) throws -> RelayProcess {
            let relay = try RelayProcess(
                listener: "tls: \(tls)\n    auth: \(auth)",
                rest: """
                    tls:
                      certificate: \(certs.certificatePath)
                      key: \(certs.keyPath)
                    \(upstreamConfig(port: upstreamPort))
                    """,
                directory: directory
            )
            try relay.start()
            return relay
        }

        func upstreamConfig(port: Int, extra: String = "") -> String {
            """
            upstreams:
              - name: primary
                hosts: [127.0.0.1:\(port)]
                tls: none
            delivery:
              default_upstream: primary
              retry: [1s]
            \(extra)
            """
        }

        @Test func relaysByteIdenticalContentWithReceivedHeader() throws {
            let dir = try TemporaryDirectory()
            let sinkPort = freePort()
            let sink = try RawSMTPSink.start(port: sinkPort, directory: dir.path + "/sink", options: .init())
            defer { sink.stop() }
            let relay = try RelayProcess(rest: upstreamConfig(port: sinkPort))
            try relay.start()
            defer { relay.stop() }

            let content = Array("From: a@example.com\r\nSubject: dots\r\n\r\n.From: x\r\n..two\r\n.\r\n..\r\n.Stuffing required\r\nend\r\n".utf8)
            let reply = try SMTPTestClient.sendMessage(port: relay.port, from: "a@example.com", to: ["b@example.net"], data: content)
            #expect(reply.code == 250)
            #expect(waitUntil(timeout: 20) { sink.messages().count == 1 })
            let got = try #require(sink.messages().first)
            #expect(got.mailFrom == "a@example.com")
            #expect(got.rcptTo == ["b@example.net"])
            // Everything after our Received: header is the client's content, byte for byte.
            let text = got.content
            #expect(text.starts(with: Array("Received: from ".utf8)))
            // The client's forward-confirmed name (RELIABILITY C21): loopback is localhost.
            #expect(String(decoding: text.prefix(200), as: UTF8.self).contains("(localhost [127.0.0.1])"))
            let received = receivedHeaderLength(text)
            #expect(Array(text[received...]) == content)
            #expect(isCanonical(got.raw))
        }

        /// RELIABILITY §A: every fake end-of-DATA gives at most one message upstream, never
        /// one from the smuggled sender, and only canonical CRLF goes out.
        @Test func smugglingSequencesNeverSplitAMessage() throws {
            let dir = try TemporaryDirectory()
            let sinkPort = freePort()
            let sink = try RawSMTPSink.start(port: sinkPort, directory: dir.path + "/sink", options: .init())
            defer { sink.stop() }
            let relay = try RelayProcess(rest: upstreamConfig(port: sinkPort))
            try relay.start()
            defer { relay.stop() }
            let fakes = ["\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r", "\r.\n", "\n.\r", "\r.\r\n", "\r\n.\r", "\r\n.\r\r\n", "\r\r\n.\r\r\n", "\r\n\u{0}.\r\n", "\r\n.\u{0}\r\n"]
            for (i, fake) in fakes.enumerated() {
                let client = try SMTPTestClient.connect(port: relay.port)
                defer { client.close() }
                #expect(try client.readReply().code == 220)
                #expect(try client.command("EHLO attacker.test").code == 250)
                #expect(try client.command("MAIL FROM:<a@example.com>").code == 250)
                #expect(try client.command("RCPT TO:<b\(i)@example.net>").code == 250)
                #expect(try client.command("DATA").code == 354)
                let payload = "Subject: smuggle \(i)\r\n\r\nbody\(fake)MAIL FROM:<smuggled@evil.example>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n"
                try client.sendRaw(Array(payload.utf8))
                let reply = try client.readReply()
                // Tollgate refuses a message with a fake end-of-data line, or with a NUL
                // (README: SMTP behaviour).
                let expected = fake.contains("\u{0}") ? "5.6.0" : "5.5.2"
                #expect(reply.code == 550 && reply.enhancedCode == expected, "\(fake.debugDescription): \(reply)")
                // The session goes on and is still in sync.
                #expect(try client.command("RSET").code == 250)
            }
            Thread.sleep(forTimeInterval: 2)
            let messages = sink.messages()
            #expect(messages.isEmpty, "refused messages reached the upstream: \(messages.map(\.rcptTo))")
            #expect(!messages.contains { $0.mailFrom.contains("smuggled") })
            #expect(!messages.contains { $0.rcptTo.contains("victim@example.net") })
            for m in messages { #expect(isCanonical(m.raw)) }
        }

        @Test func bareLineEndingsAreNormalisedUpstream() throws {
            let dir = try TemporaryDirectory()
            let sinkPort = freePort()
            let sink = try RawSMTPSink.start(port: sinkPort, directory: dir.path + "/sink", options: .init())
            defer { sink.stop() }
            let relay = try RelayProcess(rest: upstreamConfig(port: sinkPort))
            try relay.start()
            defer { relay.stop() }
            let client = try SMTPTestClient.connect(port: relay.port)
            defer { client.close() }
            _ = try client.readReply()
            _ = try client.command("EHLO c.test")
            _ = try client.command("MAIL FROM:<a@example.com>")
            _ = try client.command("RCPT TO:<b@example.net>")
            _ = try client.command("DATA")
            try client.sendRaw(Array("Subject: lf\r\n\r\nline one\nline two\rline three\r\n\(String(repeating: "z", count: 3000))\r\n.\r\n".utf8))
            #expect(try client.readReply().code == 250)
            #expect(waitUntil(timeout: 20) { sink.messages().count == 1 })
            let raw = try #require(sink.messages().first).raw
            #expect(isCanonical(raw))
            #expect(!raw.contains(0))
            for line in String(decoding: raw, as: UTF8.self).split(separator: "\r\n") { #expect(line.utf8.count <= 998) }
        }

        @Test func pipelinedCommandsAfterStartTLSAreDiscardedAndAuthNeedsTLS() throws {
            let dir = try TemporaryDirectory()
            let certs = try TestCertificates.make(in: dir.path + "/certs")
            let relay = try startTLSRelay(tls: "starttls", auth: "optional", certs: certs, upstreamPort: freePort(), directory: dir)
            defer { relay.stop() }
            let client = try SMTPTestClient.connect(port: relay.port)
            defer { client.close() }
            _ = try client.readReply()
            let ehlo = try client.command("EHLO c.test")
            #expect(ehlo.lines.contains { $0.contains("STARTTLS") })
            #expect(!ehlo.lines.contains { $0.contains("AUTH") })
            #expect(try client.command("AUTH PLAIN AGFsaWNlAHNlY3JldA==").code == 538)
            // CVE-2011-0411: STARTTLS and a command in one write.
            try client.sendRaw(Array("STARTTLS\r\nRSET\r\n".utf8))
            #expect(try client.readReply().code == 220)
            // The RSET must not be answered in plaintext (the server now waits for a TLS ClientHello).
            #expect(throws: (any Error).self) { _ = try client.readReply(timeout: 1.5) }
        }

        @Test func startTLSAndImplicitTLSWithVerifiedCertificates() throws {
            let dir = try TemporaryDirectory()
            let certs = try TestCertificates.make(in: dir.path + "/certs")
            let sinkPort = freePort()
            let sink = try RawSMTPSink.start(port: sinkPort, directory: dir.path + "/sink", options: .init())
            defer { sink.stop() }
            let relay = try startTLSRelay(tls: "starttls", auth: "none", certs: certs, upstreamPort: sinkPort, directory: dir)
            defer { relay.stop() }
            let starttls = try Swaks.send(port: relay.port, from: "a@example.com", to: ["tls@example.net"], options: ["-tls", "--tls-verify", "--tls-ca-path", certs.caCertificatePath])
            #expect(starttls.status == 0, "\(starttls.transcript)")
            #expect(waitUntil(timeout: 20) { sink.messages().contains { $0.rcptTo == ["tls@example.net"] } })
            let delivered = try #require(sink.messages().first { $0.rcptTo == ["tls@example.net"] })
            #expect(String(decoding: delivered.content, as: UTF8.self).contains("with ESMTPS id"))

            // Implicit TLS on a second relay.
            let implicitDir = try TemporaryDirectory()
            let implicit = try startTLSRelay(tls: "implicit", auth: "none", certs: certs, upstreamPort: sinkPort, directory: implicitDir)
            defer { implicit.stop() }
            let tlsc = try Swaks.send(port: implicit.port, from: "a@example.com", to: ["implicit@example.net"], options: ["--tls-on-connect", "--tls-verify", "--tls-ca-path", certs.caCertificatePath])
            #expect(tlsc.status == 0, "\(tlsc.transcript)")
            #expect(waitUntil(timeout: 20) { sink.messages().contains { $0.rcptTo == ["implicit@example.net"] } })
        }

        @Test func upstreamDownDefersThenDelivers() throws {
            let dir = try TemporaryDirectory()
            let sinkPort = freePort()
            let relay = try RelayProcess(rest: upstreamConfig(port: sinkPort))
            try relay.start()
            defer { relay.stop() }
            let reply = try SMTPTestClient.sendMessage(port: relay.port, from: "a@example.com", to: ["later@example.net"], data: testMessage(marker: "later"))
            #expect(reply.code == 250)
            #expect(waitUntil(timeout: 20) {
                let list = (try? relay.cli(["queue", "list", "--json"]))?.stdout ?? ""
                return list.contains("\"state\":\"deferred\"")
            })
            let sink = try RawSMTPSink.start(port: sinkPort, directory: dir.path + "/sink", options: .init())
            defer { sink.stop() }
            #expect(waitUntil(timeout: 30) { sink.messages().contains { $0.rcptTo == ["later@example.net"] } })
            #expect(waitUntil(timeout: 10) { ((try? relay.cli(["queue", "list", "--json"]))?.stdout ?? "x").isEmpty })
            // Its attempts stay with its history: refused ones without a host, then the delivery.
            let id = try #require(reply.text.split(separator: " ").last.map(String.init))
            let show = try relay.cli(["queue", "show", id])
            #expect(show.status == 0, "\(show.stderr)")
            let lines = show.stdout.split(separator: "\n").map(String.init)
            let attempts = lines.drop { $0 != "attempts:" }.dropFirst().prefix { $0.hasPrefix("  ") }
            let first = Array(attempts.prefix(2))
            #expect(first.count == 2 && first[0].hasPrefix("  #1 20") && first[0].contains("Z upstream primary, host -, by "), "\(show.stdout)")
            #expect(first.last == "    <later@example.net> deferred: 451 4.4.1 cannot connect to upstream: connection refused by 127.0.0.1:\(sinkPort)", "\(show.stdout)")
            let last = Array(attempts.suffix(2))
            #expect(last.first?.contains("Z upstream primary, host 127.0.0.1:\(sinkPort), by ") == true, "\(show.stdout)")
            #expect(last.last?.hasPrefix("    <later@example.net> delivered: 250 ") == true, "\(show.stdout)")
        }

        @Test func permanentFailureBouncesToSenderWithNullSender() throws {
            let dir = try TemporaryDirectory()
            let sinkPort = freePort()
            var options = RawSMTPSink.Options()
            options.rcptReply = ["reject": "550 5.1.1 no such user here"]
            let sink = try RawSMTPSink.start(port: sinkPort, directory: dir.path + "/sink", options: options)
            defer { sink.stop() }
            let relay = try RelayProcess(rest: upstreamConfig(port: sinkPort))
            try relay.start()
            defer { relay.stop() }
            let reply = try SMTPTestClient.sendMessage(port: relay.port, from: "alice@example.com", to: ["reject-me@example.net", "ok@example.net"], data: testMessage(marker: "bounce"))
            #expect(reply.code == 250)
            #expect(waitUntil(timeout: 30) { sink.messages().contains { $0.mailFrom.isEmpty } })
            let messages = sink.messages()
            #expect(messages.contains { $0.rcptTo == ["ok@example.net"] })
            let bounce = try #require(messages.first { $0.mailFrom.isEmpty })
            #expect(bounce.rcptTo == ["alice@example.com"])
            let text = String(decoding: bounce.content, as: UTF8.self)
            #expect(text.contains("multipart/report; report-type=delivery-status"))
            #expect(text.contains("Final-Recipient: rfc822; reject-me@example.net"))
            #expect(text.contains("Status: 5.1.1"))
            #expect(text.contains("Action: failed"))
            #expect(text.contains("X-Marker: bounce"))

            // A message with a null sender is never bounced.
            let null = try SMTPTestClient.sendMessage(port: relay.port, from: "", to: ["reject-again@example.net"], data: testMessage(marker: "nullsender"))
            #expect(null.code == 250)
            Thread.sleep(forTimeInterval: 3)
            #expect(sink.messages().filter { $0.mailFrom.isEmpty && $0.rcptTo.isEmpty == false && $0.rcptTo != ["alice@example.com"] }.isEmpty)
            #expect(relay.log.contains("not bouncing"))
        }

        /// RELIABILITY E4: `kill -9` under load; every message that got 250 is delivered after restart.
        @Test(.timeLimit(.minutes(5))) func killNineLosesNoAcknowledgedMessage() throws {
            let dir = try TemporaryDirectory()
            let sinkPort = freePort()
            let sink = try SMTPSink.start(port: sinkPort, dumpDirectory: dir.path + "/dump", extraOptions: [])
            defer { sink.stop() }
            let relay = try RelayProcess(rest: upstreamConfig(port: sinkPort))
            try relay.start()
            defer { relay.stop() }

            let acknowledged = LockedList()
            let clients = 8
            let group = DispatchGroup()
            for c in 0..<clients {
                group.enter()
                Thread.detachNewThread {
                    defer { group.leave() }
                    for n in 0..<400 {
                        let marker = "k\(c)-\(n)"
                        guard let reply = try? SMTPTestClient.sendMessage(port: relay.port, from: "load@example.com", to: ["sink@example.net"], data: testMessage(marker: marker)) else { return }
                        if reply.code == 250 { acknowledged.append(marker) }
                    }
                }
            }
            #expect(waitUntil(timeout: 60) { acknowledged.count >= 100 })
            relay.kill9()
            _ = group.wait(timeout: .now() + 60)
            let acked = acknowledged.values
            #expect(acked.count >= 100)
            try relay.start()
            #expect(waitUntil(timeout: 120) {
                let delivered = sink.deliveredMarkers()
                return acked.allSatisfy { delivered.contains($0) }
            }, "missing after restart: \(Set(acked).subtracting(sink.deliveredMarkers()).prefix(10))")
            // Duplicates (allowed, never loss): only deliveries the sink had answered and
            // the relay had not yet recorded can go out twice, so at most one per upstream
            // connection (max_connections, 20 by default) was in that window at the kill.
            Thread.sleep(forTimeInterval: 2)
            var seen: [String: Int] = [:]
            for m in sink.messages() { if let marker = m.headerValue("X-Marker") { seen[marker, default: 0] += 1 } }
            let duplicates = seen.values.reduce(0) { $0 + max(0, $1 - 1) }
            print("kill -9: \(acked.count) acknowledged, all delivered, \(duplicates) delivered twice")
            #expect(duplicates <= 20, "\(duplicates) duplicates for at most 20 deliveries in flight")
        }

        @Test func checkReportsLocatedErrors() throws {
            let dir = try TemporaryDirectory()
            let cases: [(String, String)] = [
                ("hostname: x\nlistners: []\n", "2:1: unknown key 'listners'"),
                ("hostname: x\nlisteners:\n  - name: a\n    address: 127.0.0.1:notaport\nupstreams:\n  - name: u\n    directory: out\n", "4:14: listener address must be host:port"),
                ("listeners:\n  - name: a\n    address: 127.0.0.1:1\n    tls: sometimes\nupstreams:\n  - name: u\n    directory: out\n", "4:10: listener tls must be one of none, starttls, implicit"),
                ("listeners:\n  - name: a\n    address: 127.0.0.1:1\nlimits:\n  max_recipients: 10\nupstreams:\n  - name: u\n    directory: out\n", "5:19: limits.max_recipients must be a whole number of at least 100"),
                ("listeners:\n  - name: a\n    address: 127.0.0.1:1\nupstreams:\n  - name: u\n    directory: out\ndelivery:\n  default_upstream: nowhere\n", "8:21: delivery.default_upstream names 'nowhere'"),
                ("listeners:\n  - name: a\n    address: 127.0.0.1:1\nupstreams:\n  - name: u\n    hosts: [127.0.0.1:1]\n    tls: none\n    auth: { username: x, password_file: /etc/hostname }\n", "8:11: upstream 'u' has auth with tls: none"),
                ("listeners:\n  - name: a\n    address: 127.0.0.1:1\ntls:\n  certificate: /etc/hostname\n  key: /etc/hostname\n  ciphers: [RC4-MD5]\nupstreams:\n  - name: u\n    directory: out\n", "7:12: tls.ciphers: unknown cipher suite 'RC4-MD5'"),
                ("listeners:\n  - name: a\n    address: 127.0.0.1:1\ntls:\n  certificate: /etc/hostname\n  key: /etc/hostname\n  min_version: \"1.1\"\nupstreams:\n  - name: u\n    directory: out\n", "7:16: TLS 1.1 has no AEAD cipher suites; set tls.ciphers: legacy"),
                ("listeners:\n  - name: a\n    address: 127.0.0.1:1\nupstreams:\n  - name: u\n    hosts: [127.0.0.1:1]\n    tls_min_version: 1.4\n", "7:22: tls_min_version must be one of 1.0, 1.1, 1.2, 1.3, not '1.4'"),
                ("listeners:\n  - name: a\n    address: 127.0.0.1:1\nlimits:\n  max_message_size: 10KB\nupstreams:\n  - name: u\n    directory: out\n", "5:21: limits.max_message_size must be at least 64KB"),
                ("listeners: [\n", "YAML syntax error"),
                ("listeners:\n  - name: a\n    address: 127.0.0.1:1\nupstreams:\n  - name: u\n    directory: out\nstages:\n  - use: no-such-plugin\n", "8:5: plugin 'no-such-plugin' not found"),
            ]
            for (i, (yaml, expected)) in cases.enumerated() {
                let file = dir.path + "/bad\(i).yaml"
                try yaml.write(toFile: file, atomically: true, encoding: .utf8)
                let result = try ChildProcess.run(RelayProcess.binary, ["check", "-c", file], timeout: 30)
                #expect(result.status == 1, "case \(i): \(result.stderr)")
                #expect(result.stderr.contains("\(file):\(expected)") || (expected == "YAML syntax error" && result.stderr.contains("\(file):") && result.stderr.contains(expected)), "case \(i): \(result.stderr)")
            }
        }

        @Test func queueCommandsWorkWithoutTheServer() throws {
            let dir = try TemporaryDirectory()
            let sinkPort = freePort()
            let relay = try RelayProcess(rest: upstreamConfig(port: sinkPort), directory: dir)
            try relay.start()
            let reply = try SMTPTestClient.sendMessage(port: relay.port, from: "a@example.com", to: ["q@example.net"], data: testMessage(marker: "queue"))
            #expect(reply.code == 250)
            let id = try #require(reply.text.split(separator: " ").last.map(String.init))
            relay.stop()
            let list = try relay.cli(["queue", "list"])
            #expect(list.stdout.contains(id))
            #expect(list.stdout.contains("<q@example.net>"))
            #expect(try relay.cli(["queue", "hold", id]).status == 0)
            #expect(try relay.cli(["queue", "list", "--state", "held"]).stdout.contains(id))
            let show = try relay.cli(["queue", "show", id])
            #expect(show.stdout.contains("sender:      <a@example.com>"))
            #expect(try relay.cli(["queue", "release", id]).status == 0)
            #expect(try relay.cli(["queue", "show", "NOSUCHID"]).status == 1)
            #expect(try relay.cli(["queue", "hold"]).status == 2)
            #expect(try relay.cli(["queue", "delete", id]).status == 0)
            #expect(try relay.cli(["queue", "list"]).stdout == "the queue is empty\n")
        }

        /// RELIABILITY E6: a damaged entry is quarantined, never delivered half.
        @Test func corruptEntryIsQuarantined() throws {
            let dir = try TemporaryDirectory()
            let sinkPort = freePort()
            let relay = try RelayProcess(rest: upstreamConfig(port: sinkPort), directory: dir)
            try relay.start()
            let reply = try SMTPTestClient.sendMessage(port: relay.port, from: "a@example.com", to: ["c@example.net"], data: testMessage(marker: "corrupt"))
            let id = try #require(reply.text.split(separator: " ").last.map(String.init))
            relay.stop()
            let db = dir.path + "/spool/queue.sqlite"
            let flip = try ChildProcess.run("sqlite3", [db, "UPDATE bodies SET content = CAST(replace(CAST(content AS TEXT), 'corrupt', 'CORRUPT') AS BLOB) WHERE message_id = '\(id)';"], timeout: 10)
            #expect(flip.status == 0, "\(flip.stderr)")
            let sink = try RawSMTPSink.start(port: sinkPort, directory: dir.path + "/sink", options: .init())
            defer { sink.stop() }
            try relay.start()
            defer { relay.stop() }
            #expect(waitUntil(timeout: 15) { relay.log.contains("quarantined") })
            Thread.sleep(forTimeInterval: 2)
            #expect(sink.messages().isEmpty)
            let rows = try ChildProcess.run("sqlite3", [db, "SELECT id, reason FROM quarantine;"], timeout: 10)
            #expect(rows.stdout.contains(id) && rows.stdout.contains("checksum"))
        }
    }
}

final class LockedList: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func append(_ s: String) { lock.lock(); items.append(s); lock.unlock() }
    var values: [String] { lock.lock(); defer { lock.unlock() }; return items }
    var count: Int { values.count }
}

func isCanonical(_ bytes: [UInt8]) -> Bool {
    for (i, b) in bytes.enumerated() {
        if b == 13 && (i + 1 >= bytes.count || bytes[i + 1] != 10) { return false }
        if b == 10 && (i == 0 || bytes[i - 1] != 13) { return false }
    }
    return true
}

/// The length of the leading `Received:` header field (with its folded lines).
func receivedHeaderLength(_ bytes: [UInt8]) -> Int {
    var i = 0
    while i + 2 < bytes.count {
        if bytes[i] == 13, bytes[i + 1] == 10, bytes[i + 2] != 9, bytes[i + 2] != 32 { return i + 2 }
        i += 1
    }
    return bytes.count
}
