import Foundation
import NIOCore
import SpoolTestSupport
import TestSupport
import Testing
@testable import TollgateConfiguration
@testable import TollgateSpool
@testable import TollgateSpoolPostgres

/// What only the PostgreSQL store does, against the test process's real PostgreSQL:
/// quarantine by checksum, the schema's version and its migration, ids unique across nodes, one
/// statement for many sessions' messages, and clear failures.
@Suite struct PostgresSpoolTests {
    let t0 = 1_700_000_000.0

    func open(_ db: PostgresTestDatabase, node: String = "node-a") async throws -> PostgresSpool {
        try await PostgresSpool.open(db.settings, node: node, logger: SpoolFixtures.quietLogger)
    }

    /// A server of the test's own (to stop or freeze) and a store on it.
    func ownServer(statementTimeout: Double) async throws -> (PostgresServer, PostgresSpool) {
        let server = try await PostgresServer.start(fsync: false)
        try await server.psql("CREATE DATABASE tollgate", database: "postgres")
        var settings = TollgateConfiguration.Postgres(url: server.url(database: "tollgate"), host: "127.0.0.1", port: server.port, user: PostgresServer.user, database: "tollgate")
        settings.passwordFile = server.passwordFile
        settings.statementTimeout = statementTimeout
        settings.connectTimeout = 2
        return (server, try await PostgresSpool.open(settings, node: "node-a", logger: SpoolFixtures.quietLogger))
    }

    @Test func damagedContentIsQuarantinedNotDelivered() async throws {
        let db = try await PostgresTestDatabase.make()
        let spool = try await open(db)
        defer { Task { await spool.close() } }
        let m = SpoolFixtures.message(id: spool.makeQueueID(), now: t0, header: "Received: by test\r\n")
        try await spool.insert(m)
        #expect(try await spool.claimDue(owner: "a", now: t0, lease: 60, limit: 1) == [m.id])
        let attempt = DeliveryAttempt(at: t0, upstream: nil, host: nil, owner: "a", recipients: [])
        #expect(try await spool.recordAttempt(m.id, owner: "a", recipients: m.recipients, nextAttempt: t0, lastError: nil, attempt: attempt))
        // Flip one byte of the stored body behind the spool's back.
        try await db.server.psql("UPDATE bodies SET content = convert_to(E'Subject: test\\r\\n\\r\\nhellO\\r\\n', 'UTF8') WHERE message_id = '\(m.id)'", database: db.name)
        #expect(try await spool.load(m.id) == nil)
        #expect(try await spool.quarantined() == [QuarantinedEntry(id: m.id, reason: "content checksum mismatch")])
        #expect(try await spool.count() == 0)
        #expect(try await spool.claimDue(owner: "a", now: t0, lease: 60, limit: 10).isEmpty)
        // The damaged bytes are kept for the administrator.
        #expect(try await db.server.psql("SELECT length(content) FROM quarantine WHERE id = '\(m.id)'", database: db.name) == "24")
        // Its attempts go with it.
        #expect(try await db.server.psql("SELECT count(*) FROM attempts", database: db.name) == "0")
    }

    @Test func anUnknownStateIsQuarantinedAtOpen() async throws {
        let db = try await PostgresTestDatabase.make()
        let first = try await open(db)
        let m = SpoolFixtures.message(id: first.makeQueueID(), now: t0)
        try await first.insert(m)
        #expect(try await first.claimDue(owner: "a", now: t0, lease: 60, limit: 1) == [m.id])
        let attempt = DeliveryAttempt(at: t0, upstream: nil, host: nil, owner: "a", recipients: [])
        #expect(try await first.recordAttempt(m.id, owner: "a", recipients: m.recipients, nextAttempt: t0 + 60, lastError: nil, attempt: attempt))
        await first.close()
        try await db.server.psql("UPDATE messages SET state = 'frozen' WHERE id = '\(m.id)'", database: db.name)
        let spool = try await open(db)
        defer { Task { await spool.close() } }
        #expect(try await spool.quarantined() == [QuarantinedEntry(id: m.id, reason: "unknown message state")])
        #expect(try await spool.count() == 0)
        // Its attempts go with it.
        #expect(try await db.server.psql("SELECT count(*) FROM attempts", database: db.name) == "0")
    }

