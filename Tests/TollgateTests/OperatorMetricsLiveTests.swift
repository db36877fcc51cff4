import Foundation
import TestSupport
import Testing

/// The metrics an operator looks for first, scraped from a live relay's `/metrics`
/// after real traffic: build info, queue by state, sessions and connections per
/// listener, AUTH and TLS results, bytes, delivery attempts per upstream and host.
/// Also the modes of what the relay writes: spool 0700/0600, outbox files 0640.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(3))) struct OperatorMetricsLiveTests {
        static func scrape(_ port: Int) throws -> String {
            try ChildProcess.run("python3", ["-c", "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:\(port)/metrics', timeout=5).read().decode())"], timeout: 10).stdout
        }

        /// The value of the series `name{labels}` (labels as exposed), if present.
        static func value(_ text: String, _ series: String) -> Double? {
            for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
                return Double(line.dropFirst(series.count + 1))
            }
            return nil
        }

        static func mode(_ path: String) -> mode_t? {
            var info = stat()
            return stat(path, &info) == 0 ? info.st_mode & 0o7777 : nil
        }

        /// A message delivered over STARTTLS, an AUTH that no stage accepts, a STARTTLS whose
        /// handshake is garbage; then the upstream goes away and the next message is
        /// deferred and stays queued. Also what GrafanaDashboardLiveTests sends.
        static func sendTraffic(relay: RelayProcess, sink: SMTPSink, certs: TestCertificates) throws {
            let tls = ["-tls", "--tls-verify", "--tls-ca-path", certs.caCertificatePath]
            let sent = try Swaks.send(port: relay.port, from: "a@example.com", to: ["b@example.net"], options: tls)
            #expect(sent.status == 0, "\(sent.transcript)")
            #expect(sink.waitForMessages(count: 1, timeout: 15).count == 1)
            let login = try Swaks.send(port: relay.port, from: "a@example.com", to: ["b@example.net"], options: tls + ["-a", "PLAIN", "-au", "nobody", "-ap", "wrong"])
            #expect(login.transcript.contains("535"), "\(login.transcript)")
            let broken = try SMTPTestClient.connect(port: relay.port)
            _ = try broken.readReply()
            _ = try broken.command("EHLO c.test")
            #expect(try broken.command("STARTTLS").code == 220)
            try broken.sendRaw(Array("this is not a TLS record\r\n".utf8))
            _ = try? broken.readReply(timeout: 3)
            broken.close()
            _ = sink.process.terminate(timeout: 5)
            #expect(try SMTPTestClient.sendMessage(port: relay.port, from: "a@example.com", to: ["c@example.net"], data: testMessage(marker: "deferred")).code == 250)
        }

        /// A relay (not started) with a STARTTLS listener, AUTH optional, a sink upstream,
        /// metrics on a free port, and `more` (YAML, e.g. `stages:`) in its configuration.
        static func relay(in dir: TemporaryDirectory, more: String = "") throws -> (relay: RelayProcess, sink: SMTPSink, certs: TestCertificates, metricsPort: Int) {
            let certs = try TestCertificates.make(in: dir.path + "/certs")
            let metricsPort = freePort()
            let sink = try SMTPSink.start(dumpDirectory: dir.path + "/sink")
            let relay = try RelayProcess(
                listener: "tls: starttls\n    auth: optional",
                rest: """
                    tls:
                      certificate: \(certs.certificatePath)
                      key: \(certs.keyPath)
                    upstreams:
                      - name: sink
                        hosts: [127.0.0.1:\(sink.port)]
                        tls: none
                    delivery:
                      retry: [1h]
                    metrics: { address: 127.0.0.1:\(metricsPort) }
                    """ + more,
                directory: dir
            )
            return (relay, sink, certs, metricsPort)
        }

        @Test func theFirstMetricsAreThereAfterRealTraffic() throws {
            let dir = try TemporaryDirectory()
            let (relay, sink, certs, metricsPort) = try Self.relay(in: dir)
            try relay.start()
            defer { relay.stop() }
            try Self.sendTraffic(relay: relay, sink: sink, certs: certs)
            // An idle session stays open while we scrape.
            let idle = try SMTPTestClient.connect(port: relay.port)
            defer { idle.close() }
            #expect(try idle.readReply().code == 220)

            #expect(waitUntil(timeout: 15) { (try? Self.scrape(metricsPort)).map { Self.value($0, "tollgate_queue_messages{state=\"deferred\"}") == 1 } ?? false })
            let text = try Self.scrape(metricsPort)
            let lines = text.split(separator: "\n").map(String.init)
            #expect(lines.contains { $0.hasPrefix("tollgate_build_info{version=\"") && $0.contains("abi=\"") && $0.split(separator: " ").last.flatMap { Double($0) } == 1 }, "\(text.prefix(600))")
            #expect(Self.value(text, "tollgate_queue_messages{state=\"queued\"}") == 0)
            #expect(Self.value(text, "tollgate_queue_messages{state=\"held\"}") == 0)
            #expect(Self.value(text, "tollgate_smtp_sessions{listener=\"relay\"}") == 1)
            #expect((Self.value(text, "tollgate_smtp_connections_total{listener=\"relay\",result=\"accepted\"}") ?? 0) >= 5)
            #expect(Self.value(text, "tollgate_smtp_tls_handshakes_total{listener=\"relay\",result=\"success\"}") == 2)
            #expect(Self.value(text, "tollgate_smtp_tls_handshakes_total{listener=\"relay\",result=\"failure\"}") == 1)
            // The failed handshake is logged with why, in words, not NIOSSL's error stack.
            #expect(relay.log.contains("TLS handshake failed") && relay.log.contains("client does not speak TLS (wrong version number)"), "\(relay.log.suffix(3000))")
            #expect(!relay.log.contains("BoringSSL") && !relay.log.contains("handshakeFailed"), "\(relay.log.suffix(3000))")
            #expect(Self.value(text, "tollgate_smtp_auth_total{listener=\"relay\",result=\"failure\"}") == 1)
            #expect((Self.value(text, "tollgate_smtp_received_bytes_total{listener=\"relay\"}") ?? 0) > 200)
            #expect((Self.value(text, "tollgate_smtp_sent_bytes_total{listener=\"relay\"}") ?? 0) > 200)
            #expect((Self.value(text, "tollgate_smtp_message_bytes_total{listener=\"relay\"}") ?? 0) > 100)
            #expect((Self.value(text, "tollgate_delivery_sent_bytes_total{upstream=\"sink\"}") ?? 0) > 100)
            #expect(lines.contains { $0.hasPrefix("tollgate_delivery_attempts_total{upstream=\"sink\",host=\"127.0.0.1") && $0.contains("result=\"sent\"") && $0.hasSuffix(" 1") }, "\(lines.filter { $0.contains("attempts") })")
            #expect(lines.contains { $0.hasPrefix("tollgate_delivery_attempts_total{upstream=\"sink\"") && $0.contains("result=\"deferred\"") }, "\(lines.filter { $0.contains("attempts") })")
            // The spool's group commits: their time and size.
            #expect((Self.value(text, "tollgate_spool_commit_duration_seconds_count") ?? 0) >= 2, "\(lines.filter { $0.contains("commit") })")
            #expect((Self.value(text, "tollgate_spool_commit_duration_seconds_sum") ?? 0) > 0)
            #expect((Self.value(text, "tollgate_spool_commit_batch_operations_count") ?? 0) >= 2)
            // Refusals by class: the failed AUTH is 5/policy (535 5.7.8).
            #expect((Self.value(text, "tollgate_smtp_refusals_total{listener=\"relay\",code=\"5\",reason=\"policy\"}") ?? 0) >= 1, "\(lines.filter { $0.contains("refusals") })")
            // What the relay wrote is private: spool folder 0700, database 0600.
            #expect(Self.mode(dir.path + "/spool") == 0o700)
            #expect(Self.mode(dir.path + "/spool/queue.sqlite") == 0o600)
        }
    }
}
