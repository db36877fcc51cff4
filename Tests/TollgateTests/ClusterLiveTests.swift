import Foundation
import TestSupport
import TollgateSpoolPostgres
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Two live `tollgate serve` nodes on one real PostgreSQL (SPEC §6), relaying to a
/// real SMTP sink process.
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(5))) struct ClusterLiveTests {
        /// The `spool:` body for node `name` on a database of the test process's server.
        static func spool(_ server: PostgresServer, database: String, node: String, lease: String = "5s") -> String {
            "postgres: { url: \"\(server.url(database: database))\", password_file: \(server.passwordFile), statement_timeout: 5s }\n  node: \(node)\n  lease: \(lease)"
        }

        /// The one upstream `primary`, retried every second, as the other live tests use it.
        static func upstream(_ port: Int) -> String { RelayIntegrationTests().upstreamConfig(port: port) }

        /// Markers delivered more than once, and how often.
        static func duplicates(_ sink: SMTPSink) -> [String: Int] {
            var seen: [String: Int] = [:]
            for m in sink.messages() { if let marker = m.headerValue("X-Marker") { seen[marker, default: 0] += 1 } }
            return seen.filter { $0.value > 1 }
        }

        /// A database of its own on the test process's server, and a sink.
        static func setUp(_ dir: TemporaryDirectory) async throws -> (PostgresServer, String, SMTPSink, Int) {
            let server = try await PostgresServer.shared()
            let database = try await server.createDatabase()
            let sinkPort = freePort()
            return (server, database, try SMTPSink.start(port: sinkPort, dumpDirectory: dir.path + "/dump"), sinkPort)
        }

        /// A rate limit holds for the cluster (issue 8 part 3): 5 messages per client and
        /// hour admit 5 across both nodes together, and the count survives a reload of
        /// one node and a restart of the other; `explain` on either node reads it.
        @Test func aRateLimitHoldsAcrossNodesReloadsAndRestarts() async throws {
            let dir = try TemporaryDirectory(label: "cluster-limit")
            defer { dir.remove() }
            let (server, database, sink, sinkPort) = try await Self.setUp(dir)
            defer { sink.stop() }
            let rest = Self.upstream(sinkPort) + """

                stages:
                  - use: rate-limit
                    settings:
                      limits:
                        - { key: client, messages: 5, per: 1h }
                """
            let a = try RelayProcess(spool: Self.spool(server, database: database, node: "relay-a"), rest: rest, directory: try TemporaryDirectory(label: "node-a"))
            let b = try RelayProcess(spool: Self.spool(server, database: database, node: "relay-b"), rest: rest, directory: try TemporaryDirectory(label: "node-b"))
            try a.start()
            defer { a.stop(); a.directory.remove() }
            try b.start()
            defer { b.stop(); b.directory.remove() }
            // Eight clients at once, four on each node, from the one address 127.0.0.1.
            let codes = try await withThrowingTaskGroup(of: Int.self) { group in
                for n in 0..<8 {
                    let node = n % 2 == 0 ? a : b
                    group.addTask {
                        try await Blocking.run {
                            do {
                                return try SMTPTestClient.sendMessage(port: node.port, from: "load@example.com", to: ["sink@example.net"], data: testMessage(marker: "limit-\(n)")).code
                            } catch let error as TestSupportError {
                                return error.reply?.code ?? 0
                            }
                        }
                    }
                }
                var all: [Int] = []
                for try await code in group { all.append(code) }
                return all
            }
            #expect(codes.filter { $0 == 250 }.count == 5, "\(codes)")
            #expect(codes.filter { $0 == 451 }.count == 3, "\(codes)")
            func sixth(_ node: RelayProcess) throws -> Int {
                do {
                    return try SMTPTestClient.sendMessage(port: node.port, from: "load@example.com", to: ["sink@example.net"], data: testMessage(marker: "again")).code
                } catch let error as TestSupportError {
                    return error.reply?.code ?? 0
                }
            }
            // A reload of a keeps the count; so does a restart of b.
            #expect(a.process?.signal(SIGHUP) == true)
            #expect(await waitUntil(timeout: 10) { a.log.contains("configuration reloaded") })
            #expect(a.log.contains("rate_limit.counters=kept"), "\(a.log.suffix(1500))")
            #expect(try sixth(a) == 451)
            b.stop()
            try b.start()
            #expect(try sixth(b) == 451)
            let explained = try b.cli(["explain", "--from", "load@example.com", "--to", "sink@example.net", "--client", "127.0.0.1"])
            #expect(explained.status == 1, "\(explained.stdout)\(explained.stderr)")
            #expect(explained.stdout.contains("5 used"), "\(explained.stdout)")
        }

        /// Two nodes, and three: every message accepted on any node is delivered exactly once.
        @Test(arguments: [2, 3]) func nodesDeliverEveryMessageExactlyOnce(_ count: Int) async throws {
            let dir = try TemporaryDirectory(label: "cluster")
            defer { dir.remove() }
            let (server, database, sink, sinkPort) = try await Self.setUp(dir)
            defer { sink.stop() }
            let nodes = try (0..<count).map { n in
                try RelayProcess(spool: Self.spool(server, database: database, node: "relay-\(n)"), rest: Self.upstream(sinkPort), directory: try TemporaryDirectory(label: "node-\(n)"))
            }
            for node in nodes { try node.start() }
            defer { for node in nodes { node.stop(); node.directory.remove() } }
            let a = nodes[0]

            // Four clients, each going round the nodes.
            let perClient = count == 2 ? 50 : 36
            let markers = (0..<4).flatMap { c in (0..<perClient).map { "c\(c)-\($0)" } }
            let accepted = LockedCount()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for c in 0..<4 {
                    group.addTask {
                        for n in 0..<perClient {
                            let node = nodes[(c + n) % count]
                            let reply = try await Blocking.run { try SMTPTestClient.sendMessage(port: node.port, from: "load@example.com", to: ["sink@example.net"], data: testMessage(marker: "c\(c)-\(n)")) }
                            if reply.code == 250 { accepted.add() }
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(accepted.value == markers.count)
            let all = await waitUntil(timeout: 60) { sink.deliveredMarkers().isSuperset(of: markers) }
            #expect(all, "missing: \(Set(markers).subtracting(sink.deliveredMarkers()).sorted().prefix(10))")
            try await Task.sleep(for: .seconds(2))
            #expect(Self.duplicates(sink).isEmpty, "delivered twice: \(Self.duplicates(sink).prefix(10))")
            #expect(sink.messages().count == markers.count)
            // Every node took mail, and `queue list` on any sees the one (now empty) queue.
            #expect(try await server.queueCount(database) == 0)
            let listed = try a.cli(["queue", "list"])
            #expect(listed.status == 0, "\(listed.stderr)")
        }

        /// `tollgate check` reaches the database and names it; an unreachable one, or a
        /// password it refuses, is one located line and exit status 1.
        @Test func checkReportsTheDatabaseInOneLine() async throws {
            let server = try await PostgresServer.shared()
            let database = try await server.createDatabase()
            let good = try RelayProcess(spool: Self.spool(server, database: database, node: "relay-a"), rest: Self.upstream(freePort()))
            defer { good.directory.remove() }
            let ok = try good.cli(["check"])
            #expect(ok.status == 0, "\(ok.stderr)")
            #expect(ok.stdout.contains("spool: postgres \(server.url(database: database)) node=relay-a lease=5s (schema 0, migrated to \(PostgresSpool.schemaVersion) at start)"), "\(ok.stdout)")

            let port = freePort()
            let nowhere = try RelayProcess(spool: "postgres: { url: \"postgresql://tollgate@127.0.0.1:\(port)/x\", connect_timeout: 2s }", rest: Self.upstream(freePort()))
            defer { nowhere.directory.remove() }
            let down = try nowhere.cli(["check"])
            #expect(down.status == 1)
            let lines = down.stderr.split(separator: "\n")
            #expect(lines.count == 1 && lines[0].contains("tollgate.yaml:8:") && lines[0].contains("cannot reach the spool database postgresql://tollgate@127.0.0.1:\(port)/x: "), "\(down.stderr)")

            let refused = try RelayProcess(spool: "postgres: { url: \"\(server.url(database: database))\", password_file: wrong.pw }", rest: Self.upstream(freePort()))
            defer { refused.directory.remove() }
            try TestFiles.write("wrong\n", to: refused.directory.file("wrong.pw"))
            let denied = try refused.cli(["check"])
            #expect(denied.status == 1 && denied.stderr.contains("password authentication failed for user \"tollgate\""), "\(denied.stderr)")
        }

        /// A node that dies holding claims on mail it is delivering (its upstream never
        /// answers) leaves it to the other node once the lease has run out, not before.
        @Test func aKilledNodesMailIsDeliveredByTheOtherAfterTheLease() async throws {
            let dir = try TemporaryDirectory(label: "cluster")
            defer { dir.remove() }
            let (server, database, sink, sinkPort) = try await Self.setUp(dir)
            defer { sink.stop() }
            let silentPort = freePort()
            let silent = try ChildProcess.spawn("python3", ["-c", """
                import socket, time
                s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(('127.0.0.1', \(silentPort))); s.listen(128); held = []
                while True:
                    c, _ = s.accept(); held.append(c)
                """])
            defer { _ = silent.kill() }
            #expect(await waitForPort(silentPort, timeout: 10))
            let a = try RelayProcess(spool: Self.spool(server, database: database, node: "relay-a"), rest: Self.upstream(silentPort), directory: try TemporaryDirectory(label: "node-a"))
            try a.start()
            defer { a.stop(); a.directory.remove() }
            let markers = (0..<10).map { "k\($0)" }
            for marker in markers {
                let reply = try await Blocking.run { try SMTPTestClient.sendMessage(port: a.port, from: "load@example.com", to: ["sink@example.net"], data: testMessage(marker: marker)) }
                #expect(reply.code == 250)
            }
            // Node a holds every message: claimed, stuck in delivery, its claims renewed.
            #expect(await waitUntil(timeout: 10) { (try? await server.claimedCount(database, by: "relay-a/")) == markers.count })
            let metricsPort = freePort()
            let b = try RelayProcess(
                spool: Self.spool(server, database: database, node: "relay-b"), rest: Self.upstream(sinkPort) + "\nmetrics: { address: 127.0.0.1:\(metricsPort) }",
                directory: try TemporaryDirectory(label: "node-b")
            )
            try b.start()
            defer { b.stop(); b.directory.remove() }
            // Past one lease (5 s): a renews, so b takes nothing.
            try await Task.sleep(for: .seconds(7))
            #expect(sink.deliveredMarkers().isEmpty)
            // `queue list` on node b sees node a's mail, and `--node` picks it out.
            let listed = try b.cli(["queue", "list", "--json", "--node", "relay-a"])
            #expect(listed.status == 0 && listed.stdout.split(separator: "\n").count == markers.count, "\(listed.stdout) \(listed.stderr)")
            #expect(listed.stdout.contains("\"accepted_by\":\"relay-a\"") && listed.stdout.contains("\"claimed_by\":\"relay-a\\/"), "\(listed.stdout.prefix(400))")
            #expect(try b.cli(["queue", "list", "--json", "--node", "relay-b"]).stdout.isEmpty)
            // Node b's /metrics shows the cluster: a's claims, its own name and store, the database up.
            let metrics = try ChildProcess.run(
                "python3", ["-c", "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:\(metricsPort)/metrics', timeout=5).read().decode())"], timeout: 10
            ).stdout
            #expect(metrics.contains(#"tollgate_cluster_claims{node="relay-a"} \#(markers.count)"#), "\(metrics)")
            #expect(metrics.contains(#"tollgate_node_info{node="relay-b",store="postgres"} 1"#), "\(metrics)")
            #expect(metrics.contains("tollgate_spool_up 1"), "\(metrics)")
            #expect(metrics.contains(#"tollgate_queue_department_messages{department="-"} \#(markers.count)"#), "\(metrics)")
            #expect(try b.cli(["queue", "list", "--node", "relay-b"]).stdout == "no queued message matches\n")
            a.kill9()
            let killed = ContinuousClock.now
            let all = await waitUntil(timeout: 30) { sink.deliveredMarkers().isSuperset(of: markers) }
            let took = ContinuousClock.now - killed
            #expect(all, "missing: \(Set(markers).subtracting(sink.deliveredMarkers()).sorted())")
            // Within the lease and a poll or two, not at once (the claims were live).
            #expect(took < .seconds(15), "\(took)")
            #expect(Self.duplicates(sink).isEmpty)
            print("cluster takeover: node a killed holding \(markers.count) claims; node b delivered them all \(took) later (lease 5s)")
        }

        /// PostgreSQL stopped and started again while clients send: 4xx while it is
        /// down (never a 250 that is then lost), 250 again once it is back, and every
        /// acknowledged message delivered.
        @Test func aDatabaseRestartUnderLoadLosesNothing() async throws {
            let server = try await PostgresServer.start()
            defer { Task { await server.shutdown() } }
            try await server.psql("CREATE DATABASE tollgate", database: "postgres")
            let dir = try TemporaryDirectory(label: "cluster")
            defer { dir.remove() }
            let sinkPort = freePort()
            let sink = try SMTPSink.start(port: sinkPort, dumpDirectory: dir.path + "/dump")
            defer { sink.stop() }
            let spool = "postgres: { url: \"\(server.url(database: "tollgate"))\", password_file: \(server.passwordFile), statement_timeout: 2s, connect_timeout: 2s }\n  node: relay-a\n  lease: 5s"
            let a = try RelayProcess(spool: spool, rest: Self.upstream(sinkPort), directory: try TemporaryDirectory(label: "node-a"))
            try a.start()
            defer { a.stop(); a.directory.remove() }

            let acknowledged = LockedList()
            let deferred = LockedCount()
            let stop = LockedCount()
            let clients = Task {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for c in 0..<3 {
                        group.addTask {
                            var n = 0
                            while stop.value == 0 {
                                let marker = "r\(c)-\(n)"
                                n += 1
                                guard let reply = try? await Blocking.run({ try SMTPTestClient.sendMessage(port: a.port, from: "load@example.com", to: ["sink@example.net"], data: testMessage(marker: marker)) }) else { continue }
                                if reply.code == 250 { acknowledged.append(marker) } else if reply.code == 451, reply.enhancedCode == "4.3.0" { deferred.add() }
                                try await Task.sleep(for: .milliseconds(20))
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            #expect(await waitUntil(timeout: 30) { acknowledged.count >= 30 })
            await server.stop()
            let downAt = acknowledged.count
            #expect(await waitUntil(timeout: 30) { deferred.value >= 5 }, "no 451 4.3.0 while the database was down")
            // While it is down nothing more is acknowledged (sessions already past their commit aside).
            #expect(acknowledged.count <= downAt + 3)
            try await server.restart()
            let backAt = acknowledged.count
            #expect(await waitUntil(timeout: 60) { acknowledged.count >= backAt + 30 }, "no 250 after the database came back: \(a.log.suffix(2000))")
            stop.add()
            _ = try? await clients.value
            let acked = acknowledged.values
            let all = await waitUntil(timeout: 60) { sink.deliveredMarkers().isSuperset(of: acked) }
            #expect(all, "lost: \(Set(acked).subtracting(sink.deliveredMarkers()).sorted().prefix(10))")
            #expect(a.log.contains("database unreachable") && a.log.contains("database reachable again"))
            // If a look at the queue (once a second) failed while the database was down,
            // the runner says so once and once that it can claim again; a look that
            // waited for a connection through the outage fails nothing and says nothing.
            let cannot = a.log.components(separatedBy: "cannot claim due messages").count - 1
            #expect((0...2).contains(cannot), "\(cannot) 'cannot claim' lines")
            if cannot > 0 {
                #expect(await waitUntil(timeout: 10) { a.log.contains("claiming due messages again") }, "\(a.log.suffix(2000))")
            }
            print("database restart under load: \(acked.count) acknowledged, all delivered; \(deferred.value) answered 451 4.3.0 while it was down")
        }
    }
}

extension PostgresServer {
    fileprivate func queueCount(_ database: String) async throws -> Int {
        Int(try await psql("SELECT count(*) FROM messages", database: database)) ?? -1
    }

    fileprivate func claimedCount(_ database: String, by prefix: String) async throws -> Int {
        Int(try await psql("SELECT count(*) FROM messages WHERE claimed_by LIKE '\(prefix)%'", database: database)) ?? -1
    }
}

/// A counter several tasks add to.
final class LockedCount: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add() { lock.withLock { n += 1 } }
    var value: Int { lock.withLock { n } }
}
