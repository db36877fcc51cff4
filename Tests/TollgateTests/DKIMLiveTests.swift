import Foundation
import TestSupport
import Testing

/// The `dkim` stage in a real relay: keys made by `tollgate dkim keygen`, two
/// departments (by client network) with their own keys and a default, messages
/// relayed to a capturing sink, and every signature checked by dkimpy against the
/// exact bytes the sink received.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(5))) struct DKIMLiveTests {
        /// `tollgate dkim keygen`: the key file and the TXT text from the printed record.
        static func keygen(_ dir: TemporaryDirectory, domain: String, selector: String, type: String) throws -> String {
            let path = dir.path + "/\(selector).pem"
            let run = try ChildProcess.run(RelayProcess.binary, ["dkim", "keygen", "--domain", domain, "--selector", selector, "--type", type, "--out", path], timeout: 120)
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.stdout.hasPrefix("\(selector)._domainkey.\(domain). IN TXT ( \""), "\(run.stdout)")
            let mode = (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? 0
            #expect(mode == 0o600)
            // The quoted strings of the record, joined (RFC 1035 character-strings).
            let parts = run.stdout.split(separator: "\"", omittingEmptySubsequences: false)
            return stride(from: 1, to: parts.count, by: 2).map { String(parts[$0]) }.joined()
        }

        static let messages: [(name: String, from: String, body: String)] = [
            ("ascii", "a@example.com", "Subject: ascii\r\nTo: b@example.net\r\n\r\nHello.\r\n"),
            ("8-bit", "a@example.com", "Subject: utf8\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße — 日本語\r\n"),
            ("folded", "a@example.com", "Subject: " + String(repeating: "folded subject ", count: 12) + "\r\n\tmore  spaces \r\nTo: b@example.net,\r\n c@example.net\r\n\r\nx   y \t\r\n\r\n\r\n"),
            ("long line", "a@example.com", "Subject: long\r\n\r\n" + String(repeating: "L", count: 2500) + "\r\nend\r\n"),
            ("dots", "a@example.com", "Subject: dots\r\n\r\n.\r\n..\r\n.x\r\n"),
            ("empty body", "a@example.com", "Subject: empty\r\n\r\n"),
            ("no final CRLF", "a@example.com", "Subject: open\r\n\r\nno end"),
        ]

        @Test func signaturesOfEveryKindVerifyWithDkimpyAtTheSink() throws {
            try #require(DKIMVerifier.isAvailable, "python3-dkim is not installed (scripts/install-deps.sh)")
            let dir = try TemporaryDirectory(label: "dkimlive")
            var records: [String: String] = [:]
            records["main._domainkey.example.com"] = try Self.keygen(dir, domain: "example.com", selector: "main", type: "rsa")
            records["fin._domainkey.finance.example"] = try Self.keygen(dir, domain: "finance.example", selector: "fin", type: "ed25519")
            records["sal._domainkey.sales.example"] = try Self.keygen(dir, domain: "sales.example", selector: "sal", type: "rsa")
            try FileManager.default.createDirectory(atPath: dir.path + "/policies", withIntermediateDirectories: true)
            try "department: finance\nmembers:\n  networks: [127.0.0.2/32]\ndkim:\n  domain: finance.example\n  selector: fin\n  key: ../fin.pem\n"
                .write(toFile: dir.path + "/policies/finance.yaml", atomically: true, encoding: .utf8)
            try "department: sales\nmembers:\n  networks: [127.0.0.3/32]\ndkim:\n  domain: sales.example\n  selector: sal\n  key: ../sal.pem\n"
                .write(toFile: dir.path + "/policies/sales.yaml", atomically: true, encoding: .utf8)

            let sinkPort = freePort()
            // 8BITMIME upstream: without it the 8-bit message would be converted to
            // quoted-printable at delivery, which changes the signed body (README, "DKIM signing").
            var options = RawSMTPSink.Options()
            options.advertise8BITMIME = true
            let sink = try RawSMTPSink.start(port: sinkPort, directory: dir.path + "/sink", options: options)
            defer { sink.stop() }
            let relay = try RelayProcess(
                rest: """
                    upstreams:
                      - name: primary
                        hosts: [127.0.0.1:\(sinkPort)]
                        tls: none
                    delivery:
                      default_upstream: primary
                      retry: [1s]
                    stages:
                      - use: dkim
                        settings:
                          domain: example.com
                          selector: main
                          key: main.pem
                    policies: policies
                    """,
                directory: dir
            )
            #expect(try relay.cli(["check"]).status == 0)
            try relay.start()
            defer { relay.stop() }

            // (source address, From domain): the default key, then each department's.
            let senders = [("127.0.0.1", "example.com"), ("127.0.0.2", "finance.example"), ("127.0.0.3", "sales.example")]
            var sent = 0
            for (source, domain) in senders {
                for m in Self.messages {
                    let data = Array("From: Sender <s@\(domain)>\r\nX-Marker: \(m.name) \(domain)\r\n\(m.body)".utf8)
                    let reply = try SMTPTestClient.sendMessage(port: relay.port, from: "s@\(domain)", to: ["b@example.net"], data: data, source: source)
                    #expect(reply.code == 250, "\(m.name) from \(source): \(reply)")
                    sent += 1
                }
            }
            let got = sink.waitForMessages(count: sent, timeout: 60)
            #expect(got.count == sent, "\(relay.log.suffix(3000))")
            let result = try DKIMVerifier.verify(got.map(\.content), records: records)
            #expect(result.passed, "\(result.output)\n\(relay.log.suffix(2000))")
            #expect(result.output.components(separatedBy: "PASS").count - 1 == sent, "\(result.output)")
            for (_, domain) in senders {
                #expect(result.output.components(separatedBy: "PASS d=\(domain) ").count - 1 == Self.messages.count, "\(domain): \(result.output)")
            }
            #expect(result.output.contains("a=ed25519-sha256") && result.output.contains("a=rsa-sha256"))
            // OpenDKIM's verifier agrees, on the same bytes.
            try #require(OpenDKIMVerifier.binary != nil, "opendkim is not installed (scripts/install-deps.sh)")
            let opendkim = try OpenDKIMVerifier.verify(got.map(\.content), records: records)
            #expect(opendkim.passed, "\(opendkim.output)")
            #expect(opendkim.output.components(separatedBy: "succeeded").count - 1 == sent, "\(opendkim.output)")
            // The signature rides below Received:, which it does not cover; no line over 998.
            for message in got {
                let text = message.text
                #expect(text.hasPrefix("Received: "), "\(text.prefix(200))")
                #expect(text.contains("\r\nDKIM-Signature: v=1;"))
                #expect(!text.contains("h=received") && !(text.components(separatedBy: "\r\n").contains { $0.utf8.count > 998 }))
            }
            // The decision trace in the queue's log says who signed.
            #expect(relay.log.contains("dkim=continue") || relay.log.contains("signed d="), "\(relay.log.suffix(2000))")
        }

        @Test func aBadKeyIsALocatedCheckError() throws {
            let dir = try TemporaryDirectory(label: "dkimcheck")
            try "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".write(toFile: dir.path + "/bad.pem", atomically: true, encoding: .utf8)
            let relay = try RelayProcess(
                rest: """
                    upstreams:
                      - name: primary
                        directory: out
                    stages:
                      - use: dkim
                        settings:
                          domain: example.com
                          selector: main
                          key: bad.pem
                    """,
                directory: dir
            )
            let check = try relay.cli(["check"])
            #expect(check.status == 1)
            #expect(check.stderr.contains("\(relay.configPath):"), "\(check.stderr)")
            #expect(check.stderr.contains("bad.pem is unusable"), "\(check.stderr)")
        }
    }
}
