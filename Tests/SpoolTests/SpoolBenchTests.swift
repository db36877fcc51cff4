import Foundation
import NIOCore
import SpoolTestSupport
import TestSupport
import Testing
@testable import TollgateSpool
@testable import TollgateSpoolPostgres

/// Inserts per second into each store, one session alone and 20 at once, 4 KiB
/// messages, in the same run (the disk's fsync rate swings in this VM), and the
/// PostgreSQL store's statements (round trips) per message. Off unless
/// `SPOOL_BENCH=1`: `SPOOL_BENCH=1 swift test --filter SpoolBenchTests`.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["SPOOL_BENCH"] != nil))
struct SpoolBenchTests {
    static let body = "Subject: bench\r\n\r\n" + String(repeating: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", count: 64)

    func message(_ spool: any Spool) -> SpoolMessage {
        SpoolFixtures.message(id: spool.makeQueueID(), now: Date().timeIntervalSince1970, header: "Received: from bench by test; Tue, 1 Jan 2030 00:00:00 +0000\r\n", body: Self.body)
    }

    /// Messages per second: `sessions` tasks inserting `each` messages one after another.
    func rate(_ spool: any Spool, sessions: Int, each: Int) async throws -> Double {
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<sessions {
                group.addTask {
                    for _ in 0..<each { try await spool.insert(message(spool), claim: SpoolClaim(owner: "bench/1/x", expires: Date().timeIntervalSince1970 + 60)) }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = ContinuousClock.now - started
        return Double(sessions * each) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    @Test func insertRates() async throws {
        let dir = try TemporaryDirectory(label: "bench")
        defer { dir.remove() }
        let sqlite = try SQLiteSpool(directory: dir.path, node: "bench", logger: SpoolFixtures.quietLogger)
        let db = try await PostgresTestDatabase.make()
        let postgres = try await PostgresSpool.open(db.settings, node: "bench", logger: SpoolFixtures.quietLogger)
        defer { Task { await postgres.close() } }
        let single = Int(ProcessInfo.processInfo.environment["SPOOL_BENCH_SINGLE"] ?? "") ?? 300
        let concurrent = Int(ProcessInfo.processInfo.environment["SPOOL_BENCH_EACH"] ?? "") ?? 100

        // The server's count of transactions committed in the database (each statement
        // outside BEGIN is one); backends publish their counts within a second or so.
        func commits() async throws -> Int {
            try await Task.sleep(for: .seconds(2))
            return Int(try await db.server.psql("SELECT xact_commit FROM pg_stat_database WHERE datname = '\(db.name)'", database: "postgres")) ?? 0
        }
        // Warm both up (connections, caches).
        _ = try await rate(sqlite, sessions: 4, each: 10)
        _ = try await rate(postgres, sessions: 4, each: 10)

        let sqlite1 = try await rate(sqlite, sessions: 1, each: single)
        let before1 = postgres.inserts.commits
        let postgres1 = try await rate(postgres, sessions: 1, each: single)
        let statements1 = postgres.inserts.commits - before1
        let sqlite20 = try await rate(sqlite, sessions: 20, each: concurrent)
        let before20 = postgres.inserts.commits
        let xactBefore = try await commits()
        let postgres20 = try await rate(postgres, sessions: 20, each: concurrent)
        let statements20 = postgres.inserts.commits - before20

        // The rest of a message's life on the accepting node: it was stored claimed,
        // is delivered from memory, and its result recorded (removed).
        let ids = try await postgres.list().filter { $0.claimedBy == "bench/1/x" }.prefix(200).map(\.id)
        let recordStarted = try await commits()
        for id in ids { try await postgres.recordAttempt(id, owner: "bench/1/x", recipients: [], nextAttempt: nil, lastError: nil) }
        let recordXacts = try await commits() - recordStarted
        let xact20 = recordStarted - xactBefore

        let report = """
            spool insert rates, 4 KiB messages (same run):
              1 session:    SQLite \(Int(sqlite1))/s   PostgreSQL \(Int(postgres1))/s   (\(statements1) statements for \(single) messages)
              20 sessions:  SQLite \(Int(sqlite20))/s   PostgreSQL \(Int(postgres20))/s   (\(statements20) statements for \(20 * concurrent) messages, \
            largest batch \(postgres.inserts.largestBatch); \(xact20) transactions counted by the server, \
            \(String(format: "%.3f", Double(xact20) / Double(20 * concurrent))) per message)
              record a delivered message: \(String(format: "%.2f", Double(recordXacts) / Double(max(ids.count, 1)))) round trips each (\(ids.count) messages)
            """
        print(report)
        #expect(sqlite1 > 0 && postgres1 > 0 && sqlite20 > 0 && postgres20 > 0)
        #expect(statements20 < 20 * concurrent)
    }
}
