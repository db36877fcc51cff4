import GRDB
import SpoolTestSupport
import TestSupport
import Testing
import TollgateConfiguration
@testable import TollgateSpool
@testable import TollgateSpoolPostgres

/// The stores every claim and administration test runs against: the embedded store,
/// the cluster's PostgreSQL store, and the in-memory one the queue-runner tests rely
/// on to behave the same.
enum StoreKind: String, CaseIterable, CustomTestStringConvertible {
    case sqlite, postgres, memory

    var testDescription: String { rawValue }

    /// Runs `body` with a fresh, empty store of this kind.
    /// `keepHistory`: `spool.history` in seconds.
    func with(keepHistory: Double = 7 * 86400, _ body: (any Spool) async throws -> Void) async throws {
        switch self {
        case .memory:
            try await body(InMemorySpool(node: "node-a", keepHistory: keepHistory))
        case .sqlite:
            let dir = try TemporaryDirectory(label: "spool")
            try await body(SQLiteSpool(directory: dir.path, node: "node-a", keepHistory: keepHistory, logger: SpoolFixtures.quietLogger))
            dir.remove()
        case .postgres:
            // One server for the whole test process, a database of its own per test.
            let database = try await PostgresTestDatabase.make()
            let spool = try await PostgresSpool.open(database.settings, node: "node-a", keepHistory: keepHistory, logger: SpoolFixtures.quietLogger)
            do {
                try await body(spool)
            } catch {
                await spool.close()
                throw error
            }
            await spool.close()
        }
    }
}

extension StoreKind {
    /// How many attempt rows `spool` holds, whatever message they belong to: that
    /// deleting and pruning removed them, not merely hid them from ``Spool/attempts(_:)``.
    func storedAttempts(_ spool: any Spool) async throws -> Int {
        switch self {
        case .memory:
            return try #require(spool as? InMemorySpool).storedAttemptCount
        case .sqlite:
            return try await #require(spool as? SQLiteSpool).pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM attempts") ?? 0 }
        case .postgres:
            return try await #require(spool as? PostgresSpool).execute("cannot count", "SELECT count(*) FROM attempts").first?[0].decode(Int.self) ?? 0
        }
    }
}

/// A fresh database on the test process's PostgreSQL, and the settings that name it
/// (the password in a file, as `spool.postgres.password_file` gives it).
struct PostgresTestDatabase {
    var server: PostgresServer
    var name: String
    var settings: TollgateConfiguration.Postgres

    static func make(statementTimeout: Double = 30) async throws -> PostgresTestDatabase {
        let server = try await PostgresServer.shared()
        let name = try await server.createDatabase()
        var settings = TollgateConfiguration.Postgres(
            url: server.url(database: name), host: "127.0.0.1", port: server.port, user: PostgresServer.user, database: name
        )
        settings.passwordFile = server.passwordFile
        settings.statementTimeout = statementTimeout
        settings.connectTimeout = 5
        return PostgresTestDatabase(server: server, name: name, settings: settings)
    }
}