    @Test func aSchemaNewerThanTheBinaryIsRefusedInOneLine() async throws {
        let db = try await PostgresTestDatabase.make()
        let spool = try await open(db)
        await spool.close()
        #expect(try await PostgresSpool.inspect(db.settings, node: "node-a") == PostgresSpool.schemaVersion)
        try await db.server.psql("INSERT INTO schema_version (version) VALUES (\(PostgresSpool.schemaVersion + 1))", database: db.name)
        let error = await #expect(throws: PostgresSpool.Error.self) { try await open(db) }
        let text = error?.description ?? ""
        #expect(text.contains("schema version \(PostgresSpool.schemaVersion + 1), newer than this Tollgate's (\(PostgresSpool.schemaVersion))"), "\(text)")
        #expect(!text.contains("\n"))
        await #expect(throws: PostgresSpool.Error.self) { try await PostgresSpool.inspect(db.settings, node: "node-a") }
    }

    /// A schema 4 database (before the record of attempts) is migrated at start: a
    /// message deferred three times has no attempts recorded; its next one is #4.
    @Test func aVersionFourDatabaseGainsTheRecordOfAttempts() async throws {
        let db = try await PostgresTestDatabase.make()
        let first = try await open(db)
        let m = SpoolFixtures.message(id: first.makeQueueID(), now: t0)
        try await first.insert(m)
        await first.close()
        try await db.server.psql(
            "DROP TABLE attempts; ALTER TABLE counter_entries DROP COLUMN limit_amount; DELETE FROM schema_version WHERE version >= 5; UPDATE messages SET attempts = 3, state = 'deferred' WHERE id = '\(m.id)'",
            database: db.name
        )
        #expect(try await PostgresSpool.inspect(db.settings, node: "node-a") == 4)
        let spool = try await open(db)
        defer { Task { await spool.close() } }
        #expect(try await db.server.psql("SELECT max(version) FROM schema_version", database: db.name) == "\(PostgresSpool.schemaVersion)")
        #expect(try await spool.attempts(m.id).isEmpty)
        #expect(try await spool.claimDue(owner: "a", now: t0, lease: 60, limit: 1) == [m.id])
        let attempt = DeliveryAttempt(at: t0, upstream: "smarthost", host: nil, owner: "a", recipients: [
            DeliveryAttempt.Recipient(address: "bob@example.net", code: 451, enhancedStatus: "4.4.1", text: "connection refused by mx1.example:25", state: .deferred),
        ])
        #expect(try await spool.recordAttempt(m.id, owner: "a", recipients: m.recipients, nextAttempt: t0 + 60, lastError: nil, attempt: attempt))
        #expect(try await spool.attempts(m.id).map(\.number) == [4])
    }

    @Test func anEmptyDatabaseIsReportedAndCreatedAtStart() async throws {
        let db = try await PostgresTestDatabase.make()
        #expect(try await PostgresSpool.inspect(db.settings, node: "node-a") == 0)
        // `inspect` changes nothing.
        #expect(try await db.server.psql("SELECT to_regclass('messages') IS NULL", database: db.name) == "t")
        let spool = try await open(db)
        await spool.close()
        #expect(try await db.server.psql("SELECT max(version) FROM schema_version", database: db.name) == "\(PostgresSpool.schemaVersion)")
    }

