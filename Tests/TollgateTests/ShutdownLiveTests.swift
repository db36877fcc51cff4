import Foundation
import TestSupport
import Testing

/// SIGTERM with a session idle inside a transaction: the log says how many sessions
/// are waited for, the session gets `421 4.3.2` at `limits.drain_timeout`, and a
/// second signal ends the process at once.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(2))) struct ShutdownLiveTests {
        static func relay(drainTimeout: String) throws -> RelayProcess {
            try RelayProcess(rest: """
                upstreams:
                  - name: out
                    directory: outbox
                limits:
                  drain_timeout: \(drainTimeout)
                """)
        }

        /// A session inside a transaction (MAIL given), then silent.
        static func openTransaction(_ relay: RelayProcess) throws -> SMTPTestClient {
            let client = try SMTPTestClient.connect(port: relay.port)
            #expect(try client.readReply().code == 220)
            #expect(try client.command("EHLO c.test").code == 250)
            #expect(try client.command("MAIL FROM:<a@example.com>").code == 250)
            return client
        }

        @Test func drainDeadlineSays421AndLogsTheSessionsWaitedFor() throws {
            let relay = try Self.relay(drainTimeout: "2s")
            try relay.start()
            defer { relay.stop() }
            let busy = try Self.openTransaction(relay)
            defer { busy.close() }
            let idle = try SMTPTestClient.connect(port: relay.port)
            defer { idle.close() }
            #expect(try idle.readReply().code == 220)
            let process = try #require(relay.process)
            let start = Date()
            #expect(process.signal(SIGTERM))
            // The idle session is told at once; the busy one is waited for.
            let idleReply = try idle.readReply(timeout: 5)
            #expect(idleReply.code == 421 && idleReply.text.contains("4.3.2"))
            #expect(waitUntil(timeout: 5) { relay.log.contains("waiting for sessions to finish their transaction") })
            #expect(relay.log.split(separator: "\n").contains { $0.contains("waiting for sessions") && $0.contains("smtp.sessions.open=1") })
            // At the deadline: 421 4.3.2, not a bare EOF.
            let reply = try busy.readReply(timeout: 10)
            let waited = Date().timeIntervalSince(start)
            #expect(reply.code == 421 && reply.text.contains("4.3.2"), "got \(reply)")
            #expect(waited >= 1.5 && waited < 6, "421 after \(waited) s, drain_timeout 2s")
            #expect(relay.log.contains("drain deadline passed"))
            #expect(process.waitForExit(timeout: 20) == 0)
        }

        @Test func aSecondSignalExitsAtOnce() throws {
            let relay = try Self.relay(drainTimeout: "60s")
            try relay.start()
            defer { relay.stop() }
            let busy = try Self.openTransaction(relay)
            defer { busy.close() }
            let process = try #require(relay.process)
            #expect(process.signal(SIGTERM))
            #expect(waitUntil(timeout: 5) { relay.log.contains("waiting for sessions to finish their transaction") })
            let start = Date()
            #expect(process.signal(SIGINT))
            let reply = try busy.readReply(timeout: 5)
            #expect(reply.code == 421 && reply.text.contains("4.3.2"), "got \(reply)")
            let status = process.waitForExit(timeout: 5)
            #expect(status == 1, "exit status \(String(describing: status)) after a second signal")
            #expect(Date().timeIntervalSince(start) < 4)
            #expect(relay.log.contains("second stop signal"))
        }
    }
}
