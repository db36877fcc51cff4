import Foundation
import Testing
import TestSupport

/// Third-party scanners against a live relay, as an auditor would run them:
/// testssl.sh on the STARTTLS listener and nmap's `smtp-open-relay` and
/// `smtp-commands` scripts (RELIABILITY B1, C6, C8). Both are Debian packages
/// that `make test` installs; the README records what they report.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(6))) struct ScannerLiveTests {
        static func relay(listener: String, tls: Bool) throws -> RelayProcess {
            let directory = try TemporaryDirectory(label: "scanner")
            var tlsSection = ""
            if tls {
                let certificates = try TestCertificates.make(in: directory.path + "/certs", hostnames: ["relay.test"], keyType: .rsa2048)
                tlsSection = "tls:\n  certificate: \(certificates.certificatePath)\n  key: \(certificates.keyPath)"
            }
            let relay = try RelayProcess(
                listener: listener,
                rest: "\(tlsSection)\nupstreams:\n  - name: out\n    directory: outbox\n",
                directory: directory
            )
            try relay.start()
            return relay
        }

        @Test func testsslFindsNothingAboveInformational() throws {
            let testssl = try #require(ExecutableLookup.find("testssl"), "testssl (Debian's testssl.sh) is installed by make test")
            let relay = try Self.relay(listener: "tls: starttls\n    auth: none", tls: true)
            defer { relay.stop() }
            let json = relay.directory.path + "/testssl.json"
            let run = try ChildProcess.run(
                testssl,
                ["--quiet", "--color", "0", "--warnings", "off", "-t", "smtp", "--protocols", "--std", "--server-preference", "--vulnerable",
                 "--jsonfile-pretty", json, "127.0.0.1:\(relay.port)"],
                timeout: 300
            )
            let data = try #require(FileManager.default.contents(atPath: json), "no JSON report: \(run.stdout) \(run.stderr)")
            let report = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            let results = try #require(report["scanResult"] as? [[String: Any]]).first ?? [:]
            var findings: [[String: Any]] = []
            for (_, value) in results {
                if let list = value as? [[String: Any]] { findings += list }
            }
            func finding(_ id: String) -> String? {
                findings.first { $0["id"] as? String == id }?["finding"] as? String
            }
            #expect(findings.count > 30, "\(run.stdout)")
            let bad = findings.filter { !["OK", "INFO"].contains($0["severity"] as? String ?? "") }
            #expect(bad.isEmpty, "testssl findings above INFO: \(bad)")
            #expect(finding("TLS1")?.contains("not offered") == true)
            #expect(finding("TLS1_1")?.contains("not offered") == true)
            #expect(finding("TLS1_3")?.contains("offered") == true)
            #expect(finding("cipherlist_AVERAGE")?.contains("not offered") == true, "no CBC suites")
            #expect(finding("ROBOT")?.contains("no RSA key transport") == true, "no static-RSA suites")
            #expect(finding("LUCKY13")?.contains("not vulnerable") == true)
            #expect(finding("cipher_order")?.hasPrefix("server") == true, "the server's order, not the client's")
            print("testssl: \(findings.count) findings, none above INFO; cipher order: \(finding("cipher_order") ?? "?")")
        }

        static func nmap(_ port: Int) throws -> String {
            let nmap = try #require(ExecutableLookup.find("nmap"), "nmap is installed by make test")
            // -sV recognises SMTP on a port other than 25; -vv lists the relayed combinations.
            let run = try ChildProcess.run(
                nmap,
                ["-Pn", "-n", "-vv", "-sV", "--version-light", "-p", "\(port)", "--script", "smtp-open-relay,smtp-commands",
                 "127.0.0.1"],
                timeout: 120
            )
            #expect(run.status == 0, "\(run.stderr)")
            return run.stdout
        }

        /// A trusted client (in `clients`, no AUTH) relays plain addresses: that is a
        /// smarthost's job. Every one of nmap's routing tricks (`%`, `!`, source routes,
        /// quoted local parts with `@`) is refused.
        @Test func nmapFromATrustedClientRelaysOnlyPlainAddresses() throws {
            let relay = try Self.relay(listener: "tls: none\n    auth: none", tls: false)
            defer { relay.stop() }
            let output = try Self.nmap(relay.port)
            #expect(output.contains("Server is an open relay (4/16 tests)"), "\(output)")
            #expect(output.split(separator: "\n").filter { $0.contains("-> RCPT TO:") }.count == 4, "\(output)")
            for line in output.split(separator: "\n") where line.contains("-> RCPT TO:") {
                let recipient = line.split(separator: "RCPT TO:").last.map(String.init) ?? ""
                #expect(recipient.hasPrefix("<relaytest@") && !recipient.contains(where: { "%!\":[".contains($0) }), "a routing form was relayed: \(line)")
            }
            #expect(output.contains("smtp-commands: relay.test"))
            #expect(!output.contains("AUTH"), "AUTH offered on a listener without it")
        }

        @Test func nmapFromAClientNotInClientsIsRefusedAtConnect() throws {
            let relay = try Self.relay(listener: "tls: none\n    auth: none\n    clients: [192.0.2.0/24]", tls: false)
            defer { relay.stop() }
            let output = try Self.nmap(relay.port)
            #expect(!output.contains("open relay ("), "\(output)")
            #expect(relay.log.contains("client not allowed"), "\(relay.log)")
        }

        /// On a submission listener nothing relays before AUTH, and AUTH is not even
        /// offered before STARTTLS (C8).
        @Test func nmapAgainstASubmissionListenerFindsNoRelayAndNoPlaintextAuth() throws {
            let relay = try Self.relay(listener: "tls: starttls\n    auth: required", tls: true)
            defer { relay.stop() }
            let output = try Self.nmap(relay.port)
            #expect(!output.contains("open relay ("), "\(output)")
            #expect(output.contains("STARTTLS"), "\(output)")
            #expect(!output.contains("AUTH"), "AUTH offered before STARTTLS: \(output)")
            let client = SMTPTestClient()
            try client.connect(port: relay.port)
            defer { client.close() }
            _ = try client.readReply()
            _ = try client.command("EHLO scanner.test")
            let mail = try client.command("MAIL FROM:<antispam@relay.test>")
            #expect(mail.code == 530, "\(mail)")
        }
    }
}
