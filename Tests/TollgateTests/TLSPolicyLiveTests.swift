import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The TLS the listeners and the upstream client offer (`tls.min_version`,
/// `tls.ciphers`, `tls_min_version`, `tls_ciphers`), probed with `openssl s_client`
/// and a Python sink limited to old TLS, and a renewed certificate picked up on
/// SIGHUP. Every refusal is paired with a client that succeeds against a relay
/// configured to allow it, so a refusal on the client's side cannot pass for one
/// on the relay's.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(5))) struct TLSPolicyLiveTests {
        /// What `openssl s_client -brief` reported for one STARTTLS handshake.
        struct Handshake {
            var established: Bool
            var version: String?
            var suite: String?
            var peer: String?
            var output: String
        }

        static func handshake(port: Int, _ options: [String]) throws -> Handshake {
            let result = try ChildProcess.run(
                "openssl", ["s_client", "-connect", "127.0.0.1:\(port)", "-starttls", "smtp", "-brief"] + options,
                timeout: 20
            )
            let output = result.stdout + result.stderr
            func field(_ name: String) -> String? {
                output.split(separator: "\n").first { $0.hasPrefix(name) }.map { $0.dropFirst(name.count).trimmingCharacters(in: .whitespaces) }
            }
            return Handshake(
                established: result.status == 0 && field("Ciphersuite:") != nil,
                version: field("Protocol version:"), suite: field("Ciphersuite:"), peer: field("Peer certificate:"),
                output: output
            )
        }

        /// A relay with a STARTTLS listener and an RSA certificate (so static-RSA and
        /// ECDHE-RSA suites are both possible), `tlsSettings` added to its `tls:`.
        static func relay(_ tlsSettings: String = "", name: String = "server") throws -> (RelayProcess, TestCertificates) {
            let directory = try TemporaryDirectory(label: "tls-policy")
            let certificates = try TestCertificates.make(in: directory.path + "/certs", name: name, hostnames: ["\(name).test"], keyType: .rsa2048)
            let relay = try RelayProcess(
                listener: "tls: starttls\n    auth: none",
                rest: """
                    tls:
                      certificate: \(certificates.certificatePath)
                      key: \(certificates.keyPath)
                      \(tlsSettings)
                    upstreams:
                      - name: out
                        directory: outbox
                    """,
                directory: directory
            )
            try relay.start()
            return (relay, certificates)
        }

        @Test func defaultsOfferOnlyForwardSecretAEADSuitesOverTLS12And13() throws {
            let (relay, _) = try Self.relay()
            defer { relay.stop() }
            let good = try Self.handshake(port: relay.port, ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"])
            #expect(good.established, "\(good.output)")
            #expect(good.version == "TLSv1.2")
            #expect(good.suite == "ECDHE-RSA-AES128-GCM-SHA256")
            let chacha = try Self.handshake(port: relay.port, ["-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305"])
            #expect(chacha.established, "\(chacha.output)")
            // The server's order decides: a client that prefers ChaCha20 still gets AES-GCM.
            let ordered = try Self.handshake(port: relay.port, ["-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256"])
            #expect(ordered.suite == "ECDHE-RSA-AES128-GCM-SHA256", "\(ordered.output)")
            let tls13 = try Self.handshake(port: relay.port, ["-tls1_3"])
            #expect(tls13.established && tls13.version == "TLSv1.3", "\(tls13.output)")
            // No forward secrecy, CBC with SHA-1, or TLS 1.1.
            for refused in [
                ["-tls1_2", "-cipher", "AES128-GCM-SHA256"], ["-tls1_2", "-cipher", "AES256-SHA"],
                ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA"], ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
            ] {
                let h = try Self.handshake(port: relay.port, refused)
                #expect(!h.established, "\(refused) was accepted: \(h.output)")
                #expect(h.output.contains("handshake failure") || h.output.contains("protocol version"), "\(refused): \(h.output)")
            }
        }

        @Test func legacyProfileAndOldMinimumServeOldDevices() throws {
            let (relay, _) = try Self.relay("min_version: \"1.0\"\n  ciphers: legacy")
            defer { relay.stop() }
            for (options, version, suite) in [
                (["-tls1_2", "-cipher", "AES128-GCM-SHA256"], "TLSv1.2", "AES128-GCM-SHA256"),
                (["-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA"], "TLSv1.2", "ECDHE-RSA-AES128-SHA"),
                (["-tls1_1", "-cipher", "ECDHE-RSA-AES128-SHA@SECLEVEL=0"], "TLSv1.1", "ECDHE-RSA-AES128-SHA"),
                (["-tls1", "-cipher", "AES256-SHA@SECLEVEL=0"], "TLSv1", "AES256-SHA"),
            ] {
                let h = try Self.handshake(port: relay.port, options)
                #expect(h.established, "\(options): \(h.output)")
                #expect(h.version == version && h.suite == suite, "\(options): \(h.output)")
            }
        }

        @Test func minimumVersionAndExplicitSuiteList() throws {
            let (tls13, _) = try Self.relay("min_version: \"1.3\"")
            defer { tls13.stop() }
            #expect(try Self.handshake(port: tls13.port, ["-tls1_3"]).established)
            let old = try Self.handshake(port: tls13.port, ["-tls1_2"])
            #expect(!old.established && old.output.contains("protocol version"), "\(old.output)")

            let (listed, _) = try Self.relay("ciphers: [ECDHE-RSA-AES256-GCM-SHA384]")
            defer { listed.stop() }
            let chosen = try Self.handshake(port: listed.port, ["-tls1_2"])
            #expect(chosen.suite == "ECDHE-RSA-AES256-GCM-SHA384", "\(chosen.output)")
            #expect(!(try Self.handshake(port: listed.port, ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"]).established))
        }

        @Test func reloadServesARenewedCertificate() throws {
            let (relay, certificates) = try Self.relay(name: "first")
            defer { relay.stop() }
            #expect(try Self.handshake(port: relay.port, []).peer?.contains("CN = first.test") == true)
            // A renewal writes new files at the same paths, then asks for a reload.
            let renewed = try TestCertificates.make(in: relay.directory.path + "/renewed", name: "second", hostnames: ["second.test"], keyType: .rsa2048)
            try FileManager.default.removeItem(atPath: certificates.certificatePath)
            try FileManager.default.removeItem(atPath: certificates.keyPath)
            try FileManager.default.copyItem(atPath: renewed.certificatePath, toPath: certificates.certificatePath)
            try FileManager.default.copyItem(atPath: renewed.keyPath, toPath: certificates.keyPath)
            #expect(try Self.handshake(port: relay.port, []).peer?.contains("CN = first.test") == true, "not before the reload")
            #expect(relay.process?.signal(SIGHUP) == true)
            #expect(waitUntil(timeout: 20) { relay.log.contains("configuration reloaded") }, "\(relay.log)")
            #expect(relay.log.contains("tls.certificate.not_after"))
            let after = try Self.handshake(port: relay.port, [])
            #expect(after.peer?.contains("CN = second.test") == true, "\(after.output)")

            // A broken renewal (key of another certificate) is refused; the running one stays.
            try FileManager.default.removeItem(atPath: certificates.keyPath)
            try FileManager.default.copyItem(atPath: renewed.caKeyPath!, toPath: certificates.keyPath)
            let reloads = relay.log.components(separatedBy: "configuration reloaded").count
            #expect(relay.process?.signal(SIGHUP) == true)
            #expect(waitUntil(timeout: 20) { relay.log.contains("new configuration refused") }, "\(relay.log)")
            #expect(relay.log.components(separatedBy: "configuration reloaded").count == reloads)
            #expect(try Self.handshake(port: relay.port, []).peer?.contains("CN = second.test") == true)
        }

        /// The upstream client: a sink that speaks only TLS 1.2 with one suite.
        @Test(arguments: [
            // (sink's max version, sink's suites, upstream settings, delivered)
            ("1.2", "AES128-SHA", "", false),
            ("1.2", "AES128-SHA", "tls_ciphers: legacy", true),
            ("1.2", "AES128-SHA", "tls_ciphers: \"ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA\"", true),
            ("1.2", "ECDHE-RSA-AES128-GCM-SHA256", "", true),
            ("1.2", "ECDHE-RSA-AES128-GCM-SHA256", "tls_min_version: \"1.3\"", false),
        ])
        func upstreamClientOffersItsPolicy(sinkVersion: String, sinkSuites: String, settings: String, delivered: Bool) throws {
            let dir = try TemporaryDirectory(label: "tls-upstream")
            let certificates = try TestCertificates.make(in: dir.path + "/certs", keyType: .rsa2048)
            let sinkPort = freePort()
            let sink = try RawSMTPSink.start(port: sinkPort, directory: dir.path + "/sink", options: .init {
                $0.tls = .starttls(certificates)
                $0.tlsMaximumVersion = sinkVersion
                $0.tlsCiphers = sinkSuites
            })
            defer { sink.stop() }
            let relay = try RelayProcess(
                rest: """
                    upstreams:
                      - name: primary
                        hosts: [127.0.0.1:\(sinkPort)]
                        tls: required
                        ca_file: \(certificates.caCertificatePath)
                        \(settings)
                    delivery:
                      default_upstream: primary
                      retry: [1s]
                    """,
                directory: dir
            )
            try relay.start()
            defer { relay.stop() }
            let reply = try SMTPTestClient.sendMessage(port: relay.port, from: "a@example.com", to: ["b@example.net"], data: testMessage(marker: "tls-upstream"))
            #expect(reply.code == 250)
            if delivered {
                #expect(waitUntil(timeout: 20) { sink.messages().count == 1 }, "\(relay.log)")
            } else {
                // Deferred, never sent in plaintext.
                #expect(waitUntil(timeout: 20) { relay.log.contains("deferred") || relay.log.contains("delivery failed") }, "\(relay.log)")
                #expect(sink.messages().isEmpty)
                let list = try relay.cli(["queue", "list"])
                #expect(list.stdout.contains("<b@example.net>"), "\(list.stdout)")
            }
        }
    }
}
