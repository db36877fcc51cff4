import Foundation
import SpoolTestSupport
import TestSupport
import Testing
import TollgateConfiguration
import TollgateSpool

/// Claims with an owner and a lease, the same in every store (SPEC §6): a live claim
/// is never handed out twice, an expired one is, renewing extends it, recording an
/// attempt releases it.
@Suite struct SpoolClaimTests {
    let t0 = 1_700_000_000.0

    func insert(_ spool: any Spool, _ count: Int, at now: Double) async throws -> [String] {
        var ids: [String] = []
        for n in 0..<count {
            var m = SpoolFixtures.message(id: spool.makeQueueID(), now: now)
            m.nextAttempt = now + Double(n) * 0.001
            try await spool.insert(m)
            ids.append(m.id)
        }
        return ids
    }

    @Test(arguments: StoreKind.allCases) func twoOwnersNeverGetTheSameMessage(_ kind: StoreKind) async throws {
        try await kind.with { spool in
            let ids = try await insert(spool, 20, at: t0)
            let now = t0 + 1
            async let a = spool.claimDue(owner: "a", now: now, lease: 60, limit: 15)
            async let b = spool.claimDue(owner: "b", now: now, lease: 60, limit: 15)
            let (claimedA, claimedB) = try await (a, b)
            #expect(Set(claimedA).isDisjoint(with: claimedB))
            #expect(Set(claimedA + claimedB) == Set(ids))
            #expect(claimedA.count + claimedB.count == 20)
            // Everything is claimed: a third owner gets nothing while the leases live.
            #expect(try await spool.claimDue(owner: "c", now: now + 59, lease: 60, limit: 20).isEmpty)
        }
    }

    @Test(arguments: StoreKind.allCases) func claimsAreOldestDueFirstAndSkipHeldAndFuture(_ kind: StoreKind) async throws {
        try await kind.with { spool in
            let ids = try await insert(spool, 4, at: t0)
            var later = SpoolFixtures.message(id: spool.makeQueueID(), now: t0)
            later.nextAttempt = t0 + 100
            try await spool.insert(later)
            #expect(try await spool.hold([ids[0]]) == [ids[0]])
            #expect(try await spool.claimDue(owner: "a", now: t0 + 1, lease: 600, limit: 2) == [ids[1], ids[2]])
            #expect(try await spool.claimDue(owner: "a", now: t0 + 1, lease: 600, limit: 10) == [ids[3]])
            #expect(try await spool.claimDue(owner: "a", now: t0 + 100, lease: 600, limit: 10) == [later.id])
            #expect(try await spool.claimDue(owner: "a", now: t0 + 1, lease: 60, limit: 0).isEmpty)
        }
    }

    @Test(arguments: StoreKind.allCases) func anExpiredLeaseHandsTheMessageOver(_ kind: StoreKind) async throws {
        try await kind.with { spool in
            let id = try await insert(spool, 1, at: t0)[0]
            #expect(try await spool.claimDue(owner: "a", now: t0, lease: 60, limit: 1) == [id])
            #expect(try await spool.claimDue(owner: "b", now: t0 + 59.9, lease: 60, limit: 1).isEmpty)
            #expect(try await spool.claimDue(owner: "b", now: t0 + 60, lease: 60, limit: 1) == [id])
            // The old owner has lost it: it can neither renew nor record.
            #expect(try await spool.renewClaim(id, owner: "a", now: t0 + 61, lease: 60) == false)
            let m = try #require(try await spool.load(id))
            #expect(try await spool.recordAttempt(id, owner: "a", recipients: m.recipients, nextAttempt: nil, lastError: nil) == false)
            #expect(try await spool.count() == 1)
        }
    }

    @Test(arguments: StoreKind.allCases) func renewingExtendsTheLease(_ kind: StoreKind) async throws {
        try await kind.with { spool in
            let id = try await insert(spool, 1, at: t0)[0]
            _ = try await spool.claimDue(owner: "a", now: t0, lease: 60, limit: 1)
            #expect(try await spool.renewClaim(id, owner: "a", now: t0 + 50, lease: 60))
            #expect(try await spool.renewClaim(id, owner: "b", now: t0 + 50, lease: 60) == false)
            #expect(try await spool.claimDue(owner: "b", now: t0 + 100, lease: 60, limit: 1).isEmpty)
            #expect(try await spool.claimDue(owner: "b", now: t0 + 110, lease: 60, limit: 1) == [id])
        }
    }

    @Test(arguments: StoreKind.allCases) func recordingAnAttemptReleasesTheClaim(_ kind: StoreKind) async throws {
        try await kind.with { spool in
            let id = try await insert(spool, 1, at: t0)[0]
            _ = try await spool.claimDue(owner: "a", now: t0, lease: 60, limit: 1)
            var recipients = try #require(try await spool.load(id)).recipients
            recipients[0].attempts = 1
            recipients[0].lastReply = "451 4.4.1 try later"
            #expect(try await spool.recordAttempt(id, owner: "a", recipients: recipients, nextAttempt: t0 + 5, lastError: "451 4.4.1 try later"))
            let m = try #require(try await spool.load(id))
            #expect(m.state == .deferred && m.attempts == 1 && m.nextAttempt == t0 + 5 && m.claimedBy == nil)
            #expect(m.lastError == "451 4.4.1 try later" && m.recipients[0].lastReply == "451 4.4.1 try later" && m.recipients[0].attempts == 1)
            // Released: anyone may claim it once due, long before the old lease would have run out.
            #expect(try await spool.claimDue(owner: "b", now: t0 + 5, lease: 60, limit: 1) == [id])
            #expect(try await spool.recordAttempt(id, owner: "b", recipients: recipients, nextAttempt: nil, lastError: nil))
            #expect(try await spool.load(id) == nil)
            #expect(try await spool.count() == 0)
        }
    }

