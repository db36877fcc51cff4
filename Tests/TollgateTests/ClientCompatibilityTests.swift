import Foundation
import TestSupport
import Testing

/// Clients and upstreams as administrators meet them (issue 7 item 7): old devices'
/// envelopes, upstream errors in words, 8-bit mail to a 7-bit upstream.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(5))) struct ClientCompatibilityTests {
        func upstream(port: Int, tls: String = "none", extra: String = "") -> String {
            """
            upstreams:
              - name: primary
                hosts: [127.0.0.1:\(port)]
                tls: \(tls)
            \(extra)
            delivery:
              default_upstream: primary
              retry: [1s]
            """
        }

        /// `MAIL FROM:a@b` without brackets (Postfix `strict_rfc821_envelopes = no`) is
        /// relayed with the envelope it meant; with `strict_envelopes: true` it is 501.
        @Test func envelopeWithoutBracketsIsRelayedUnlessStrict() throws {
            let dir = try TemporaryDirectory()
            let sink = try RawSMTPSink.start(port: freePort(), directory: dir.path + "/sink", options: .init())
            defer { sink.stop() }
            let relay = try RelayProcess(rest: upstream(port: sink.port), directory: dir)
            try relay.start()
            defer { relay.stop() }
            let client = try SMTPTestClient.connect(port: relay.port)
            defer { client.close() }
            _ = try client.readReply()
            try client.command("HELO printer.example", expect: 250)
            try client.command("MAIL FROM:printer@example.com", expect: 250)
            try client.command("RCPT TO:bob@example.net", expect: 250)
            try client.command("DATA", expect: 354)
            try client.sendRaw(SMTPTestClient.dotStuffed(testMessage(marker: "bare")) + Array(".\r\n".utf8))
            #expect(try client.readReply().code == 250)
            let delivered = sink.waitForMessages(count: 1, timeout: 20)
            #expect(delivered.first?.mailFrom == "printer@example.com")
            #expect(delivered.first?.rcptTo == ["bob@example.net"])

            let strictDir = try TemporaryDirectory()
            let strict = try RelayProcess(listener: "tls: none\n    auth: none\n    strict_envelopes: true", rest: upstream(port: sink.port), directory: strictDir)
            try strict.start()
            defer { strict.stop() }
            let old = try SMTPTestClient.connect(port: strict.port)
            defer { old.close() }
            _ = try old.readReply()
            try old.command("EHLO printer.example", expect: 250)
            let refused = try old.command("MAIL FROM:printer@example.com")
            #expect(refused.code == 501)
            #expect(refused.lines.joined().contains("enclosed in <>"))
            try old.command("MAIL FROM:<printer@example.com>", expect: 250)
        }

        /// Upstream TLS failures are stored and logged as one sentence with the enhanced
        /// code, never library text or a build path (issue 7): a certificate from an
        /// untrusted CA, one for another name, an expired one.
        @Test(arguments: ["untrusted", "hostname", "expired"])
        func upstreamTLSFailuresInWords(kind: String) throws {
            let dir = try TemporaryDirectory()
            let served: TestCertificates
            let trusted: String
            let sentence: String
            switch kind {
            case "untrusted":
                served = try TestCertificates.make(in: dir.path + "/served")
                trusted = try TestCertificates.make(in: dir.path + "/other").caCertificatePath
                sentence = "certificate verification failed: untrusted issuer"
            case "hostname":
                served = try TestCertificates.make(in: dir.path + "/served", hostnames: ["mx.example.test"], ips: [])
                trusted = served.caCertificatePath
                sentence = "hostname 127.0.0.1 not in certificate"
            default:
                try FileManager.default.createDirectory(atPath: dir.path + "/served", withIntermediateDirectories: true)
                served = try TestCertificates.makeExpired(in: dir.path + "/served")
                trusted = served.caCertificatePath
                sentence = "certificate verification failed: certificate expired on 2020-01-02 00:00 UTC"
            }
            var options = RawSMTPSink.Options()
            options.tls = .starttls(served)
            let sink = try RawSMTPSink.start(port: freePort(), directory: dir.path + "/sink", options: options)
            defer { sink.stop() }
            let relay = try RelayProcess(rest: upstream(port: sink.port, tls: "required\n    ca_file: \(trusted)"), directory: dir)
            try relay.start()
            defer { relay.stop() }
            #expect(try SMTPTestClient.sendMessage(port: relay.port, from: "a@example.com", to: ["b@example.net"], data: testMessage(marker: kind)).code == 250)
            var listing = ""
            #expect(waitUntil(timeout: 30) {
                listing = (try? relay.cli(["queue", "list"]))?.stdout ?? ""
                return listing.contains(sentence)
            }, "\(listing)")
            #expect(listing.contains("451 4.7.5 TLS handshake with upstream failed: \(sentence)"), "\(listing)")
            #expect(relay.log.contains(sentence))
            for text in [listing, relay.log] {
                for leak in ["/checkouts/", ".build", "NIOSSL", "BoringSSL", "handshake.cc", "Couldn't find"] {
                    #expect(!text.contains(leak), "\(leak) in \(text)")
                }
            }
            #expect(sink.messages().isEmpty)
        }
    }
}
