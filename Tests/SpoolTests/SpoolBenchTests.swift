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

    /// Pages of `list(filter:page:)` on 100,000 messages in PostgreSQL (the rows written
    /// by SQL, as `SQLiteListingPlanTests.fill` writes them), and the plans of the
    /// filters' statements: `SPOOL_BENCH=1 swift test --filter SpoolBenchTests/listingOnAHundredThousandMessages`.
    @Test func listingOnAHundredThousandMessages() async throws {
        let db = try await PostgresTestDatabase.make()
        let postgres = try await PostgresSpool.open(db.settings, node: "node-a", logger: SpoolFixtures.quietLogger)
        defer { Task { await postgres.close() } }
        _ = try await db.server.psql("""
            INSERT INTO messages (id, created, sender, envelope, size, checksum, checksum_kind, state, next_attempt, upstream, "user", department,
                                  accepted_by, received_header, claimed_by, claim_expires)
            SELECT 'M' || lpad(n::text, 9, '0'), 1700000000 + n / 2, 'sender' || n % 10 || '@example.com', '\\x7b7d', 100, 0, 0,
                   CASE WHEN n % 7 = 0 THEN 'held' ELSE 'queued' END, 1700000000 + n, CASE WHEN n % 4 = 0 THEN 'outbox' END,
                   'user' || n % 10, 'dept' || n % 5, 'node-a', '', CASE WHEN n % 3 = 0 THEN 'relay-b/1/x' END, NULL
            FROM generate_series(0, 99999) n;
            INSERT INTO recipients (message_id, idx, address, state)
            SELECT 'M' || lpad(n::text, 9, '0'), 0, 'done' || n || '@example.net', 'delivered' FROM generate_series(0, 99999) n;
            INSERT INTO recipients (message_id, idx, address, state)
            SELECT 'M' || lpad(n::text, 9, '0'), 1, 'rcpt' || n % 1000 || '@example.net', 'pending' FROM generate_series(0, 99999) n;
            ANALYZE;
            """, database: db.name)
        for (name, filter, offset) in [
            ("first page", QueueFilter(), 0), ("page at 50,000", QueueFilter(), 50_000), ("state held", QueueFilter(state: .held), 0),
            ("sender", QueueFilter(sender: "SENDER3@example.com"), 0), ("user, page 50", QueueFilter(user: "user3"), 5000),
            ("recipient", QueueFilter(recipient: "rcpt7@example.net"), 0), ("node", QueueFilter(node: "relay-b"), 0),
            ("upstream and state", QueueFilter(state: .queued, upstream: "outbox"), 0), ("no match", QueueFilter(sender: "nobody@example.com"), 0),
        ] {
            _ = try await postgres.list(filter: filter, page: QueuePage(offset: offset, limit: 100))
            let started = ContinuousClock.now
            let page = try await postgres.list(filter: filter, page: QueuePage(offset: offset, limit: 100))
            print("PostgreSQL list(filter:page:) 100,000 messages, \(name): \(page.rows.count) rows of \(page.total) in \(ContinuousClock.now - started)")
        }
        for condition in [
            "", "WHERE m.state = 'held'", "WHERE lower(m.sender) = lower('Sender3@example.com')",
            "WHERE EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.state = 'pending' AND lower(r.address) = lower('rcpt7@example.net'))",
            "WHERE (m.accepted_by = 'relay-b' OR m.claimed_by = 'relay-b' OR (m.claimed_by IS NOT NULL AND split_part(m.claimed_by, '/', 1) = 'relay-b'))",
        ] {
            let plan = try await db.server.psql("EXPLAIN SELECT m.id FROM messages m \(condition) ORDER BY m.created, m.id LIMIT 100", database: db.name)
            print("PostgreSQL plan \(condition.isEmpty ? "(all)" : condition):\n\(plan)")
        }
    }
}