    @Test func badCredentialsAndAnUnreachableServerAreOneLineEach() async throws {
        let db = try await PostgresTestDatabase.make()
        let folder = try TemporaryDirectory(label: "pgpw")
        defer { folder.remove() }
        var wrong = db.settings
        wrong.passwordFile = folder.file("wrong.pw")
        try TestFiles.write("not-the-password\n", to: wrong.passwordFile!)
        let refused = await #expect(throws: PostgresSpool.Error.self) { try await PostgresSpool.open(wrong, node: "n", logger: SpoolFixtures.quietLogger) }
        #expect(refused?.description.contains("password authentication failed") == true, "\(refused?.description ?? "")")
        #expect(refused?.description.contains("\n") == false)

        var nowhere = db.settings
        nowhere.port = freePort()
        nowhere.url = "postgresql://tollgate@127.0.0.1:\(nowhere.port)/x"
        let started = ContinuousClock.now
        let unreachable = await #expect(throws: PostgresSpool.Error.self) { try await PostgresSpool.inspect(nowhere, node: "n") }
        #expect(unreachable?.description.hasPrefix("cannot reach the spool database postgresql://tollgate@127.0.0.1:\(nowhere.port)/x: ") == true, "\(unreachable?.description ?? "")")
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    /// Two nodes (two opens of one database) never make the same id: each process
    /// has an incarnation of its own from the database's sequence.
    @Test func queueIDsAreUniqueAcrossNodes() async throws {
        let db = try await PostgresTestDatabase.make()
        let a = try await open(db, node: "relay-a")
        let b = try await open(db, node: "relay-b")
        defer { Task { await a.close(); await b.close() } }
        #expect(a.incarnation != b.incarnation)
        let fromA = (0..<5_000).map { _ in a.makeQueueID() }
        let fromB = (0..<5_000).map { _ in b.makeQueueID() }
        #expect(Set(fromA + fromB).count == 10_000)
        // Time-ordered within a process.
        #expect(fromA == fromA.sorted())
    }

    @Test func concurrentInsertsShareOneStatement() async throws {
        let db = try await PostgresTestDatabase.make()
        let spool = try await open(db)
        defer { Task { await spool.close() } }
        let writers = 100
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<writers {
                group.addTask { try await spool.insert(SpoolFixtures.message(id: spool.makeQueueID(), to: ["b@example.net", "c@example.net"], now: self.t0)) }
            }
            try await group.waitForAll()
        }
        #expect(try await spool.count() == writers)
        #expect(try await db.server.psql("SELECT count(*) FROM recipients", database: db.name) == "\(writers * 2)")
        let commits = spool.inserts.commits
        #expect(commits < writers, "\(commits) statements for \(writers) messages")
        #expect(spool.inserts.largestBatch > 1)
    }

    /// Deliveries' results that arrive together share statements, and each gets its
    /// own answer and its own rows: delivered ones move to the history with their own
    /// recipients, deferred ones keep their own states, next attempt and attempt record,
    /// and one whose claim another owner holds (deferred or done) changes nothing and is
    /// told so. Every message has its own addresses, replies and hosts, so a result
    /// joined to another message's row would show.
    @Test func concurrentResultsShareStatementsAndEachGetsItsOwnAnswer() async throws {
        let db = try await PostgresTestDatabase.make()
        let spool = try await open(db)
        defer { Task { await spool.close() } }
        let count = 60
        var ids: [String] = []
        for n in 0..<count {
            let m = SpoolFixtures.message(id: spool.makeQueueID(), to: ["b\(n)@example.net", "c\(n)@example.net"], now: t0)
            try await spool.insert(m)
            ids.append(m.id)
        }
        let claimed = try await spool.claimDue(owner: "node-a/1", now: t0 + 1, lease: 60, limit: 100)
        #expect(Set(claimed) == Set(ids))
        // Every seventh is held by another owner: deferred and done ones alike.
        func foreign(_ n: Int) -> Bool { n % 7 == 3 }
        func done(_ n: Int) -> Bool { n % 2 == 0 }
        let before = spool.results.commits
        let outcomes = try await withThrowingTaskGroup(of: (String, Bool).self) { group in
            for (n, id) in ids.enumerated() {
                group.addTask {
                    let owner = foreign(n) ? "node-b/7" : "node-a/1"
                    var recipients = [SpoolRecipient(address: "b\(n)@example.net"), SpoolRecipient(address: "c\(n)@example.net")]
                    recipients[0].state = .delivered
                    recipients[0].attempts = 1
                    recipients[0].lastReply = "250 ok \(n)"
                    recipients[1].attempts = 1
                    if done(n) {
                        recipients[1].state = .delivered
                        recipients[1].lastReply = "250 ok too \(n)"
                    } else {
                        recipients[1].lastReply = "451 4.3.0 try later \(n)"
                    }
                    let record = DeliveryAttempt(
                        at: self.t0 + 2, upstream: "up\(n)", host: "10.0.0.\(n)", owner: owner,
                        recipients: [.init(address: "b\(n)@example.net", code: 250, enhancedStatus: nil, text: "ok \(n)", state: .delivered)]
                    )
                    let own = try await spool.recordAttempt(
                        id, owner: owner, recipients: recipients, nextAttempt: done(n) ? nil : self.t0 + 600 + Double(n),
                        lastError: done(n) ? nil : "451 \(n)", attempt: record
                    )
                    return (id, own)
                }
            }
            return try await group.reduce(into: [String: Bool]()) { $0[$1.0] = $1.1 }
        }
        let statements = spool.results.commits - before
        #expect(statements < count, "\(statements) statements for \(count) results")
        for (n, id) in ids.enumerated() {
            #expect(outcomes[id] == !foreign(n), "\(n)")
            let queued = try await spool.load(id)
            let attempts = try await spool.attempts(id)
            if foreign(n) {
                // Untouched: still queued as it was, no attempt recorded.
                #expect(queued?.recipients.map(\.state) == [.pending, .pending] && queued?.attempts == 0, "\(n)")
                let history = try await spool.history(id)
                #expect(attempts.isEmpty && history == nil, "\(n)")
                continue
            }
            #expect(attempts.count == 1, "\(n)")
            #expect(attempts.first.map { $0.number == 1 && $0.upstream == "up\(n)" && $0.host == "10.0.0.\(n)" && $0.recipients.map(\.text) == ["ok \(n)"] } == true, "\(n): \(attempts)")
            if done(n) {
                #expect(queued == nil, "\(n) delivered but still queued")
                let history = try await spool.history(id)
                #expect(history?.recipients.map(\.address) == ["b\(n)@example.net", "c\(n)@example.net"], "\(n)")
                #expect(history?.recipients.map(\.lastReply) == ["250 ok \(n)", "250 ok too \(n)"] && history?.attempts == 1, "\(n)")
            } else {
                #expect(queued?.recipients.map(\.address) == ["b\(n)@example.net", "c\(n)@example.net"], "\(n)")
                #expect(queued?.recipients.map(\.state) == [.delivered, .pending], "\(n)")
                #expect(queued?.recipients.map(\.lastReply) == ["250 ok \(n)", "451 4.3.0 try later \(n)"] && queued?.lastError == "451 \(n)", "\(n)")
                #expect(queued?.nextAttempt == t0 + 600 + Double(n) && queued?.attempts == 1 && queued?.state == .deferred, "\(n)")
            }
        }
    }

