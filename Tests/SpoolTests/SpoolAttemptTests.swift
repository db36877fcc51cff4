import Foundation
import SpoolTestSupport
import Testing
import TollgateConfiguration
import TollgateSpool

/// The record of delivery attempts, the same in every store: written with the
/// recipients' states by the claim's owner only, oldest first, kept with the history
/// entry, gone with a deleted message or an expired entry, and at most
/// `DeliveryAttempt.keptPerMessage` per message.
@Suite struct SpoolAttemptTests {
    let t0 = 1_700_000_000.0

    func attempt(at: Double, host: String?, _ results: [(String, Int, String?, String, DeliveryAttempt.State)]) -> DeliveryAttempt {
        DeliveryAttempt(
            at: at, upstream: "smarthost", host: host, owner: "node-a/1/runner",
            recipients: results.map { DeliveryAttempt.Recipient(address: $0.0, code: $0.1, enhancedStatus: $0.2, text: $0.3, state: $0.4) }
        )
    }

    /// Claims `id` at `now` and records a deferral of every recipient, due at `now + 60`.
    func defer_(_ spool: any Spool, _ id: String, now: Double, owner: String = "a") async throws {
        #expect(try await spool.claimDue(owner: owner, now: now, lease: 60, limit: 1) == [id])
        let m = try #require(try await spool.load(id))
        let a = attempt(at: now, host: nil, m.recipients.map { ($0.address, 451, "4.4.1", "connection refused by mx1.example:25", .deferred) })
        #expect(try await spool.recordAttempt(id, owner: owner, recipients: m.recipients, nextAttempt: now + 60, lastError: "451 4.4.1 connection refused", attempt: a))
    }

    /// Claims `id` at `now` and records its delivery: nothing left to do.
    func finish(_ spool: any Spool, _ id: String, now: Double) async throws {
        #expect(try await spool.claimDue(owner: "a", now: now, lease: 60, limit: 1) == [id])
        var done = try #require(try await spool.load(id)).recipients
        for i in done.indices { done[i].state = .delivered }
        let a = attempt(at: now, host: "mx1.example:25", done.map { ($0.address, 250, "2.0.0", "ok", .delivered) })
        #expect(try await spool.recordAttempt(id, owner: "a", recipients: done, nextAttempt: nil, lastError: nil, attempt: a))
    }

    @Test(arguments: StoreKind.allCases) func attemptsAreKeptInOrderAndWithTheHistory(_ kind: StoreKind) async throws {
        try await kind.with { spool in
            let m = SpoolFixtures.message(id: spool.makeQueueID(), to: ["b@example.net", "c@example.net"], now: t0)
            try await spool.insert(m)
            #expect(try await spool.attempts(m.id).isEmpty)
            // A hostile upstream's reply: long, with line breaks and a terminal escape.
            let hostile = "try later\r\n550 injected\u{1b}[2J" + String(repeating: "é", count: 5000)
            #expect(try await spool.claimDue(owner: "a", now: t0, lease: 60, limit: 1) == [m.id])
            var first = attempt(at: t0, host: "mx1.example:25", [
                ("b@example.net", 250, "2.0.0", "ok", .delivered), ("c@example.net", 451, "4.7.1", hostile, .deferred),
            ])
            var recipients = m.recipients
            recipients[0].state = .delivered
            #expect(try await spool.recordAttempt(m.id, owner: "a", recipients: recipients, nextAttempt: t0 + 60, lastError: "451 4.7.1 try later", attempt: first))
            first.number = 1
            let stored = try await spool.attempts(m.id)
            #expect(stored == [first])
            let text = try #require(stored.first?.recipients.last?.text)
            #expect(text.utf8.count <= DeliveryAttempt.maximumTextBytes && text.hasPrefix("try later  550 injected [2Jéé") && text.hasSuffix("…"), "\(text)")
            #expect(!text.contains { $0.isNewline || $0 == "\u{1b}" })

            #expect(try await spool.claimDue(owner: "a", now: t0 + 60, lease: 60, limit: 1) == [m.id])
            recipients[1].state = .delivered
            var second = attempt(at: t0 + 60, host: "mx2.example:25", [("c@example.net", 250, "2.0.0", "ok: queued as X", .delivered)])
            #expect(try await spool.recordAttempt(m.id, owner: "a", recipients: recipients, nextAttempt: nil, lastError: nil, attempt: second))
            second.number = 2
            // Delivered: no longer queued, its attempts shown with its history entry.
            #expect(try await spool.load(m.id) == nil)
            #expect(try await spool.history(m.id)?.attempts == 2)
            #expect(try await spool.attempts(m.id) == [first, second])
            #expect(try await spool.attempts("NOSUCHID").isEmpty)
        }
    }

    /// A claimer whose claim is gone (expired and taken, or never held) records
    /// nothing, not even in the record of attempts.
    @Test(arguments: StoreKind.allCases) func anAttemptByAnotherOwnerIsNotRecorded(_ kind: StoreKind) async throws {
        try await kind.with { spool in
            let m = SpoolFixtures.message(id: spool.makeQueueID(), now: t0)
            try await spool.insert(m)
            let late = attempt(at: t0, host: "mx1.example:25", [("bob@example.net", 250, "2.0.0", "ok", .delivered)])
            #expect(try await !spool.recordAttempt(m.id, owner: "a", recipients: m.recipients, nextAttempt: t0 + 60, lastError: nil, attempt: late))
            #expect(try await spool.claimDue(owner: "a", now: t0, lease: 60, limit: 1) == [m.id])
            #expect(try await spool.claimDue(owner: "b", now: t0 + 61, lease: 60, limit: 1) == [m.id])
            #expect(try await !spool.recordAttempt(m.id, owner: "a", recipients: m.recipients, nextAttempt: nil, lastError: nil, attempt: late))
            #expect(try await spool.attempts(m.id).isEmpty)
            #expect(try await kind.storedAttempts(spool) == 0)
            #expect(try await spool.load(m.id)?.attempts == 0)
        }
    }

