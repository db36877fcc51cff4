import Foundation
import TestSupport
import Testing

/// The `milter` stage in a real relay (`tollgate serve`, libtollgate-milter.so) with a
/// real OpenDKIM as the milter: what the sink receives is signed by OpenDKIM and the
/// signature verifies (dkimpy and OpenDKIM's verifier, the key given, not DNS); a
/// milter that is down gives the stage's `on_error`; a bad server setting is a located
/// `check` error.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(3))) struct MilterLiveTests {
        func relay(_ dir: TemporaryDirectory, sinkPort: Int, milterPort: Int, onError: String = "defer") throws -> RelayProcess {
            try RelayProcess(
                rest: """
                    upstreams:
                      - name: primary
                        hosts: [127.0.0.1:\(sinkPort)]
                        tls: none
                    delivery:
                      default_upstream: primary
                      retry: [1s]
                    stages:
                      - use: milter
                        on_error: \(onError)
                        settings:
                          server: inet:127.0.0.1:\(milterPort)
                          timeout: 5s
                    """,
                directory: dir
            )
        }

        @Test(.enabled(if: OpenDKIMMilter.isAvailable)) func openDKIMAsAMilterSignsWhatTheSinkReceives() throws {
            let milter = try OpenDKIMMilter(mode: "sv")
            defer { milter.stop() }
            let dir = try TemporaryDirectory(label: "milterlive")
            let sinkPort = freePort()
            var options = RawSMTPSink.Options()
            options.advertise8BITMIME = true
            let sink = try RawSMTPSink.start(port: sinkPort, directory: dir.path + "/sink", options: options)
            defer { sink.stop() }
            let relay = try relay(dir, sinkPort: sinkPort, milterPort: milter.port)
            let check = try relay.cli(["check"])
            #expect(check.status == 0, "\(check.stderr)")
            try relay.start()
            defer { relay.stop() }

            let bodies = [
                "Subject: one\r\nTo: b@example.net\r\n\r\nHello.\r\n",
                "Subject: dots and a folded\r\n\tsubject\r\nTo: b@example.net\r\n\r\n.\r\n..\r\n.x\r\n",
                "Subject: big\r\nTo: b@example.net\r\n\r\n" + String(repeating: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", count: 2500),
            ]
            for body in bodies {
                let data = Array("From: Alice <alice@example.com>\r\n\(body)".utf8)
                let reply = try SMTPTestClient.sendMessage(port: relay.port, from: "alice@example.com", to: ["b@example.net"], data: data)
                #expect(reply.code == 250, "\(reply) \(relay.log.suffix(2000))")
            }
            let got = sink.waitForMessages(count: bodies.count, timeout: 60)
            #expect(got.count == bodies.count, "\(relay.log.suffix(3000)) \(milter.log)")
            for m in got {
                #expect(m.text.contains("\r\nDKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=milt;"), "\(m.text.prefix(600))")
            }
            if DKIMVerifier.isAvailable {
                let dkimpy = try DKIMVerifier.verify(got.map(\.content), records: milter.records)
                #expect(dkimpy.passed, "\(dkimpy.output)")
            }
            let opendkim = try OpenDKIMVerifier.verify(got.map(\.content), records: milter.records)
            #expect(opendkim.passed, "\(opendkim.output)")
        }

        @Test func aMilterThatIsDownGivesOnError() throws {
            let dir = try TemporaryDirectory(label: "milterdown")
            let sinkPort = freePort()
            let sink = try RawSMTPSink.start(port: sinkPort, directory: dir.path + "/sink", options: RawSMTPSink.Options())
            defer { sink.stop() }
            let relay = try relay(dir, sinkPort: sinkPort, milterPort: freePort())
            try relay.start()
            defer { relay.stop() }
            do {
                let reply = try SMTPTestClient.sendMessage(port: relay.port, from: "alice@example.com", to: ["b@example.net"], data: Array("Subject: x\r\n\r\nx\r\n".utf8))
                #expect(reply.code / 100 == 4, "\(reply)")
            } catch let error as TestSupportError {
                // refused at an earlier step (the connect phase's on_error): a 4xx reply
                #expect((error.reply?.code ?? 0) / 100 == 4, "\(error)")
            }
            #expect(relay.log.contains("cannot connect to the milter"), "\(relay.log.suffix(2000))")
        }

        @Test func aBadServerIsALocatedCheckError() throws {
            let dir = try TemporaryDirectory(label: "miltercheck")
            let relay = try RelayProcess(
                rest: """
                    upstreams:
                      - name: primary
                        directory: out
                    stages:
                      - use: milter
                        settings:
                          server: 127.0.0.1:8891
                          timeout: 10
                    """,
                directory: dir
            )
            let check = try relay.cli(["check"])
            #expect(check.status == 1)
            #expect(check.stderr.contains("\(relay.configPath):"), "\(check.stderr)")
            #expect(check.stderr.contains("server is inet:HOST:PORT"), "\(check.stderr)")
            #expect(check.stderr.contains("'timeout' must be a duration"), "\(check.stderr)")
        }
    }
}
