import NIOCore
import Synchronization
import SpoolTestSupport
import Testing
import TollgateConfiguration
import TollgateSpool

/// Round trips and the `tollgate queue …` operations, the same in every store.
@Suite struct SpoolAdministrationTests {
    let t0 = 1_700_000_000.0

    @Test(arguments: StoreKind.allCases) func aMessageComesBackAsStored(_ kind: StoreKind) async throws {
        try await kind.with { spool in
            var m = SpoolFixtures.message(
                id: spool.makeQueueID(), to: ["b@example.net", "c@example.net"], notify: ["FAILURE", "DELAY"], now: t0,
                header: "Received: from x by y; Tue, 1 Jan 2030 00:00:00 +0000\r\n", body: "Subject: \u{e9}\r\n\r\nbody\r\n"
            )
            m.envelope.user = "alice"
            m.envelope.department = "finance"
            m.envelope.eightBit = true
            m.envelope.ret = "HDRS"
            m.upstream = "outbox"
            m.recipients[1].originalRecipient = "rfc822;c@example.net"
            try await spool.insert(m)
            let loaded = try #require(try await spool.load(m.id))
            #expect(loaded.receivedHeader == m.receivedHeader)
            #expect(loaded.content == m.content)
            #expect(loaded.size == m.receivedHeader.utf8.count + m.content.readableBytes)
            #expect(loaded.envelope == m.envelope)
            #expect(loaded.recipients == m.recipients)
            #expect(loaded.sender == m.sender && loaded.createdAt == t0 && loaded.nextAttempt == t0 && loaded.upstream == "outbox")
            #expect(loaded.acceptedBy == "node-a" && loaded.claimedBy == nil && loaded.state == .queued)
            #expect(try await spool.count() == 1)
            #expect(try await spool.nextDue() == t0)
            let listing = try #require(try await spool.list().first)
            #expect(listing.id == m.id && listing.size == m.size && listing.recipients == ["b@example.net", "c@example.net"])
            #expect(listing.user == "alice" && listing.department == "finance" && listing.acceptedBy == "node-a")
            try await spool.health()
        }
    }

    @Test(arguments: StoreKind.allCases) func administrationNamesTheIdsItChanged(_ kind: StoreKind) async throws {
        try await kind.with { spool in
            var ids: [String] = []
            for _ in 0..<3 {
                var m = SpoolFixtures.message(id: spool.makeQueueID(), now: t0)
                m.nextAttempt = t0 + 3600
                try await spool.insert(m)
                ids.append(m.id)
            }
            #expect(try await spool.hold([ids[0], "NOSUCHID"]) == [ids[0]])
            #expect(try await spool.load(ids[0])?.state == .held)
            // Held messages are not made due by retry, not even by retry --all.
            #expect(try await spool.retry([ids[0], ids[1]], now: t0 + 10) == [ids[1]])
            #expect(Set(try await spool.retry(nil, now: t0 + 20)) == [ids[1], ids[2]])
            #expect(try await spool.load(ids[1])?.nextAttempt == t0 + 20)
            #expect(try await spool.load(ids[0])?.nextAttempt == t0 + 3600)
            #expect(try await spool.release([ids[0]], now: t0 + 30) == [ids[0]])
            let released = try #require(try await spool.load(ids[0]))
            #expect(released.state == .queued && released.nextAttempt == t0 + 30)
            #expect(try await spool.requestBounce([ids[2]]) == [ids[2]])
            #expect(try await spool.load(ids[2])?.bounceRequested == true)
            #expect(try await spool.claimDue(owner: "a", now: t0, lease: 60, limit: 10) == [ids[2]])
            #expect(try await spool.delete([ids[1], "NOSUCHID"]) == [ids[1]])
            #expect(try await spool.load(ids[1]) == nil)
            #expect(try await spool.count() == 2)
        }
    }

    /// `/metrics`' view of the queue: by state, by department, claims by node — the
    /// store's grouped query gives what a full listing would.
    @Test(arguments: StoreKind.allCases) func theBreakdownCountsStatesDepartmentsAndClaims(_ kind: StoreKind) async throws {
        try await kind.with { spool in
            for department in ["finance", "finance", nil] {
                var m = SpoolFixtures.message(id: spool.makeQueueID(), now: t0)
                m.envelope.department = department
                try await spool.insert(m)
            }
            let ids = try await spool.list().map(\.id)
            _ = try await spool.hold([ids[2]])
            #expect(try await spool.claimDue(owner: "relay-a/42/x", now: t0, lease: 60, limit: 1).count == 1)
            let b = try await spool.breakdown()
            #expect(b.byState[.queued] == 2 && b.byState[.held] == 1)
            #expect(b.byDepartment == ["finance": 2, "-": 1])
            #expect(b.claimsByNode == ["relay-a": 1])
        }
    }

