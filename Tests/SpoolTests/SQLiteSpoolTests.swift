import Foundation
import GRDB
import NIOCore
import SpoolTestSupport
import TestSupport
import Testing
@testable import TollgateConfiguration
@testable import TollgateSpool

/// What only the embedded store does: quarantine by checksum, migrations of old
/// databases, and sharing one file between processes' connections.
@Suite struct SQLiteSpoolTests {
    let t0 = 1_700_000_000.0

    func open(_ dir: TemporaryDirectory, node: String = "node-a") throws -> SQLiteSpool {
        try SQLiteSpool(directory: dir.path, node: node, logger: SpoolFixtures.quietLogger)
    }

    @Test func damagedContentIsQuarantinedNotDelivered() async throws {
        let dir = try TemporaryDirectory(label: "spool")
        defer { dir.remove() }
        let spool = try open(dir)
        let m = SpoolFixtures.message(id: spool.makeQueueID(), now: t0, header: "Received: by test\r\n")
        try await spool.insert(m)
        #expect(try await spool.claimDue(owner: "a", now: t0, lease: 60, limit: 1) == [m.id])
        let attempt = DeliveryAttempt(at: t0, upstream: nil, host: nil, owner: "a", recipients: [])
        #expect(try await spool.recordAttempt(m.id, owner: "a", recipients: m.recipients, nextAttempt: t0, lastError: nil, attempt: attempt))
        // Flip one byte of the stored body behind the spool's back.
        try await spool.pool.write { db in
            try db.execute(sql: "UPDATE bodies SET content = ? WHERE message_id = ?", arguments: [Data("Subject: test\r\n\r\nhellO\r\n".utf8), m.id])
        }
        #expect(try await spool.load(m.id) == nil)
        #expect(try await spool.quarantined() == [QuarantinedEntry(id: m.id, reason: "content checksum mismatch")])
        // Its attempts go with it.
        #expect(try await spool.pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM attempts") } == 0)
        #expect(try await spool.count() == 0)
        #expect(try await spool.claimDue(owner: "a", now: t0, lease: 60, limit: 10).isEmpty)
    }

    @Test func theChecksumCoversTheTraceHeader() async throws {
        let dir = try TemporaryDirectory(label: "spool")
        defer { dir.remove() }
        let spool = try open(dir)
        let m = SpoolFixtures.message(id: spool.makeQueueID(), now: t0, header: "Received: by a\r\n")
        try await spool.insert(m)
        try await spool.pool.write { db in
            try db.execute(sql: "UPDATE messages SET received_header = 'Received: by b\r\n' WHERE id = ?", arguments: [m.id])
        }
        #expect(try await spool.load(m.id) == nil)
        #expect(try await spool.quarantined().map(\.id) == [m.id])
    }

    @Test func aVersionOneSpoolIsMigratedAndItsMessagesLoad() async throws {
        let dir = try TemporaryDirectory(label: "spool")
        defer { dir.remove() }
        // A queue written by the previous release: schema v1, checksum over the body alone.
        let body = ByteBuffer(string: "Received: by old\r\nSubject: old\r\n\r\nstill here\r\n")
        let queue = try DatabaseQueue(path: dir.file("queue.sqlite"))
        try SQLiteSpool.migrator.migrate(queue, upTo: "v1")
        try await queue.write { db in
            try db.execute(
                sql: """
                    INSERT INTO messages (id, created, sender, envelope, size, checksum, state, next_attempt)
                    VALUES ('OLD1', ?, 'a@example.com', ?, ?, ?, 'deferred', ?)
                    """,
                arguments: [t0, try JSONEncoder().encode(SpoolEnvelope()), body.readableBytes, Checksum.fnv1a(header: "", content: body), t0]
            )
            try db.execute(sql: "INSERT INTO recipients (message_id, idx, address, state) VALUES ('OLD1', 0, 'b@example.net', 'pending')")
            try db.execute(sql: "INSERT INTO bodies (message_id, content) VALUES ('OLD1', ?)", arguments: [Data(body.readableBytesView)])
        }
        try queue.close()

        let spool = try open(dir)
        let m = try #require(try await spool.load("OLD1"))
        #expect(m.content == body && m.receivedHeader == "" && m.acceptedBy == "" && m.claimedBy == nil && m.state == .deferred)
        #expect(try await spool.claimDue(owner: "a", now: t0, lease: 60, limit: 1) == ["OLD1"])
        let applied = try await spool.pool.read { db in try SQLiteSpool.migrator.appliedMigrations(db) }
        #expect(applied == ["v1", "v2", "v3", "v4", "v5", "v6"])
        // v5's indexes serve the old rows too.
        let listed = try await spool.list(filter: QueueFilter(state: .deferred, sender: "A@example.com", recipient: "b@example.net"), page: QueuePage())
        #expect(listed.rows.map(\.id) == ["OLD1"] && listed.total == 1 && listed.rows.first?.upstream == nil)
    }