    /// An administrator's bounce that comes while a delivery is under way is not put
    /// off until the next retry: the deferral keeps the message due now, bounce marked.
    @Test(arguments: StoreKind.allCases) func aBounceAskedForDuringAnAttemptStaysDueNow(_ kind: StoreKind) async throws {
        try await kind.with { spool in
            let id = try await insert(spool, 1, at: t0)[0]
            #expect(try await spool.claimDue(owner: "a", now: t0, lease: 60, limit: 1) == [id])
            #expect(try await spool.requestBounce([id]) == [id])
            let recipients = try #require(try await spool.load(id)).recipients
            #expect(try await spool.recordAttempt(id, owner: "a", recipients: recipients, nextAttempt: t0 + 600, lastError: "451 4.4.1 later"))
            let m = try #require(try await spool.load(id))
            #expect(m.bounceRequested && m.state == .queued && m.nextAttempt <= t0 && m.attempts == 1 && m.claimedBy == nil)
            #expect(try await spool.claimDue(owner: "b", now: t0 + 1, lease: 60, limit: 1) == [id])
        }
    }

    /// A restarted node takes back what its dead process had claimed, and nothing of
    /// another node's or its own.
    @Test(arguments: StoreKind.allCases) func aRestartedNodeReleasesItsDeadProcessesClaims(_ kind: StoreKind) async throws {
        try await kind.with { spool in
            let ids = try await insert(spool, 4, at: t0)
            _ = try await spool.claimDue(owner: "relay-a/100/x", now: t0 + 1, lease: 60, limit: 1)
            _ = try await spool.claimDue(owner: "relay-ab/7/y", now: t0 + 1, lease: 60, limit: 1)
            _ = try await spool.claimDue(owner: "relay-a/200/z", now: t0 + 1, lease: 60, limit: 1)
            _ = try await spool.claimDue(owner: "relay-a/300/w", now: t0 + 1, lease: 60, limit: 1)
            // 100 died; 300 is a second live process of the node and keeps its claim.
            let released = try await spool.releaseStaleClaims(node: "relay-a", keeping: "relay-a/200/z") { $0 == "relay-a/300/w" }
            #expect(released == 1)
            #expect(try await spool.claimDue(owner: "relay-a/200/z", now: t0 + 2, lease: 60, limit: 4) == [ids[0]])
        }
    }

    @Test(arguments: StoreKind.allCases) func releasingAClaimWithoutAnAttempt(_ kind: StoreKind) async throws {
        try await kind.with { spool in
            let id = try await insert(spool, 1, at: t0)[0]
            _ = try await spool.claimDue(owner: "a", now: t0, lease: 60, limit: 1)
            try await spool.releaseClaim(id, owner: "b")
            #expect(try await spool.claimDue(owner: "b", now: t0 + 1, lease: 60, limit: 1).isEmpty)
            try await spool.releaseClaim(id, owner: "a")
            #expect(try await spool.claimDue(owner: "b", now: t0 + 1, lease: 60, limit: 1) == [id])
            #expect(try await spool.load(id)?.attempts == 0)
        }
    }

    @Test(arguments: StoreKind.allCases) func manyClaimersTakeEachMessageOnce(_ kind: StoreKind) async throws {
        try await kind.with { spool in
            let ids = try await insert(spool, 50, at: t0)
            let batches = try await withThrowingTaskGroup(of: [String].self) { group in
                for owner in 0..<8 {
                    group.addTask { try await spool.claimDue(owner: "o\(owner)", now: t0 + 1, lease: 60, limit: 10) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let all = batches.flatMap { $0 }
            #expect(all.count == Set(all).count)
            #expect(Set(all) == Set(ids))
        }
    }

    @Test func aClaimOwnerIsRunningOnlyWhileItsProcessIsATollgate() {
        #expect(!NodeIdentity.isRunning("relay-a/0/x"))
        #expect(!NodeIdentity.isRunning("relay-a/not-a-pid/x"))
        #expect(!NodeIdentity.isRunning("relay-a/\(Int32.max)/x"))
    }

    /// Real processes: one alive but not a Tollgate (a reused pid), one whose command is
    /// a Tollgate's, and the same once it has exited.
    @Test func aLiveProcessCountsOnlyWhenItIsATollgate() throws {
        let dir = try TemporaryDirectory(label: "owners")
        defer { dir.remove() }
        let sleep = try ExecutableLookup.require("sleep")
        let disguised = dir.file("tollgate")
        try FileManager.default.createSymbolicLink(atPath: disguised, withDestinationPath: sleep)
        let other = try ChildProcess.spawn(sleep, ["30"])
        let tollgate = try ChildProcess.spawn(disguised, ["30"])
        defer {
            _ = other.kill()
            _ = tollgate.kill()
        }
        // Until a child has exec'd, its command line is still this test's.
        func execed(_ child: ChildProcess, _ path: String) -> Bool {
            waitUntil(timeout: 10) { ((try? String(contentsOfFile: "/proc/\(child.pid)/cmdline", encoding: .utf8)) ?? "").hasPrefix(path) }
        }
        #expect(execed(other, sleep) && execed(tollgate, disguised))
        #expect(!NodeIdentity.isRunning("relay-a/\(other.pid)/x"))
        #expect(NodeIdentity.isRunning("relay-a/\(tollgate.pid)/x"))
        _ = tollgate.kill()
        #expect(!NodeIdentity.isRunning("relay-a/\(tollgate.pid)/x"))
    }
}
