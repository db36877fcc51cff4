import GRDB
import SpoolTestSupport
import TestSupport
import Testing
@testable import TollgateConfiguration
@testable import TollgateSpool

/// One commit for many writers, and each writer's failure its own.
@Suite struct GroupCommitterTests {
    struct Refused: Error {}

    func pool(_ dir: TemporaryDirectory) throws -> DatabasePool {
        let pool = try DatabasePool(path: dir.file("test.sqlite"))
        try pool.write { db in try db.execute(sql: "CREATE TABLE t (n INTEGER PRIMARY KEY)") }
        return pool
    }

    @Test func concurrentWritersShareCommits() async throws {
        let dir = try TemporaryDirectory(label: "committer")
        defer { dir.remove() }
        let pool = try pool(dir)
        let committer = GroupCommitter(pool: pool)
        let writers = 200
        try await withThrowingTaskGroup(of: Void.self) { group in
            for n in 0..<writers {
                group.addTask {
                    try await committer.submit(durable: true) { db in try db.execute(sql: "INSERT INTO t (n) VALUES (?)", arguments: [n]) }
                }
            }
            try await group.waitForAll()
        }
        #expect(try await pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM t") } == writers)
        let commits = committer.commits
        #expect(commits < writers, "\(commits) commits for \(writers) writers")
        #expect(committer.largestBatch > 1)
    }

    @Test func aFailingOperationDoesNotSinkTheOthers() async throws {
        let dir = try TemporaryDirectory(label: "committer")
        defer { dir.remove() }
        let pool = try pool(dir)
        let committer = GroupCommitter(pool: pool)
        let results = await withTaskGroup(of: (Int, Bool).self) { group in
            for n in 0..<50 {
                group.addTask {
                    do {
                        try await committer.submit(durable: false) { db in
                            try db.execute(sql: "INSERT INTO t (n) VALUES (?)", arguments: [n])
                            // Written, then refused: its savepoint must roll the row back.
                            if n % 10 == 7 { throw Refused() }
                        }
                        return (n, true)
                    } catch {
                        return (n, false)
                    }
                }
            }
            return await group.reduce(into: [Int: Bool]()) { $0[$1.0] = $1.1 }
        }
        #expect(results.filter { !$0.value }.keys.sorted() == [7, 17, 27, 37, 47])
        let stored = try await pool.read { db in try Int.fetchAll(db, sql: "SELECT n FROM t ORDER BY n") }
        #expect(stored == (0..<50).filter { $0 % 10 != 7 })
    }

    @Test func anOperationReturnsItsValueAfterTheCommit() async throws {
        let dir = try TemporaryDirectory(label: "committer")
        defer { dir.remove() }
        let pool = try pool(dir)
        let committer = GroupCommitter(pool: pool)
        let changed = try await committer.submit(durable: false) { db -> Int in
            try db.execute(sql: "INSERT INTO t (n) VALUES (1), (2), (3)")
            return db.changesCount
        }
        #expect(changed == 3)
        // Visible to a reader once the call returned: it was committed.
        #expect(try await pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM t") } == 3)
    }
}
