import Foundation
import GRDB
import SpoolTestSupport
import TestSupport
import Testing
@testable import TollgateSpool

/// SQLite's typing is dynamic: a damaged or hand-edited spool can hold text where an
/// integer belongs, a number where text belongs, NULL in a column the schema allows it
/// in. Reading such an entry quarantines it (RELIABILITY E6) instead of trapping, which
/// GRDB's row subscripts do. Found by `FuzzSpoolRecord` (its input
/// `Fuzz/FuzzSpoolRecord/corpus/crash-size-as-text`: `messages.size = 'abc'`).
@Suite struct CorruptColumnTests {
    /// Columns with integer or real affinity keep text or blobs as they are (a number
    /// given to a text column becomes text and reads back fine).
    static let damages: [(table: String, column: String, value: DatabaseValue)] = [
        ("messages", "size", "abc".databaseValue),
        ("messages", "created", "yesterday".databaseValue),
        ("messages", "next_attempt", Data([0xff]).databaseValue),
        ("messages", "checksum", "x".databaseValue),
        ("messages", "checksum_kind", "v3".databaseValue),
        ("messages", "attempts", Data([1, 2]).databaseValue),
        ("messages", "bounce_now", "yes".databaseValue),
        ("recipients", "attempts", "many".databaseValue),
    ]

    @Test(arguments: 0..<damages.count)
    func aColumnOfTheWrongTypeIsQuarantinedNotATrap(_ index: Int) async throws {
        let (table, column, value) = Self.damages[index]
        let dir = try TemporaryDirectory(label: "spool")
        defer { dir.remove() }
        let spool = try SQLiteSpool(directory: dir.path, node: "node-a", logger: SpoolFixtures.quietLogger)
        let m = SpoolFixtures.message(id: spool.makeQueueID(), now: 1_700_000_000, header: "Received: by test\r\n")
        try await spool.insert(m)
        try await spool.pool.write { db in
            let key = table == "messages" ? "id" : "message_id"
            try db.execute(sql: "UPDATE \(table) SET \(column) = ? WHERE \(key) = ?", arguments: [value, m.id])
        }
        // The listing leaves out what it cannot read (and does not trap); loading moves it aside.
        let listed = try await spool.list().map(\.id)
        #expect(try await spool.load(m.id) == nil)
        #expect(try await spool.list().isEmpty)
        #expect(listed.count <= 1)
        #expect(try await spool.quarantined() == [QuarantinedEntry(id: m.id, reason: "a column holds a value of the wrong type")])
        #expect(try await spool.count() == 0)
        // The damaged values are kept in the quarantine as they were.
        let kept = try spool.pool.read { db in try Row.fetchOne(db, sql: "SELECT sender, received_header FROM quarantine WHERE id = ?", arguments: [m.id]) }
        #expect(kept?["sender"] == m.sender && kept?["received_header"] == "Received: by test\r\n")
    }
}
