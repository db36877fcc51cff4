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

        /// A started relay on `directory` whose upstream is the sink.
        func startRelay(to sink: RawSMTPSink, tls: String = "none", listener: String = "tls: none\n    auth: none", directory: TemporaryDirectory) throws -> RelayProcess {
            let relay = try RelayProcess(listener: listener, rest: upstream(port: sink.port, tls: tls), directory: directory)
            try relay.start()
            return relay
        }

        /// `MAIL FROM:a@b` without brackets (Postfix `strict_rfc821_envelopes = no`) is
        /// relayed with the envelope it meant; with `strict_envelopes: true` it is 501.
        @Test func envelopeWithoutBracketsIsRelayedUnlessStrict() throws {
            let dir = try TemporaryDirectory()
            let sink = try RawSMTPSink.start(port: freePort(), directory: dir.path + "/sink", options: .init())
            defer { sink.stop() }
            let relay = try startRelay(to: sink, directory: dir)
            defer { relay.stop() }
            let reply = try transaction(
                port: relay.port, hello: "HELO printer.example", mail: "MAIL FROM:printer@example.com", rcpt: "RCPT TO:bob@example.net",
                data: testMessage(marker: "bare")
            )
            #expect(reply.code == 250)
            let delivered = sink.waitForMessages(count: 1, timeout: 20)
            #expect(delivered.first?.mailFrom == "printer@example.com")
            #expect(delivered.first?.rcptTo == ["bob@example.net"])

            let strictDir = try TemporaryDirectory()
            let strict = try startRelay(to: sink, listener: "tls: none\n    auth: none\n    strict_envelopes: true", directory: strictDir)
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

        /// A printer as it talks: implicit TLS (port 465 style), HELO, AUTH PLAIN, one
        /// message; Python's `ssl` module as the client, slapd as the directory. Returns
        /// every reply, one a line.
        func printerSession(port: Int, caFile: String) throws -> String {
            let script = """
                import socket, ssl, sys, base64
                context = ssl.create_default_context(cafile=sys.argv[2])
                s = context.wrap_socket(socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=20), server_hostname='localhost')
                f = s.makefile('rb')
                def reply():
                    lines = []
                    while True:
                        line = f.readline().decode()
                        lines.append(line.strip())
                        if len(line) < 4 or line[3] != '-':
                            return lines[-1]
                def send(line):
                    s.sendall(line.encode() + b'\\r\\n')
                    print(line.split(' ')[0], '->', reply())
                print('greeting', reply())
                send('HELO printer.example')
                send('AUTH PLAIN ' + base64.b64encode(b'\\0alice\\0alice-pw').decode())
                send('MAIL FROM:<alice@finance.example.com>')
                send('RCPT TO:<bob@example.net>')
                send('DATA')
                send('Subject: scan\\r\\nX-Marker: printer\\r\\n\\r\\nscanned page\\r\\n.')
                send('QUIT')
                """
            let result = try ChildProcess.run("python3", ["-c", script, String(port), caFile], timeout: 60)
            return result.stdout + result.stderr
        }

        /// Issue 7: a client that says HELO can AUTH (`auth_after_helo`, default true), as
        /// with Postfix; with `auth_after_helo: false` it gets 503 5.5.1.
        @Test func printerSaysHeloThenAuth() async throws {
            let slapd = try await Slapd.start()
            defer { Task { await slapd.stop() } }
            let dir = try TemporaryDirectory()
            let certs = try TestCertificates.make(in: dir.path + "/certs")
            let sink = try RawSMTPSink.start(port: freePort(), directory: dir.path + "/sink", options: .init())
            defer { sink.stop() }
            func relay(_ setting: String, _ directory: TemporaryDirectory) throws -> RelayProcess {
                try RelayProcess.startedWithTLS(
                    listener: "tls: implicit\n    auth: required\n    auth_after_helo: \(setting)", certificates: certs,
                    rest: """
                        \(upstream(port: sink.port))
                        stages:
                          - use: ldap
                            settings: { uri: "\(slapd.uri)", bind_dn: "\(Slapd.serviceDN)", bind_password: \(Slapd.servicePassword), base: "\(Slapd.peopleDN)" }
                        """,
                    directory: directory
                )
            }
            let accepting = try relay("true", dir)
            defer { accepting.stop() }
            let session = try printerSession(port: accepting.port, caFile: certs.caCertificatePath)
            #expect(session.contains("HELO -> 250"), "\(session)")
            #expect(session.contains("AUTH -> 235 2.7.0"), "\(session)")
            #expect(session.contains("Subject: -> 250 2.0.0"), "\(session)")
            let delivered = await sink.waitForMessages(count: 1, timeout: 20)
            #expect(delivered.first?.text.contains("X-Marker: printer") == true)

            let refusingDir = try TemporaryDirectory()
            let refusing = try relay("false", refusingDir)
            defer { refusing.stop() }
            let refused = try printerSession(port: refusing.port, caFile: certs.caCertificatePath)
            #expect(refused.contains("AUTH -> 503 5.5.1"), "\(refused)")
            #expect(refused.contains("MAIL -> 530"), "\(refused)")
        }

        /// One transaction with the commands as given (no brackets added); the reply to the dot.
        func transaction(port: Int, hello: String = "EHLO client.example", mail: String, rcpt: String, data: [UInt8]) throws -> SMTPTestReply {
            let client = try SMTPTestClient.connect(port: port)
            defer { client.close() }
            _ = try client.readReply()
            try client.command(hello, expect: 250)
            try client.command(mail, expect: 250)
            try client.command(rcpt, expect: 250)
            try client.command("DATA", expect: 354)
            try client.sendRaw(SMTPTestClient.dotStuffed(data) + Array(".\r\n".utf8))
            return try client.readReply()
        }

        /// Whether Python's `email` package finds the same leaf parts (type and decoded
        /// payload, line ends aside) in both files: an independent MIME and QP decoder.
        func samePartsByPython(_ a: String, _ b: String) throws -> (Bool, String) {
            let script = """
                import sys, email
                def leaves(path):
                    m = email.message_from_bytes(open(path, 'rb').read())
                    return [(p.get_content_type(), p.get_payload(decode=True).replace(b'\\r\\n', b'\\n'))
                            for p in m.walk() if not p.is_multipart()]
                a, b = leaves(sys.argv[1]), leaves(sys.argv[2])
                print(len(a), 'parts', 'same' if a == b else 'DIFFERENT', a, b)
                sys.exit(0 if a == b and len(a) > 0 else 1)
                """
            let result = try ChildProcess.run("python3", ["-c", script, a, b], timeout: 30)
            return (result.status == 0, result.stdout + result.stderr)
        }

        func isSevenBitCanonical(_ bytes: [UInt8]) -> Bool {
            bytes.allSatisfy { $0 < 0x80 } && isCanonical(bytes)
                && String(decoding: bytes, as: UTF8.self).components(separatedBy: "\r\n").allSatisfy { $0.utf8.count <= 998 }
        }

        /// RELIABILITY C16/F8: 8-bit mail (here without BODY=8BITMIME, which the relay
        /// accepts like Postfix's `strict_8bitmime = no`) to an upstream without 8BITMIME is delivered as
        /// quoted-printable (7-bit, CRLF, short lines) that decodes back to the original;
        /// one with 8-bit header fields cannot be converted and bounces, and that bounce
        /// (the headers only, as quoted-printable text) reaches the sender through the
        /// same 7-bit upstream instead of being dropped.
        @Test func eightBitToASevenBitUpstream() throws {
            let dir = try TemporaryDirectory()
            let sink = try RawSMTPSink.start(port: freePort(), directory: dir.path + "/sink", options: .init())
            defer { sink.stop() }
            let relay = try startRelay(to: sink, directory: dir)
            defer { relay.stop() }
            let long = String(repeating: "Grüße aus Köln, ", count: 40)
            let original = """
                From: alice@example.com\r
                To: bob@example.net\r
                Subject: 8-bit parts\r
                MIME-Version: 1.0\r
                Content-Type: multipart/mixed; boundary="outer"\r
                \r
                --outer\r
                Content-Type: text/plain; charset=utf-8\r
                Content-Transfer-Encoding: 8bit\r
                \r
                Ein Absatz mit Umlauten: äöü ß = 100 %.\r
                \(long)\r
                .leading dot and trailing space \r
                --outer\r
                Content-Type: message/rfc822\r
                \r
                Subject: inner\r
                Content-Type: text/plain; charset=utf-8\r
                \r
                Ça va très bien.\r
                --outer--\r

                """
            #expect(try transaction(port: relay.port, mail: "MAIL FROM:<alice@example.com>", rcpt: "RCPT TO:<bob@example.net>", data: Array(original.utf8)).code == 250)
            let delivered = try #require(sink.waitForMessages(count: 1, timeout: 20).first)
            #expect(!delivered.mailParameters.contains { $0.uppercased().hasPrefix("BODY=8BITMIME") })
            #expect(isSevenBitCanonical(delivered.content))
            #expect(delivered.text.contains("Content-Transfer-Encoding: quoted-printable"))
            try TestFiles.write(original, to: dir.path + "/original.eml")
            try Data(delivered.content).write(to: URL(fileURLWithPath: dir.path + "/delivered.eml"))
            let (same, report) = try samePartsByPython(dir.path + "/original.eml", dir.path + "/delivered.eml")
            #expect(same, "\(report)")

            // 8-bit in a header field: 554 5.6.3, and the bounce is delivered, 7-bit.
            let headers = "From: alice@example.com\r\nTo: carol@example.net\r\nSubject: Grüße\r\nX-Marker: eight-bit-header\r\n\r\nKörper\r\n"
            #expect(try transaction(port: relay.port, mail: "MAIL FROM:<alice@example.com> BODY=8BITMIME", rcpt: "RCPT TO:<carol@example.net>", data: Array(headers.utf8)).code == 250)
            #expect(waitUntil(timeout: 30) { sink.messages().contains { $0.mailFrom.isEmpty } })
            let bounce = try #require(sink.messages().first { $0.mailFrom.isEmpty })
            #expect(bounce.rcptTo == ["alice@example.com"])
            #expect(isSevenBitCanonical(bounce.content))
            #expect(bounce.text.contains("Status: 5.6.3"))
            #expect(bounce.text.contains("8-bit header fields, which cannot be converted to 7-bit"))
            #expect(bounce.text.contains("Content-Type: text/rfc822-headers"))
            #expect(bounce.text.contains("Subject: Gr=C3=BC=C3=9Fe"))
            #expect(!bounce.text.contains("K=C3=B6rper"))
            #expect(!sink.messages().contains { $0.rcptTo == ["carol@example.net"] })
            #expect(!relay.log.contains("not bouncing"))
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
            let relay = try startRelay(to: sink, tls: "required\n    ca_file: \(trusted)", directory: dir)
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

extension RelayProcess {
    /// A started relay whose `tls:` section has the test's certificate and key.
    static func startedWithTLS(listener: String, certificates: TestCertificates, rest: String, directory: TemporaryDirectory) throws -> RelayProcess {
        let relay = try RelayProcess(
            listener: listener,
            rest: """
                tls:
                  certificate: \(certificates.certificatePath)
                  key: \(certificates.keyPath)
                \(rest)
                """,
            directory: directory
        )
        try relay.start()
        return relay
    }
}