    /// A message whose delivery ended is kept, without its content, for `queue show`
    /// (spool.history); `spool.history: 0` keeps none.
    @Test(arguments: StoreKind.allCases) func aFinishedMessageIsKeptInTheHistory(_ kind: StoreKind) async throws {
        try await kind.with { spool in
            var m = SpoolFixtures.message(id: spool.makeQueueID(), to: ["b@example.net", "c@example.net"], now: t0)
            m.envelope.user = "alice"
            m.envelope.trace = [SpoolTraceEntry(phase: "mail", stage: "rate-limit", verdict: "continue", reason: "within limits", milliseconds: 0.5)]
            m.upstream = "outbox"
            try await spool.insert(m)
            #expect(try await spool.history(m.id) == nil)
            #expect(try await spool.claimDue(owner: "a", now: t0, lease: 60, limit: 10) == [m.id])
            var done = m.recipients
            done[0].state = .delivered
            done[0].lastReply = "250 2.0.0 Ok"
            done[0].attempts = 1
            done[1].state = .failed
            done[1].lastReply = "550 5.1.1 no such user"
            done[1].attempts = 1
            #expect(try await spool.recordAttempt(m.id, owner: "a", recipients: done, nextAttempt: nil, lastError: nil))
            #expect(try await spool.load(m.id) == nil)
            let kept = try #require(try await spool.history(m.id))
            #expect(kept.sender == m.sender && kept.createdAt == t0 && kept.size == m.size && kept.attempts == 1)
            #expect(kept.recipients == done && kept.result == "partly bounced")
            #expect(kept.envelope == m.envelope && kept.upstream == "outbox" && kept.acceptedBy == "node-a")
            #expect(try await spool.history("NOSUCHID") == nil)
            #expect(try await spool.count() == 0)
        }
        try await kind.with(keepHistory: 0) { spool in
            let m = SpoolFixtures.message(id: spool.makeQueueID(), now: t0)
            try await spool.insert(m)
            _ = try await spool.claimDue(owner: "a", now: t0, lease: 60, limit: 10)
            var done = m.recipients
            done[0].state = .delivered
            #expect(try await spool.recordAttempt(m.id, owner: "a", recipients: done, nextAttempt: nil, lastError: nil))
            #expect(try await spool.history(m.id) == nil)
        }
        // Retention: an entry older than spool.history is no longer shown (nor kept).
        try await kind.with(keepHistory: 5) { spool in
            let m = SpoolFixtures.message(id: spool.makeQueueID(), now: t0)
            try await spool.insert(m)
            _ = try await spool.claimDue(owner: "a", now: t0, lease: 60, limit: 10)
            var done = m.recipients
            done[0].state = .delivered
            #expect(try await spool.recordAttempt(m.id, owner: "a", recipients: done, nextAttempt: nil, lastError: nil))
            #expect(try await spool.history(m.id) != nil)
            try await Task.sleep(for: .milliseconds(5500))
            #expect(try await spool.history(m.id) == nil, "kept past its retention of 5 s")
        }
    }

    /// `/metrics` sees every group commit of new messages: its time and its size.
    @Test(arguments: StoreKind.allCases.filter { $0 != .memory }) func groupCommitsAreObserved(_ kind: StoreKind) async throws {
        try await kind.with { spool in
            let seen = Mutex<[(Duration, Int)]>([])
            spool.observeCommits { duration, operations in seen.withLock { $0.append((duration, operations)) } }
            for _ in 0..<3 { try await spool.insert(SpoolFixtures.message(id: spool.makeQueueID(), now: t0)) }
            let commits = seen.withLock { $0 }
            #expect(!commits.isEmpty && commits.map(\.1).reduce(0, +) >= 3, "\(commits)")
            #expect(commits.allSatisfy { $0.0 >= .zero && $0.1 >= 1 })
            // A claim poll that finds nothing due writes nothing: no commit to observe.
            let count = commits.count
            let far = t0 - 86_400
            for _ in 0..<3 { #expect(try await spool.claimDue(owner: "idle", now: far, lease: 60, limit: 10).isEmpty) }
            #expect(seen.withLock { $0.count } == count, "idle polls observed: \(seen.withLock { $0 })")
        }
    }

    @Test(arguments: StoreKind.allCases) func queueIDsAreNeverReused(_ kind: StoreKind) async throws {
        try await kind.with { spool in
            let ids = (0..<10_000).map { _ in spool.makeQueueID() }
            #expect(Set(ids).count == ids.count)
        }
    }
}