    /// `queue delete` leaves nothing of the message: its attempts go too, from the
    /// store and not merely from view. Another message's stay.
    @Test(arguments: StoreKind.allCases) func aDeletedMessageLeavesNoAttempts(_ kind: StoreKind) async throws {
        try await kind.with { spool in
            let gone = SpoolFixtures.message(id: spool.makeQueueID(), now: t0)
            var kept = SpoolFixtures.message(id: spool.makeQueueID(), now: t0)
            kept.nextAttempt = t0 + 1000
            try await spool.insert(gone)
            try await spool.insert(kept)
            try await defer_(spool, gone.id, now: t0)
            try await defer_(spool, gone.id, now: t0 + 60)
            // Held, so that the next claim takes the other message.
            #expect(try await spool.hold([gone.id]) == [gone.id])
            try await defer_(spool, kept.id, now: t0 + 1000)
            #expect(try await spool.attempts(gone.id).map(\.number) == [1, 2])
            #expect(try await spool.delete([gone.id]) == [gone.id])
            #expect(try await spool.attempts(gone.id).isEmpty)
            #expect(try await spool.attempts(kept.id).count == 1)
            #expect(try await kind.storedAttempts(spool) == 1)
        }
    }

    /// The attempts of a finished message last as long as its history entry: hidden
    /// when it expires, removed when the store prunes it; none at all with
    /// `spool.history: 0`.
    @Test(arguments: StoreKind.allCases) func attemptsArePrunedWithTheHistory(_ kind: StoreKind) async throws {
        try await kind.with(keepHistory: 5) { spool in
            let old = SpoolFixtures.message(id: spool.makeQueueID(), now: t0)
            try await spool.insert(old)
            try await defer_(spool, old.id, now: t0)
            try await finish(spool, old.id, now: t0 + 60)
            #expect(try await spool.attempts(old.id).count == 2)
            try await Task.sleep(for: .milliseconds(5500))
            #expect(try await spool.history(old.id) == nil)
            #expect(try await spool.attempts(old.id).isEmpty, "shown past its history's retention of 5 s")
            // The next message to finish prunes the expired entry, and its attempts with it.
            let next = SpoolFixtures.message(id: spool.makeQueueID(), now: t0)
            try await spool.insert(next)
            try await finish(spool, next.id, now: t0 + 120)
            #expect(try await spool.attempts(next.id).count == 1)
            #expect(try await kind.storedAttempts(spool) == 1)
        }
        try await kind.with(keepHistory: 0) { spool in
            let m = SpoolFixtures.message(id: spool.makeQueueID(), now: t0)
            try await spool.insert(m)
            try await defer_(spool, m.id, now: t0)
            #expect(try await spool.attempts(m.id).count == 1)
            try await finish(spool, m.id, now: t0 + 60)
            #expect(try await spool.attempts(m.id).isEmpty)
            #expect(try await kind.storedAttempts(spool) == 0)
        }
    }

    /// A message deferred again and again keeps only its last attempts, numbered as
    /// the message counts them.
    @Test(arguments: StoreKind.allCases) func attemptsAreCappedPerMessage(_ kind: StoreKind) async throws {
        try await kind.with { spool in
            let m = SpoolFixtures.message(id: spool.makeQueueID(), now: t0)
            try await spool.insert(m)
            let made = DeliveryAttempt.keptPerMessage + 5
            for n in 0..<made { try await defer_(spool, m.id, now: t0 + Double(n) * 60) }
            let kept = try await spool.attempts(m.id)
            #expect(kept.map(\.number) == Array(6...made))
            #expect(kept.last?.at == t0 + Double(made - 1) * 60)
            #expect(try await kind.storedAttempts(spool) == DeliveryAttempt.keptPerMessage)
            #expect(try await spool.load(m.id)?.attempts == made)
        }
    }
}

/// The bounds on what a remote server's reply puts in the store.
@Suite struct DeliveryAttemptTests {
    @Test func aReplyIsKeptOnOneBoundedLine() {
        let r = DeliveryAttempt.Recipient(address: "b@example.net", code: 451, enhancedStatus: "4.7.1", text: "first\r\nsecond\u{2028}third", state: .deferred)
        #expect(r.text == "first  second third" && r.reply == "451 4.7.1 first  second third")
        let long = DeliveryAttempt.Recipient(address: "b@example.net", code: 550, enhancedStatus: String(repeating: "5", count: 100), text: String(repeating: "€", count: 400), state: .failed)
        // Cut at a character boundary: 169 three-octet euros and the ellipsis, 510 octets.
        #expect(long.text == String(repeating: "€", count: 169) + "…", "\(long.text.utf8.count)")
        #expect(long.enhancedStatus?.utf8.count ?? 0 <= 32)
        let short = DeliveryAttempt.Recipient(address: "b@example.net", code: 250, enhancedStatus: nil, text: "", state: .delivered)
        #expect(short.reply == "250")
    }
}