    /// Two results for one message sent at once never share a statement: each is
    /// applied in turn (the second finds the claim released by the first), and one
    /// result the database refuses (a NUL in its reply) fails alone.
    @Test func resultsForOneMessageAndARefusedOneAreKeptApart() async throws {
        let db = try await PostgresTestDatabase.make()
        let spool = try await open(db)
        defer { Task { await spool.close() } }
        var ids: [String] = []
        for _ in 0..<20 {
            let m = SpoolFixtures.message(id: spool.makeQueueID(), now: t0)
            try await spool.insert(m)
            ids.append(m.id)
        }
        _ = try await spool.claimDue(owner: "o", now: t0 + 1, lease: 60, limit: 100)
        let first = ids[0]
        let results = await withTaskGroup(of: (Int, Result<Bool, any Error>).self) { group in
            for (n, id) in ids.enumerated() {
                group.addTask {
                    var r = SpoolRecipient(address: "bob@example.net")
                    r.lastReply = n == 5 ? "451 bad \u{0} byte" : "451 later"
                    do { return (n, .success(try await spool.recordAttempt(id, owner: "o", recipients: [r], nextAttempt: self.t0 + 60, lastError: "x", attempt: nil))) }
                    catch { return (n, .failure(error)) }
                }
            }
            // The first message's result twice.
            group.addTask {
                do { return (100, .success(try await spool.recordAttempt(first, owner: "o", recipients: [SpoolRecipient(address: "bob@example.net")], nextAttempt: self.t0 + 60, lastError: "y", attempt: nil))) }
                catch { return (100, .failure(error)) }
            }
            return await group.reduce(into: [Int: Result<Bool, any Error>]()) { $0[$1.0] = $1.1 }
        }
        for n in 1..<20 where n != 5 {
            #expect((try? results[n]?.get()) == true, "\(n)")
        }
        #expect((try? results[5]?.get()) == nil, "a NUL in a reply was stored")
        // One of the two results for the first message applied, the other found the claim gone.
        #expect([try? results[0]?.get(), try? results[100]?.get()].compactMap { $0 }.sorted { !$0 && $1 } == [false, true], "\(results[0] as Any) \(results[100] as Any)")
        #expect(try await spool.load(ids[0])?.attempts == 1)
    }

