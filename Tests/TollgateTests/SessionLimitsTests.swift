import Foundation
import TestSupport
import Testing

/// Limits, deadlines, pipelining rules, reload and shutdown against a live server.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(3))) struct SessionLimitsTests {
        let outbox = """
            upstreams:
              - name: out
                directory: outbox
            """

        @Test func idleAndTricklingClientsAreCutOff() throws {
            let relay = try RelayProcess(rest: outbox + "\nlimits:\n  command_timeout: 1s\n  data_timeout: 2s\n")
            try relay.start()
            defer { relay.stop() }
            // Idle: nothing sent after the greeting.
            let idle = try SMTPTestClient.connect(port: relay.port)
            defer { idle.close() }
            #expect(try idle.readReply().code == 220)
            let timeout = try idle.readReply(timeout: 5)
            #expect(timeout.code == 421)
            // Trickle: one byte at a time never completes a command within the deadline.
            let trickle = try SMTPTestClient.connect(port: relay.port)
            defer { trickle.close() }
            _ = try trickle.readReply()
            var cut = false
            for byte in Array("NOOP and more and more and more".utf8) {
                do {
                    try trickle.sendRaw([byte])
                } catch {
                    cut = true
                    break
                }
                Thread.sleep(forTimeInterval: 0.25)
            }
            let reply = try? trickle.readReply(timeout: 3)
            #expect(cut || reply?.code == 421)
        }

        /// RELIABILITY C12: once four fifths of `max_connections` are open, sessions wait
        /// `stress_command_timeout` for a command instead of `command_timeout`, so idle
        /// ones give their slots to new clients; with the load gone the long wait is back.
        @Test func stressShortensTheCommandTimeout() throws {
            let relay = try RelayProcess(
                rest: outbox + "\nlimits:\n  max_connections: 10\n  command_timeout: 60s\n  stress_command_timeout: 1s\n"
            )
            try relay.start()
            defer { relay.stop() }
            var clients: [SMTPTestClient] = []
            defer { clients.forEach { $0.close() } }
            for _ in 0..<8 {
                let client = try SMTPTestClient.connect(port: relay.port)
                #expect(try client.readReply().code == 220)
                clients.append(client)
            }
            // Eight of ten open: stressed. After one command each, each waits 1 s.
            let started = Date()
            for client in clients {
                #expect(try client.command("NOOP").code == 250)
            }
            for client in clients {
                #expect(try client.readReply(timeout: 10).code == 421)
            }
            #expect(Date().timeIntervalSince(started) < 10)
            #expect(waitUntil(timeout: 10) { relay.log.contains("stress over") })
            #expect(relay.log.contains("under stress: 8 of 10 sessions open, waiting 1s for a command instead of 60s"))
            // Unstressed again: a lone idle session is not cut off after the short wait.
            let lone = try SMTPTestClient.connect(port: relay.port)
            defer { lone.close() }
            #expect(try lone.readReply().code == 220)
            Thread.sleep(forTimeInterval: 2.5)
            #expect(try lone.command("NOOP").code == 250)
        }

        @Test func connectionCapsAndClientAllowlist() throws {
            let relay = try RelayProcess(rest: outbox + "\nlimits:\n  max_connections_per_client: 2\n")
            try relay.start()
            defer { relay.stop() }
            let a = try SMTPTestClient.connect(port: relay.port)
            let b = try SMTPTestClient.connect(port: relay.port)
            defer { a.close(); b.close() }
            #expect(try a.readReply().code == 220)
            #expect(try b.readReply().code == 220)
            let c = try SMTPTestClient.connect(port: relay.port)
            defer { c.close() }
            #expect(try c.readReply().code == 421)

            let closed = try RelayProcess(listener: "tls: none\n    auth: none\n    clients: [10.0.0.0/8]", rest: outbox)
            try closed.start()
            defer { closed.stop() }
            let d = try SMTPTestClient.connect(port: closed.port)
            defer { d.close() }
            let refused = try d.readReply()
            #expect(refused.code == 554)
        }

        @Test func messageSizeLimits() throws {
            let relay = try RelayProcess(rest: outbox + "\nlimits:\n  max_message_size: 64KB\n")
            try relay.start()
            defer { relay.stop() }
            let client = try SMTPTestClient.connect(port: relay.port)
            defer { client.close() }
            _ = try client.readReply()
            let ehlo = try client.command("EHLO c.test")
            #expect(ehlo.lines.contains { $0.contains("SIZE 65536") })
            #expect(try client.command("MAIL FROM:<a@example.com> SIZE=65537").code == 552)
            #expect(try client.command("MAIL FROM:<a@example.com>").code == 250)
            #expect(try client.command("RCPT TO:<b@example.net>").code == 250)
            #expect(try client.command("DATA").code == 354)
            try client.sendRaw(testMessage(marker: "big", size: 70_000) + Array("\r\n.\r\n".utf8))
            let reply = try client.readReply()
            #expect(reply.code == 552)
            #expect(try client.command("NOOP").code == 250)
        }

        @Test func pipeliningRules() throws {
            let relay = try RelayProcess(rest: outbox)
            try relay.start()
            defer { relay.stop() }
            // A legitimate PIPELINING group: replies in order.
            let good = try SMTPTestClient.connect(port: relay.port)
            defer { good.close() }
            _ = try good.readReply()
            _ = try good.command("EHLO c.test")
            try good.sendRaw(Array("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n".utf8))
            #expect(try good.readReply().code == 250)
            #expect(try good.readReply().code == 250)
            #expect(try good.readReply().code == 250)
            #expect(try good.readReply().code == 354)
            // RELIABILITY C5: EHLO must end a group.
            let bad = try SMTPTestClient.connect(port: relay.port)
            defer { bad.close() }
            _ = try bad.readReply()
            try bad.sendRaw(Array("EHLO c.test\r\nMAIL FROM:<a@example.com>\r\n".utf8))
            #expect(try bad.readReply().code == 554)
            // RELIABILITY A2: without PIPELINING (HELO), commands after the dot in one write.
            let helo = try SMTPTestClient.connect(port: relay.port)
            defer { helo.close() }
            _ = try helo.readReply()
            #expect(try helo.command("HELO c.test").code == 250)
            #expect(try helo.command("MAIL FROM:<a@example.com>").code == 250)
            #expect(try helo.command("RCPT TO:<b@example.net>").code == 250)
            #expect(try helo.command("DATA").code == 354)
            try helo.sendRaw(Array("Subject: x\r\n\r\nbody\r\n.\r\nMAIL FROM:<x@example.com>\r\n".utf8))
            #expect(try helo.readReply().code == 554)
        }

        @Test func junkAndHTTP() throws {
            let relay = try RelayProcess(rest: outbox)
            try relay.start()
            defer { relay.stop() }
            let client = try SMTPTestClient.connect(port: relay.port)
            defer { client.close() }
            _ = try client.readReply()
            #expect(try client.command("FOO BAR").code == 500)
            #expect(try client.command("NOOP \u{1}\u{2}\u{ff}").code == 250)
            #expect(try client.command(String(repeating: "A", count: 5000)).code == 500)
            #expect(try client.command("NOOP").code == 250)
            let http = try SMTPTestClient.connect(port: relay.port)
            defer { http.close() }
            _ = try http.readReply()
            #expect(try http.command("GET / HTTP/1.1").code == 502)
        }

        @Test func reloadAppliesValidConfigAndKeepsOldOnError() throws {
            let relay = try RelayProcess(rest: outbox + "\nlimits:\n  max_message_size: 1MB\n")
            try relay.start()
            defer { relay.stop() }
            func advertisedSize() throws -> String? {
                let c = try SMTPTestClient.connect(port: relay.port)
                defer { c.close() }
                _ = try c.readReply()
                return try c.command("EHLO c.test").lines.first { $0.hasPrefix("SIZE") }
            }
            #expect(try advertisedSize() == "SIZE 1048576")
            var text = try String(contentsOfFile: relay.configPath, encoding: .utf8)
            text = text.replacingOccurrences(of: "max_message_size: 1MB", with: "max_message_size: 2MB")
            try text.write(toFile: relay.configPath, atomically: true, encoding: .utf8)
            relay.process?.signal(SIGHUP)
            #expect(waitUntil(timeout: 10) { (try? advertisedSize()) == "SIZE 2097152" })
            try (text + "\nbogus_key: 1\n").write(toFile: relay.configPath, atomically: true, encoding: .utf8)
            relay.process?.signal(SIGHUP)
            #expect(waitUntil(timeout: 10) { relay.log.contains("new configuration refused") })
            #expect(try advertisedSize() == "SIZE 2097152")
        }

        @Test func sigtermDrainsAndExitsZero() throws {
            let relay = try RelayProcess(rest: outbox)
            try relay.start()
            let client = try SMTPTestClient.connect(port: relay.port)
            defer { client.close() }
            _ = try client.readReply()
            _ = try client.command("EHLO c.test")
            _ = try client.command("MAIL FROM:<a@example.com>")
            let process = try #require(relay.process)
            process.signal(SIGTERM)
            Thread.sleep(forTimeInterval: 0.5)
            // The transaction in progress may finish.
            #expect(try client.command("RCPT TO:<b@example.net>").code == 250)
            #expect(try client.command("DATA").code == 354)
            try client.sendRaw(testMessage(marker: "drain") + Array(".\r\n".utf8))
            #expect(try client.readReply().code == 250)
            #expect(process.waitForExit(timeout: 40) == 0)
        }

        @Test func metricsAndHealth() throws {
            let metricsPort = freePort()
            let relay = try RelayProcess(rest: outbox + "\nmetrics: { address: 127.0.0.1:\(metricsPort) }\n")
            try relay.start()
            defer { relay.stop() }
            #expect(try SMTPTestClient.sendMessage(port: relay.port, from: "a@example.com", to: ["b@example.net"], data: testMessage(marker: "metrics")).code == 250)
            func get(_ path: String) throws -> String {
                try ChildProcess.run("python3", ["-c", "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:\(metricsPort)\(path)', timeout=5).read().decode())"], timeout: 10).stdout
            }
            #expect(waitUntil(timeout: 10) { ((try? get("/metrics")) ?? "").contains("result=\"delivered\"") })
            let text = try get("/metrics")
            #expect(text.contains("tollgate_smtp_messages_accepted_total 1"))
            #expect(text.contains("tollgate_delivery_recipients_total{upstream=\"out\",result=\"delivered\"} 1"))
            #expect(try get("/healthz").contains("ok"))
        }

        @Test func departmentSizeLimitAndRoute() throws {
            let dir = try TemporaryDirectory()
            try FileManager.default.createDirectory(atPath: dir.path + "/policies", withIntermediateDirectories: true)
            try """
                department: local
                members:
                  networks: [127.0.0.0/8]
                route:
                  upstream: local-out
                max_message_size: 2KB
                """.write(toFile: dir.path + "/policies/local.yaml", atomically: true, encoding: .utf8)
            let relay = try RelayProcess(
                rest: """
                    upstreams:
                      - name: out
                        directory: outbox
                      - name: local-out
                        directory: local-outbox
                    delivery:
                      default_upstream: out
                    policies: policies
                    """,
                directory: dir
            )
            try relay.start()
            defer { relay.stop() }
            let big = try SMTPTestClient.sendMessage(port: relay.port, from: "a@example.com", to: ["b@example.net"], data: testMessage(marker: "big", size: 4000))
            #expect(big.code == 552)
            // The log line of the 552 says the size, the limit and whose limit it is.
            let refusal = relay.log.split(separator: "\n").first { $0.contains("refused") && $0.contains("552") }
            #expect(refusal?.contains("limit.bytes=2048") == true, "\(refusal ?? "no refused line")")
            #expect(refusal?.contains("department local") == true)
            #expect(refusal.map { $0.contains("message.size=40") || $0.contains("message.size=41") } == true)
            let small = try SMTPTestClient.sendMessage(port: relay.port, from: "a@example.com", to: ["b@example.net"], data: testMessage(marker: "small"))
            #expect(small.code == 250)
            #expect(waitUntil(timeout: 10) { ((try? FileManager.default.contentsOfDirectory(atPath: dir.path + "/local-outbox")) ?? []).count == 1 })
            // Outbox files are readable by the relay's group only (0640).
            for file in (try? FileManager.default.contentsOfDirectory(atPath: dir.path + "/local-outbox")) ?? [] {
                var info = stat()
                #expect(stat(dir.path + "/local-outbox/" + file, &info) == 0 && info.st_mode & 0o7777 == 0o640, "\(file)")
            }
        }
    }
}