    /// A v5 spool (before the record of attempts): a message deferred three times and
    /// one in the history open with no attempts recorded; the next attempt is #4.
    @Test func aVersionFiveSpoolGainsTheRecordOfAttempts() async throws {
        let dir = try TemporaryDirectory(label: "spool")
        defer { dir.remove() }
        let body = ByteBuffer(string: "Subject: old\r\n\r\nstill here\r\n")
        let recipients = [SpoolRecipient(address: "b@example.net")]
        let queue = try DatabaseQueue(path: dir.file("queue.sqlite"))
        try SQLiteSpool.migrator.migrate(queue, upTo: "v5")
        try await queue.write { db in
            let envelope = try JSONEncoder().encode(SpoolEnvelope())
            try db.execute(
                sql: """
                    INSERT INTO messages (id, created, sender, envelope, size, checksum, state, next_attempt, attempts, accepted_by)
                    VALUES ('OLD5', ?, 'a@example.com', ?, ?, ?, 'deferred', ?, 3, 'node-a')
                    """,
                arguments: [t0, envelope, body.readableBytes, Checksum.fnv1a(header: "", content: body), t0]
            )
            try db.execute(sql: "INSERT INTO recipients (message_id, idx, address, state, attempts) VALUES ('OLD5', 0, 'b@example.net', 'pending', 3)")
            try db.execute(sql: "INSERT INTO bodies (message_id, content) VALUES ('OLD5', ?)", arguments: [Data(body.readableBytesView)])
            try db.execute(
                sql: """
                    INSERT INTO history (id, completed, created, sender, envelope, size, attempts, upstream, accepted_by, recipients)
                    VALUES ('DONE5', ?, ?, 'a@example.com', ?, 10, 2, NULL, 'node-a', ?)
                    """,
                arguments: [Date().timeIntervalSince1970, t0, envelope, try JSONEncoder().encode(recipients)]
            )
        }
        try queue.close()

        let spool = try open(dir)
        #expect(try await spool.pool.read { db in try SQLiteSpool.migrator.appliedMigrations(db) }.last == "v6")
        #expect(try await spool.attempts("OLD5").isEmpty)
        #expect(try await spool.history("DONE5")?.attempts == 2)
        #expect(try await spool.attempts("DONE5").isEmpty)
        #expect(try await spool.claimDue(owner: "a", now: t0, lease: 60, limit: 1) == ["OLD5"])
        let attempt = DeliveryAttempt(at: t0, upstream: nil, host: nil, owner: "a", recipients: [
            DeliveryAttempt.Recipient(address: "b@example.net", code: 451, enhancedStatus: "4.4.1", text: "connection refused by mx1.example:25", state: .deferred),
        ])
        #expect(try await spool.recordAttempt("OLD5", owner: "a", recipients: recipients, nextAttempt: t0 + 60, lastError: nil, attempt: attempt))
        #expect(try await spool.attempts("OLD5").map(\.number) == [4])
    }

    @Test func twoOpenersOfOneFileShareClaims() async throws {
        // Two processes on one spool open it separately; two pools stand in for them.
        let dir = try TemporaryDirectory(label: "spool")
        defer { dir.remove() }
        let a = try open(dir, node: "a")
        let b = try open(dir, node: "b")
        for _ in 0..<30 { try await a.insert(SpoolFixtures.message(id: a.makeQueueID(), now: t0)) }
        async let fromA = a.claimDue(owner: "a", now: t0, lease: 60, limit: 20)
        async let fromB = b.claimDue(owner: "b", now: t0, lease: 60, limit: 20)
        let (ca, cb) = try await (fromA, fromB)
        #expect(Set(ca).isDisjoint(with: cb))
        #expect(ca.count + cb.count == 30)
        #expect(try await b.list().allSatisfy { $0.acceptedBy == "a" && $0.claimedBy != nil })
    }
}

/// The spool's checksums against the reference implementation's values.
@Suite struct ChecksumTests {
    func xxh64(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 { bytes.withUnsafeBytes { XXH64.hash($0, seed: seed) } }

    @Test func xxh64MatchesTheReference() {
        // Values from the reference xxHash (python-xxhash 3.x).
        #expect(xxh64([]) == 0xEF46_DB37_51D8_E999)
        #expect(xxh64(Array("abc".utf8)) == 0x44BC_2CF5_AD77_0999)
        let long = Array((0...255).map { UInt8($0) }) + Array((0...255).map { UInt8($0) }) + Array((0...255).map { UInt8($0) }) + Array("xyz".utf8)
        #expect(xxh64(long, seed: 12345) == 0x6B1B_5D67_1FB9_3B43)
    }

    @Test func theChecksumCoversHeaderAndContent() {
        let body = ByteBuffer(string: "Subject: x\r\n\r\nbody\r\n")
        let a = Checksum.of(header: "Received: a\r\n", content: body)
        #expect(a != Checksum.of(header: "Received: b\r\n", content: body))
        #expect(a != Checksum.of(header: "Received: a\r\n", content: ByteBuffer(string: "Subject: y\r\n\r\nbody\r\n")))
        #expect(Checksum.of(header: "", content: body, kind: .fnv1a) == Checksum.fnv1a(header: "", content: body))
    }
}