    @Test func aRefusedMessageDoesNotSinkItsBatch() async throws {
        let db = try await PostgresTestDatabase.make()
        let spool = try await open(db)
        defer { Task { await spool.close() } }
        let taken = SpoolFixtures.message(id: spool.makeQueueID(), now: t0)
        try await spool.insert(taken)
        // The same id again, among 30 good ones sent at once: only it fails.
        let results = await withTaskGroup(of: Bool.self) { group in
            group.addTask { (try? await spool.insert(taken)) != nil }
            for _ in 0..<30 {
                group.addTask { (try? await spool.insert(SpoolFixtures.message(id: spool.makeQueueID(), now: self.t0))) != nil }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results.filter { !$0 }.count == 1)
        #expect(try await spool.count() == 31)
    }

    /// The database goes away: the store fails at once (451 for the session) rather
    /// than hanging, says so, and works again by itself when the database is back.
    /// `spool.postgres.tls` against a server with TLS on: `verify-full` with the right CA
    /// connects encrypted, with another CA it is refused in one line naming the
    /// certificate; `require` encrypts without checking.
    @Test func tlsToTheDatabaseIsVerifiedOrRefused() async throws {
        let dir = try TemporaryDirectory(label: "pg-tls")
        defer { dir.remove() }
        let certificates = try TestCertificates.make(in: dir.path + "/certs")
        let other = try TestCertificates.make(in: dir.path + "/other")
        let server = try await PostgresServer.start(fsync: false, tls: certificates)
        defer { Task { await server.stop() } }
        try await server.psql("CREATE DATABASE tollgate", database: "postgres")
        func settings(_ mode: TollgateConfiguration.PostgresTLSMode, ca: String?) -> TollgateConfiguration.Postgres {
            var s = TollgateConfiguration.Postgres(url: server.url(database: "tollgate"), host: "127.0.0.1", port: server.port, user: PostgresServer.user, database: "tollgate")
            s.passwordFile = server.passwordFile
            s.tls = mode
            s.caFile = ca
            s.connectTimeout = 5
            return s
        }
        for (mode, ca) in [(TollgateConfiguration.PostgresTLSMode.verifyFull, certificates.caCertificatePath), (.require, other.caCertificatePath)] {
            let spool = try await PostgresSpool.open(settings(mode, ca: ca), node: "node-a", logger: SpoolFixtures.quietLogger)
            let rows = try await spool.execute("ssl", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            #expect(try rows.first?[0].decode(Bool.self) == true, "\(mode): the connection is encrypted")
            await spool.close()
        }
        do {
            let spool = try await PostgresSpool.open(settings(.verifyFull, ca: other.caCertificatePath), node: "node-a", logger: SpoolFixtures.quietLogger)
            await spool.close()
            Issue.record("a certificate from another CA was accepted")
        } catch {
            let text = "\(error)"
            #expect(!text.contains("\n") && text.contains("TLS certificate is not signed by spool.postgres.ca_file") && !text.contains("BoringSSL"), "\(text)")
        }
    }

    @Test func aStoppedDatabaseFailsFastAndIsReconnected() async throws {
        let (server, spool) = try await ownServer(statementTimeout: 2)
        defer { Task { await spool.close(); await server.shutdown() } }
        try await spool.insert(SpoolFixtures.message(id: spool.makeQueueID(), now: t0))
        await server.stop()
        let started = ContinuousClock.now
        await #expect(throws: (any Error).self) { try await spool.insert(SpoolFixtures.message(id: spool.makeQueueID(), now: t0)) }
        // The deadline (statement_timeout + 5 s) bounds the first failure; later ones are immediate.
        #expect(ContinuousClock.now - started < .seconds(8))
        let again = ContinuousClock.now
        await #expect(throws: (any Error).self) { try await spool.health() }
        #expect(ContinuousClock.now - again < .seconds(1))
        try await server.restart()
        let back = await waitUntil(timeout: 30, interval: 0.2) { (try? await spool.health()) != nil }
        #expect(back)
        try await spool.insert(SpoolFixtures.message(id: spool.makeQueueID(), now: t0))
        // The insert that failed while the database was down is not stored later either.
        let count = try await spool.count()
        #expect(count == 2, "\(count) messages")
    }

    /// A frozen database (every process stopped) answers nothing; the store gives up
    /// after its deadline instead of hanging the session.
    @Test func aFrozenDatabaseCannotHangAnInsert() async throws {
        let (server, spool) = try await ownServer(statementTimeout: 1)
        defer { Task { await spool.close(); await server.shutdown() } }
        try await spool.insert(SpoolFixtures.message(id: spool.makeQueueID(), now: t0))
        server.pause()
        let started = ContinuousClock.now
        await #expect(throws: (any Error).self) { try await spool.insert(SpoolFixtures.message(id: spool.makeQueueID(), now: t0)) }
        let waited = ContinuousClock.now - started
        #expect(waited >= .seconds(5) && waited < .seconds(9), "\(waited)")
        server.resume()
        let back = await waitUntil(timeout: 30, interval: 0.2) { (try? await spool.health()) != nil }
        #expect(back)
    }
}

/// `spool.postgres`, `spool.node` and `spool.lease` in `tollgate.yaml`.
@Suite struct PostgresConfigurationTests {
    func parse(_ spool: String) throws(ConfigurationLoader.Failure) -> TollgateConfiguration {
        try ConfigurationLoader.parse("""
            listeners:
              - { name: relay, address: 127.0.0.1:2525 }
            upstreams:
              - { name: outbox, directory: /tmp/outbox }
            spool:
            \(spool)
            """, file: "/tmp/t/tollgate.yaml")
    }

    func errors(_ spool: String) -> [String] {
        do {
            _ = try parse(spool)
            return []
        } catch {
            return error.diagnostics.map(\.description)
        }
    }

    @Test func theKeysAreRead() throws {
        let c = try parse("""
              postgres:
                url: postgresql://tollgate@db.example.test:6432/queue
                tls: verify-full
                statement_timeout: 10s
              node: relay-a
              lease: 2m
            """)
        let p = try #require(c.spool.postgres)
        #expect(p.host == "db.example.test" && p.port == 6432 && p.user == "tollgate" && p.database == "queue")
        #expect(p.tls == .verifyFull && p.statementTimeout == 10 && p.passwordFile == nil)
        #expect(c.spool.node == "relay-a" && c.spool.lease == 120)
        #expect(try parse("  postgres: { url: \"postgresql://u@%2Frun%2Fpostgresql/q\" }").spool.postgres?.unixSocket == "/run/postgresql/.s.PGSQL.5432")
    }

    @Test func mistakesAreLocated() {
        #expect(errors("  postgres: { url: \"postgresql://u:secret@h/q\" }") == ["/tmp/t/tollgate.yaml:6:20: spool.postgres.url: holds a password: put it in spool.postgres.password_file instead"])
        #expect(errors("  postgres: { url: \"mysql://u@h/q\" }") == ["/tmp/t/tollgate.yaml:6:20: spool.postgres.url: must start with postgresql://"])
        #expect(errors("  postgres: { url: \"postgresql://u@h/q?sslmode=require\" }").first?.contains("query parameters are not taken") == true)
        #expect(errors("  postgres: { url: \"postgresql://u@h/q\", tls: maybe }") == ["/tmp/t/tollgate.yaml:6:47: spool.postgres.tls must be one of disable, require, verify-full, not 'maybe'"])
        #expect(errors("  postgres: { tls: require }") == ["/tmp/t/tollgate.yaml:6:13: spool.postgres needs a url (postgresql://USER@HOST:PORT/DATABASE)"])
        #expect(errors("  postgres: { url: \"postgresql://u@h/q\", password_file: /nonexistent/pw }") == ["/tmp/t/tollgate.yaml:6:57: cannot read /nonexistent/pw: it does not exist"])
        #expect(errors("  node: \"relay/a\"") == ["/tmp/t/tollgate.yaml:6:9: spool.node must be 1 to 63 printable ASCII characters without spaces or '/'"])
        #expect(errors("  lease: 1s") == ["/tmp/t/tollgate.yaml:6:10: spool.lease must be at least 3s (a delivery renews its claim every third of it)"])
        #expect(errors("  path: q\n  postgres: { url: \"postgresql://u@h/q\" }").first?.contains("spool has both path and postgres") == true)
    }
}
