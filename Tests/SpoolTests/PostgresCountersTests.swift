import Foundation
import SpoolTestSupport
import TestSupport
import Testing
import TollgatePolicy
@testable import TollgateSpoolPostgres

/// The plugins' counters in the cluster's database (issue 8 part 3), against the test
/// process's real PostgreSQL: a limit of N admits N across two nodes reserving at once,
/// only committed amounts last, and they survive a restart.
@Suite struct PostgresCountersTests {
    let t0 = 1_700_000_000.0
    let counter = CounterID(name: "rate-limit/client/messages/192.0.2.10", window: 3600)

    func open(_ db: PostgresTestDatabase, node: String) async throws -> (PostgresSpool, PostgresCounters) {
        let spool = try await PostgresSpool.open(db.settings, node: node, logger: SpoolFixtures.quietLogger)
        return (spool, PostgresCounters(spool))
    }

    @Test func twoNodesReservingAtOnceAdmitExactlyTheLimit() async throws {
        let db = try await PostgresTestDatabase.make()
        let (spoolA, a) = try await open(db, node: "node-a")
        let (spoolB, b) = try await open(db, node: "node-b")
        defer { Task { await spoolA.close(); await spoolB.close() } }
        let limit = 7
        // 40 transactions, 20 on each node, at the same moment.
        let outcomes = await withTaskGroup(of: (String, CounterReservation?).self) { group in
            for n in 0..<40 {
                let counters = n % 2 == 0 ? a : b
                let session = "S\(n)"
                group.addTask { [counter, t0] in
                    (session, try? await counters.reserve([CounterCharge(counter, amount: 1, limit: limit)], sessionID: session, now: t0))
                }
            }
            var all: [(String, CounterReservation?)] = []
            for await outcome in group { all.append(outcome) }
            return all
        }
        #expect(!outcomes.contains { $0.1 == nil }, "every reservation answered")
        let reserved = outcomes.filter { if case .reserved = $0.1 { return true } else { return false } }
        #expect(reserved.count == limit)
        #expect(try await a.usage([counter], now: t0)[counter] == limit)
        // Commit three on their nodes, release the rest: only the three count.
        for (index, (session, _)) in reserved.enumerated() {
            let number = Int(session.dropFirst())!
            let node = number % 2 == 0 ? a : b
            if index < 3 { await node.commit(sessionID: session, now: t0 + 1) } else { await node.release(sessionID: session) }
        }
        #expect(try await b.usage([counter], now: t0 + 2)[counter] == 3)
        // The next four fit, the fifth does not.
        for n in 0..<4 {
            #expect(try await b.reserve([CounterCharge(counter, amount: 1, limit: limit)], sessionID: "T\(n)", now: t0 + 2) == .reserved(used: [counter: 3 + n]))
        }
        #expect(try await a.reserve([CounterCharge(counter, amount: 1, limit: limit)], sessionID: "T9", now: t0 + 2) == .exceeded(counter, used: 7))
    }

    @Test func committedAmountsSurviveARestartAndLeaveAfterTheWindow() async throws {
        let db = try await PostgresTestDatabase.make()
        let (first, counters) = try await open(db, node: "node-a")
        let other = CounterID(name: "rate-limit/user/recipients/alice", window: 60)
        #expect(try await counters.reserve([CounterCharge(counter, amount: 1, limit: 10), CounterCharge(other, amount: 5, limit: 10)], sessionID: "S", now: t0) == .reserved(used: [counter: 0, other: 0]))
        // Reserving again in the same transaction replaces its amount, not adds to it.
        #expect(try await counters.reserve([CounterCharge(other, amount: 6, limit: 10)], sessionID: "S", now: t0) == .reserved(used: [other: 0]))
        await counters.commit(sessionID: "S", now: t0)
        // A reservation that is never committed nor released (a node that died).
        _ = try await counters.reserve([CounterCharge(counter, amount: 2, limit: 10)], sessionID: "lost", now: t0)
        await first.close()
        let (second, again) = try await open(db, node: "node-a")
        defer { Task { await second.close() } }
        #expect(try await again.usage([counter, other], now: t0 + 1) == [counter: 3, other: 6])
        #expect(try await again.usage([counter, other], now: t0 + 61) == [counter: 3, other: 0])
        // The lost reservation stops counting after its lifetime; the commit stays for the window.
        #expect(try await again.usage([counter], now: t0 + MemoryCounters.reservationLifetime + 1) == [counter: 1])
        #expect(try await again.usage([counter], now: t0 + 3601) == [counter: 0])
    }
}
