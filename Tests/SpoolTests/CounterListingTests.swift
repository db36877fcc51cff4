import SpoolTestSupport
import TestSupport
import Testing
import TollgatePolicy
import TollgateSpoolPostgres

/// The console's listing of counters against their limits
/// (``PolicyCounterStore/listing(prefix:now:maximum:)``), one suite for both stores: the
/// in-memory counters of the SQLite store and the cluster's in PostgreSQL.
@Suite struct CounterListingTests {
    let t0 = 1_700_000_000.0
    let alice = CounterID(name: "rate-limit/user/messages/alice", window: 3600)
    let bob = CounterID(name: "rate-limit/user/messages/bob", window: 3600)
    let lab = CounterID(name: "rate-limit/department/recipients/lab", window: 86_400)
    let shadow = CounterID(name: "shadow/rate-limit/user/messages/alice", window: 3600)
    let short = CounterID(name: "rate-limit/user/messages/carol", window: 60)

    func check(_ counters: any PolicyCounterStore) async throws {
        // alice: 2 committed under a limit of 4 (a department's), a third under 10 (the
        // stage's): one counter, two limits; the listing shows the lower, which binds.
        for n in 0..<2 {
            _ = try await counters.reserve([CounterCharge(alice, amount: 1, limit: 4), CounterCharge(lab, amount: 3, limit: 50)], sessionID: "a\(n)", now: t0 + Double(n))
            await counters.commit(sessionID: "a\(n)", now: t0 + Double(n))
        }
        _ = try await counters.reserve([CounterCharge(alice, amount: 1, limit: 10)], sessionID: "a2", now: t0 + 2)
        await counters.commit(sessionID: "a2", now: t0 + 2)
        // bob: 3 of 3, one of them still a reservation in progress.
        for n in 0..<2 {
            _ = try await counters.reserve([CounterCharge(bob, amount: 1, limit: 3)], sessionID: "b\(n)", now: t0 + 3)
            await counters.commit(sessionID: "b\(n)", now: t0 + 3)
        }
        _ = try await counters.reserve([CounterCharge(bob, amount: 1, limit: 3)], sessionID: "b2", now: t0 + 4)
        // A released reservation holds nothing; a shadow stage's counter is another prefix;
        // carol's one message leaves her 60 s window before the listing is made.
        _ = try await counters.reserve([CounterCharge(CounterID(name: "rate-limit/user/messages/dave", window: 3600), amount: 1, limit: 5)], sessionID: "d", now: t0 + 4)
        await counters.release(sessionID: "d")
        _ = try await counters.reserve([CounterCharge(shadow, amount: 1, limit: 1)], sessionID: "s", now: t0 + 4)
        await counters.commit(sessionID: "s", now: t0 + 4)
        _ = try await counters.reserve([CounterCharge(short, amount: 1, limit: 1)], sessionID: "c", now: t0)
        await counters.commit(sessionID: "c", now: t0)

        let now = t0 + 100
        let all = try await counters.listing(prefix: "rate-limit/", now: now, maximum: 100)
        #expect(all.total == 3)
        #expect(all.counters == [
            CounterUsage(counter: bob, used: 3, limit: 3),
            CounterUsage(counter: alice, used: 3, limit: 4),
            CounterUsage(counter: lab, used: 6, limit: 50),
        ])
        // At most `maximum`, the fullest first, with the total of all.
        let top = try await counters.listing(prefix: "rate-limit/", now: now, maximum: 1)
        #expect(top.counters.map(\.counter) == [bob])
        #expect(top.total == 3)
        // By key.
        let departments = try await counters.listing(prefix: "rate-limit/department/", now: now, maximum: 100)
        #expect(departments.counters == [CounterUsage(counter: lab, used: 6, limit: 50)])
        #expect(departments.total == 1)
        // After alice's window, only the department's day remains; nothing under another prefix.
        let later = try await counters.listing(prefix: "rate-limit/", now: t0 + 3700, maximum: 100)
        #expect(later.counters.map(\.counter) == [lab])
        #expect(try await counters.listing(prefix: "rate-limit/client/", now: now, maximum: 100).total == 0)
    }

    @Test func inMemory() async throws {
        try await check(MemoryCounters())
    }

    @Test func inPostgreSQL() async throws {
        let db = try await PostgresTestDatabase.make()
        let spool = try await PostgresSpool.open(db.settings, node: "node-a", logger: SpoolFixtures.quietLogger)
        defer { Task { await spool.close() } }
        try await check(PostgresCounters(spool))
    }
}
