import Foundation
import GRDB
import SpoolTestSupport
import TestSupport
import Testing
@testable import TollgateSpool

/// The embedded store's listing on a large queue: its statements use the indexes
/// (schema v5) rather than reading every message, and the limit stops at 1000.
@Suite struct SQLiteListingPlanTests {
    let t0 = 1_700_000_000.0

    /// `count` messages written straight into the tables (no content: the listing
    /// does not read it), each with two recipients, the first delivered; every
    /// seventh held, every third claimed by relay-b, senders and users in ten kinds.
    static func fill(_ spool: SQLiteSpool, count: Int, t0: Double) async throws {
        try await spool.pool.write { db in
            let message = try db.makeStatement(sql: """
                INSERT INTO messages (id, created, sender, envelope, size, checksum, state, next_attempt, upstream, user, department, accepted_by, claimed_by, claim_expires)
                VALUES (?, ?, ?, x'7b7d', 100, 0, ?, ?, ?, ?, ?, 'node-a', ?, ?)
                """)
            let recipient = try db.makeStatement(sql: "INSERT INTO recipients (message_id, idx, address, state) VALUES (?, ?, ?, ?)")
            for n in 0..<count {
                let id = String(format: "M%09d", n)
                let claimed = n % 3 == 0
                try message.execute(arguments: [
                    id, t0 + Double(n / 2), "sender\(n % 10)@example.com", n % 7 == 0 ? "held" : "queued", t0 + Double(n),
                    n % 4 == 0 ? "outbox" : nil, "user\(n % 10)", "dept\(n % 5)", claimed ? "relay-b/1/x" : nil, claimed ? t0 + 60 : nil,
                ])
                try recipient.execute(arguments: [id, 0, "done\(n)@example.net", "delivered"])
                try recipient.execute(arguments: [id, 1, "rcpt\(n % 1000)@example.net", "pending"])
            }
        }
    }

    /// The plan's lines for the listing statement of `filter`.
    static func plan(_ spool: SQLiteSpool, _ filter: QueueFilter, count: Bool = false) async throws -> [String] {
        let (condition, arguments) = SQLiteSpool.condition(filter)
        let sql = count ? "SELECT COUNT(*) FROM messages m \(condition)" : SQLiteSpool.listingSQL(condition)
        let all = count ? arguments : arguments + [100, 0]
        return try await spool.pool.read { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: all).map { $0["detail"] as String }
        }
    }

    @Test func theListingUsesTheIndexes() async throws {
        let dir = try TemporaryDirectory(label: "spool")
        defer { dir.remove() }
        let spool = try SQLiteSpool(directory: dir.path, node: "node-a", logger: SpoolFixtures.quietLogger)
        try await Self.fill(spool, count: 2000, t0: t0)
        // No full scan of the messages (`SCAN m` without an index), for the listing or its count.
        func noFullScan(_ plan: [String], _ what: String) {
            #expect(!plan.contains { $0 == "SCAN m" || ($0.hasPrefix("SCAN m") && !$0.contains("INDEX")) }, "\(what): \(plan)")
        }
        // The default listing and the state filter read their index in order: no sort either.
        let all = try await Self.plan(spool, QueueFilter())
        #expect(all.contains { $0.hasPrefix("SCAN m USING INDEX messages_created") }, "\(all)")
        #expect(!all.contains { $0.contains("TEMP B-TREE") }, "\(all)")
        let held = try await Self.plan(spool, QueueFilter(state: .held))
        #expect(held.contains { $0.hasPrefix("SEARCH m USING INDEX messages_state_created (state=?)") }, "\(held)")
        #expect(!held.contains { $0.contains("TEMP B-TREE") }, "\(held)")
        noFullScan(all, "all")
        noFullScan(held, "held")
        for (name, filter) in [
            ("sender", QueueFilter(sender: "Sender1@example.com")), ("user", QueueFilter(user: "USER1")),
            ("department", QueueFilter(department: "dept1")), ("upstream", QueueFilter(upstream: "outbox")),
            ("recipient", QueueFilter(recipient: "rcpt1@example.net")), ("node", QueueFilter(node: "relay-b")),
            ("state and user", QueueFilter(state: .queued, user: "user1")),
        ] {
            let plan = try await Self.plan(spool, filter)
            noFullScan(plan, name)
            noFullScan(try await Self.plan(spool, filter, count: true), name + " count")
            if name == "recipient" { #expect(plan.contains { $0.contains("recipients_pending_address") }, "\(plan)") }
        }
        // And the answers are the filters' (the plans above are not empty promises).
        #expect(try await spool.list(filter: QueueFilter(recipient: "RCPT1@example.net"), page: QueuePage()).total == 2)
        #expect(try await spool.list(filter: QueueFilter(recipient: "done1@example.net"), page: QueuePage()).total == 0)
        #expect(try await spool.list(filter: QueueFilter(node: "relay-b"), page: QueuePage()).total == 667)
        #expect(try await spool.list(filter: QueueFilter(state: .held), page: QueuePage()).total == 286)
        var page = QueuePage()
        page.limit = 5000
        let big = try await spool.list(filter: QueueFilter(), page: page)
        #expect(big.rows.count == 1000 && big.total == 2000)
        #expect(big.rows.first?.recipients == ["rcpt0@example.net"])
        #expect(try await spool.list().count == 2000)
    }

    /// By hand, not a test of speed: `SPOOL_BENCH=1 swift test --filter SQLiteListingPlanTests`
    /// prints how long pages take on a queue of 100,000 messages.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["SPOOL_BENCH"] != nil))
    func timesOnAHundredThousandMessages() async throws {
        let dir = try TemporaryDirectory(label: "spool")
        defer { dir.remove() }
        let spool = try SQLiteSpool(directory: dir.path, node: "node-a", logger: SpoolFixtures.quietLogger)
        try await Self.fill(spool, count: 100_000, t0: t0)
        for (name, filter, offset) in [
            ("first page", QueueFilter(), 0), ("page at 50,000", QueueFilter(), 50_000), ("last page", QueueFilter(), 99_900),
            ("state held", QueueFilter(state: .held), 0), ("sender", QueueFilter(sender: "SENDER3@example.com"), 0),
            ("user, page 50", QueueFilter(user: "user3"), 5000), ("recipient", QueueFilter(recipient: "rcpt7@example.net"), 0),
            ("node", QueueFilter(node: "relay-b"), 0), ("upstream and state", QueueFilter(state: .queued, upstream: "outbox"), 0),
            ("no match", QueueFilter(sender: "nobody@example.com"), 0),
        ] {
            let started = ContinuousClock.now
            let page = try await spool.list(filter: filter, page: QueuePage(offset: offset, limit: 100))
            print("SQLite list(filter:page:) 100,000 messages, \(name): \(page.rows.count) rows of \(page.total) in \(ContinuousClock.now - started)")
        }
        var started = ContinuousClock.now
        let everything = try await spool.list()
        print("SQLite list() 100,000 messages: \(everything.count) in \(ContinuousClock.now - started)")
        // As `queue list` reads the queue: pages of 1000.
        started = ContinuousClock.now
        var offset = 0
        while true {
            let page = try await spool.list(filter: QueueFilter(), page: QueuePage(offset: offset, limit: 1000))
            offset += page.rows.count
            if page.rows.count < 1000 { break }
        }
        print("SQLite list(filter:page:) 100,000 messages in pages of 1000: \(offset) in \(ContinuousClock.now - started)")
    }
}
