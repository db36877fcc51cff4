import Foundation
import Testing
import TestSupport

/// Running short of open files (issue "Hardening", RELIABILITY C12): client sessions
/// are capped below the limit, so a newcomer past it gets `421 4.7.0` at once, the
/// relay logs why, and the sessions it holds go on working.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(3))) struct ResourceLimitsLiveTests {
        @Test func tooFewOpenFilesCapSessionsWith421() throws {
            let relay = try RelayProcess(rest: "upstreams:\n  - name: out\n    directory: outbox\n")
            relay.launcher = ["prlimit", "--nofile=160:160"]
            try relay.start()
            defer { relay.stop() }
            // 160 files, 64 + 20 (the upstream's pool) reserved: 76 sessions.
            #expect(relay.log.contains("too few open files for limits.max_connections"), "\(relay.log)")
            #expect(relay.log.contains("limits.max_connections=76"), "\(relay.log)")
            var clients: [SMTPTestClient] = []
            defer { for c in clients { c.close() } }
            var greeted = 0
            var refused = 0
            for _ in 0..<100 {
                let client = SMTPTestClient()
                try client.connect(port: relay.port)
                clients.append(client)
                let reply = try client.readReply()
                if reply.code == 220 { greeted += 1 } else if reply.code == 421, reply.text.hasPrefix("4.7.0") { refused += 1 }
            }
            #expect(greeted == 76 && refused == 24, "\(greeted) greeted, \(refused) refused")
            // The held sessions still work, and so does the spool.
            let first = clients[0]
            _ = try first.command("EHLO c", expect: 250)
            _ = try first.command("MAIL FROM:<a@example.com>", expect: 250)
            _ = try first.command("RCPT TO:<b@example.net>", expect: 250)
            _ = try first.command("DATA", expect: 354)
            try first.sendRaw(testMessage(marker: "fd") + Array(".\r\n".utf8))
            #expect(try first.readReply().code == 250)
            // Room comes back when sessions end.
            for c in clients { c.close() }
            clients.removeAll()
            #expect(waitUntil(timeout: 10) {
                let again = SMTPTestClient()
                defer { again.close() }
                return (try? again.connect(port: relay.port)).map { _ in (try? again.readReply())?.code == 220 } ?? false
            })
        }
    }
}
