import Testing
import PolicyTestSupport
import TollgatePolicy

@testable import RateLimitStage

/// The finance department's section as in SPEC §5.
let financeSection: Y = [
    ["key": "user", "messages": 2, "per": "1h"],
    ["key": "department", "recipients": 5, "per": "1d"],
]

func makeStage(_ limits: [Y], sections: [String: Y] = [:], counters: MemoryCounters = MemoryCounters()) async throws -> (RateLimitStage, TestHost) {
    let host = TestHost(sections: sections.mapValues { $0.settings(file: "/etc/tollgate/policies/dept.yaml", line: 3) }, counters: counters)
    let settings: [(String, Y)] = [("limits", .list(limits))]
    let stage = try await RateLimitFactory().makeStage(settings: Y.map(settings).settings(), host: host)
    return (try #require(stage as? RateLimitStage), host)
}

/// A context at `phase` for a session of `user` (authenticated unless nil).
func context(
    _ phase: PolicyPhase, user: String? = "alice", department: String? = nil, sender: String = "alice@example.com",
    client: String = "192.0.2.10", recipients: [String] = [], recipient: String? = nil, size: Int? = nil, dryRun: Bool = false,
    session: String = "S1"
) -> PolicyContext {
    PolicyContext(
        phase: phase, sessionID: session, listener: "submission", clientAddress: client, tls: true,
        authenticatedUser: user, sender: sender, recipients: recipients, recipient: recipient, messageSize: size,
        facts: SessionFacts(user: user, department: department), dryRun: dryRun
    )
}

/// Runs one transaction through mail, rcpt and data and, as the relay does, commits
/// its counter reservations when every phase continued (the message is queued) and
/// releases them when one refused. Returns the first refusing decision, or nil when the
/// message was accepted.
@discardableResult
func send(
    _ stage: RateLimitStage, user: String? = "alice", department: String? = nil, sender: String = "alice@example.com",
    client: String = "192.0.2.10", to recipients: [String] = ["bob@example.net"], size: Int = 1000, dryRun: Bool = false,
    session: String = "S1"
) async throws -> PolicyDecision? {
    func make(_ phase: PolicyPhase, _ accepted: [String], _ recipient: String? = nil, _ size: Int? = nil) -> PolicyContext {
        context(phase, user: user, department: department, sender: sender, client: client, recipients: accepted, recipient: recipient, size: size, dryRun: dryRun, session: session)
    }
    let counters = try #require(stage.host as? TestHost).memoryCounters
    func refused(_ decision: PolicyDecision) async -> PolicyDecision {
        await counters.release(sessionID: session)
        return decision
    }
    let mail = try await stage.evaluate(make(.mail, []))
    if mail.verdict != .continue { return await refused(mail) }
    var accepted: [String] = []
    for recipient in recipients {
        let decision = try await stage.evaluate(make(.rcpt, accepted, recipient))
        if decision.verdict != .continue { return await refused(decision) }
        accepted.append(recipient)
    }
    let data = try await stage.evaluate(make(.data, accepted, nil, size))
    if data.verdict != .continue { return await refused(data) }
    if !dryRun { await counters.commit(sessionID: session, now: stage.host.now()) }
    return nil
}

/// What the counter of `key`'s `measure` holds now.
func held(_ stage: RateLimitStage, _ key: CounterKey, _ measure: RateLimitMeasure) async throws -> Int {
    let id = key.counter(measure)
    return try await stage.host.counters.usage([id], now: stage.host.now())[id] ?? 0
}

func isDeferred(_ decision: PolicyDecision?, _ code: Int, _ enhanced: String = "4.7.1") -> Bool {
    guard case .defer(let reply) = decision?.verdict else { return false }
    return reply.code == code && reply.enhancedCode == enhanced
}

@Suite("rate-limit: messages")
struct MessageLimitTests {
    @Test("the limit is hit after exactly N messages and released after the window")
    func exactlyN() async throws {
        let (stage, host) = try await makeStage([["key": "user", "messages": 3, "per": "1h"]])
        for n in 1...3 {
            #expect(try await send(stage) == nil, "message \(n)")
            host.advance(60)
        }
        let refused = try await stage.evaluate(context(.mail))
        #expect(refused.verdict == .defer(PolicyReply(code: 451, enhancedCode: "4.7.1", text: "Rate limit exceeded: at most 3 messages per 1h for user alice, try again later")))
        #expect(refused.reason == "user alice: 3 used, 1 more would exceed 3 messages per 1h (settings)")
        #expect(host.logs.contains { $0.hasPrefix("notice rate limit exceeded") })
        // The first message was accepted at t0; now is t0 + 3m. It leaves the window at t0 + 1h.
        host.advance(3600 - 180 - 1)
        #expect(isDeferred(try await send(stage), 451))
        host.advance(1)
        let released = try await stage.evaluate(context(.mail))
        #expect(released.verdict == .continue)
        #expect(released.reason == "within limits: user alice 2+1 of 3 messages per 1h")
        #expect(try await send(stage) == nil)
        #expect(isDeferred(try await send(stage), 451))
    }

    @Test("the window slides: no burst of 2N across a boundary")
    func sliding() async throws {
        let (stage, host) = try await makeStage([["key": "client", "messages": 2, "per": "10m"]])
        try await send(stage, client: "192.0.2.1")
        host.advance(9 * 60)
        try await send(stage, client: "192.0.2.1")
        host.advance(59)
        #expect(isDeferred(try await send(stage, client: "192.0.2.1"), 451))
        host.advance(1)  // the first left the window; the second still counts
        #expect(try await send(stage, client: "192.0.2.1") == nil)
        #expect(isDeferred(try await send(stage, client: "192.0.2.1"), 451))
    }

    @Test("each key value has its own counter; keys that do not apply are skipped")
    func keys() async throws {
        let (stage, _) = try await makeStage([
            ["key": "user", "messages": 1, "per": "1h"],
            ["key": "sender", "messages": 2, "per": "1h"],
        ])
        #expect(try await send(stage, user: "alice", sender: "shared@example.com") == nil)
        #expect(isDeferred(try await send(stage, user: "Alice", sender: "other@example.com"), 451))  // users compare lower-cased
        #expect(try await send(stage, user: "bob", sender: "SHARED@example.com") == nil)
        let sender = try await send(stage, user: "carol", sender: "shared@example.com")
        #expect(isDeferred(sender, 451))
        #expect(sender?.reason.hasPrefix("sender shared@example.com: 2 used") == true)
        // Unauthenticated, null sender: neither the user nor the sender limit applies.
        for _ in 1...3 {
            #expect(try await send(stage, user: nil, sender: "") == nil)
        }
        #expect(try await stage.evaluate(context(.mail, user: nil, sender: "")).reason == "no rate limit applies")
    }

    @Test("phases other than mail, rcpt and data continue")
    func otherPhases() async throws {
        let (stage, _) = try await makeStage([["key": "client", "messages": 1, "per": "1h"]])
        try await send(stage)
        for phase in [PolicyPhase.connect, .helo, .starttls, .auth] {
            #expect(try await stage.evaluate(context(phase)).verdict == .continue)
        }
        #expect(isDeferred(try await stage.evaluate(context(.mail)), 451))
    }
}

@Suite("rate-limit: recipients and bytes")
struct RecipientAndByteLimitTests {
    @Test("recipients: each recipient beyond the limit gets 452 4.7.1")
    func recipients() async throws {
        let (stage, host) = try await makeStage([["key": "user", "recipients": 5, "per": "1h"]])
        #expect(try await send(stage, to: ["a@x.test", "b@x.test", "c@x.test"]) == nil)
        // 3 used: a new transaction may add two more recipients.
        #expect(try await stage.evaluate(context(.mail)).verdict == .continue)
        #expect(try await stage.evaluate(context(.rcpt, recipient: "d@x.test")).verdict == .continue)
        #expect(try await stage.evaluate(context(.rcpt, recipients: ["d@x.test"], recipient: "e@x.test")).verdict == .continue)
        let sixth = try await stage.evaluate(context(.rcpt, recipients: ["d@x.test", "e@x.test"], recipient: "f@x.test"))
        #expect(sixth.verdict == .defer(PolicyReply(code: 452, enhancedCode: "4.7.1", text: "Rate limit exceeded: at most 5 recipients per 1h for user alice, try again later")))
        #expect(sixth.reason == "user alice: 3 used, 3 more would exceed 5 recipients per 1h (settings)")
        // send() stops at the first refused recipient.
        #expect(isDeferred(try await send(stage, to: ["d@x.test", "e@x.test", "f@x.test"]), 452))
        host.advance(3600)
        #expect(try await send(stage, to: ["a@x.test", "b@x.test", "c@x.test", "d@x.test", "e@x.test"]) == nil)
        #expect(isDeferred(try await send(stage, to: ["f@x.test"]), 452))
    }

    @Test("bytes: checked at data with the message size")
    func bytes() async throws {
        let (stage, host) = try await makeStage([["key": "sender", "bytes": "1KB", "per": "1h"]])
        #expect(try await send(stage, size: 600) == nil)
        let ok = try await stage.evaluate(context(.data, recipients: ["b@x.test"], size: 424))
        #expect(ok.verdict == .continue)
        let over = try await stage.evaluate(context(.data, recipients: ["b@x.test"], size: 425))
        #expect(over.verdict == .defer(PolicyReply(code: 451, enhancedCode: "4.7.1", text: "Rate limit exceeded: at most 1KB per 1h for sender alice@example.com, try again later")))
        #expect(isDeferred(try await send(stage, size: 500), 451))
        // Larger than the whole budget: it could never pass.
        let huge = try await stage.evaluate(context(.data, recipients: ["b@x.test"], size: 2000))
        #expect(huge.verdict == .reject(PolicyReply(code: 552, enhancedCode: "5.3.4", text: "Message too large for the rate limit of 1KB per 1h for sender alice@example.com")))
        host.advance(3600)
        #expect(try await send(stage, size: 1024) == nil)
    }

    @Test("concurrent transactions reserve: together they cannot pass a limit")
    func concurrentReservations() async throws {
        let (stage, host) = try await makeStage([["key": "client", "messages": 1, "per": "1h"]])
        // Session A passes MAIL and holds the one message the client may send; session
        // B, at the same time, is deferred at MAIL rather than at DATA or never.
        #expect(try await stage.evaluate(context(.mail, user: "a", session: "A")).verdict == .continue)
        let b = try await stage.evaluate(context(.mail, user: "b", session: "B"))
        #expect(isDeferred(b, 451))
        #expect(b.reason == "client 192.0.2.10: 1 used, 1 more would exceed 1 messages per 1h (settings)")
        // A's transaction fails (RSET, a refusal by a later stage): the relay releases it.
        await host.memoryCounters.release(sessionID: "A")
        #expect(try await send(stage, user: "b", session: "B") == nil)
        #expect(isDeferred(try await send(stage, user: "a", session: "A"), 451))
        // Data re-checks with the session's own reservation not counted twice.
        let (other, _) = try await makeStage([["key": "client", "messages": 2, "per": "1h"]])
        #expect(try await other.evaluate(context(.mail, session: "C")).verdict == .continue)
        #expect(try await other.evaluate(context(.data, recipients: ["x@y.test"], size: 10, session: "C")).reason.hasPrefix("within limits: client 192.0.2.10 0+1 of 2 messages"))
    }
}

@Suite("rate-limit: department policies")
struct DepartmentLimitTests {
    @Test("a department's rules come from its policy section")
    func departmentRules() async throws {
        let (stage, _) = try await makeStage([["key": "user", "messages": 100, "per": "1h"]], sections: ["finance": financeSection])
        // finance: 2 messages per user per hour (replacing the stage's 100).
        #expect(try await send(stage, user: "alice", department: "finance") == nil)
        #expect(try await send(stage, user: "alice", department: "finance") == nil)
        let third = try await send(stage, user: "alice", department: "finance")
        #expect(isDeferred(third, 451))
        #expect(third?.reason == "user alice: 2 used, 1 more would exceed 2 messages per 1h (department finance)")
        // A user in another department, or none, has the stage's limit.
        for _ in 1...5 {
            #expect(try await send(stage, user: "sam", department: "sales") == nil)
            #expect(try await send(stage, user: "nina", department: nil) == nil)
        }
    }

    @Test("a department key counts every member together")
    func departmentKey() async throws {
        let (stage, _) = try await makeStage([], sections: ["finance": financeSection])
        #expect(try await send(stage, user: "alice", department: "finance", to: ["1@x.test", "2@x.test"]) == nil)
        #expect(try await send(stage, user: "bob", department: "finance", to: ["3@x.test", "4@x.test"]) == nil)
        let fifth = try await stage.evaluate(context(.rcpt, user: "carol", department: "finance", recipient: "5@x.test"))
        #expect(fifth.verdict == .continue)
        let sixth = try await stage.evaluate(context(.rcpt, user: "carol", department: "finance", recipients: ["5@x.test"], recipient: "6@x.test"))
        #expect(isDeferred(sixth, 452))
        #expect(sixth.reason == "department finance: 4 used, 2 more would exceed 5 recipients per 1d (department finance)")
    }

    @Test("a department may raise a stage limit; the stage's other limits still apply")
    func replaceOnlySameKeyAndMeasure() async throws {
        let (stage, _) = try await makeStage(
            [["key": "user", "messages": 1, "per": "1h"], ["key": "client", "messages": 3, "per": "1h"]],
            sections: ["marketing": [["key": "user", "messages": 10, "per": "1h"]], "legal": ["limits": [["key": "user", "recipients": 1, "per": "1h"]]]]
        )
        for _ in 1...3 {
            #expect(try await send(stage, user: "mia", department: "marketing", client: "192.0.2.50") == nil)
        }
        #expect(isDeferred(try await send(stage, user: "mia", department: "marketing", client: "192.0.2.50"), 451))  // client limit
        #expect(try await send(stage, user: "mia", department: "marketing", client: "192.0.2.51") == nil)
        // legal (map form with `limits:`): recipients replace nothing, messages 1 still applies.
        #expect(try await send(stage, user: "lee", department: "legal", client: "192.0.2.60") == nil)
        #expect(isDeferred(try await send(stage, user: "lee", department: "legal", client: "192.0.2.61"), 451))
    }
}

@Suite("rate-limit: what counts")
struct CountingTests {
    @Test("evaluating alone, refused mail and dry runs never count")
    func onlyAccepted() async throws {
        let (stage, _) = try await makeStage([
            ["key": "user", "messages": 2, "per": "1h"],
            ["key": "user", "recipients": 100, "per": "1h"],
        ])
        // Evaluated many times, never accepted (e.g. refused by a later stage or at DATA).
        for _ in 1...10 {
            #expect(try await stage.evaluate(context(.mail)).verdict == .continue)
            #expect(try await stage.evaluate(context(.rcpt, recipient: "b@x.test")).verdict == .continue)
            #expect(try await stage.evaluate(context(.data, recipients: ["b@x.test"], size: 100)).verdict == .continue)
        }
        // Dry runs (`tollgate explain`), even if reported as accepted.
        for _ in 1...5 {
            #expect(try await send(stage, dryRun: true) == nil)
        }
        // The transaction above was never committed: the relay releases it.
        await try #require(stage.host as? TestHost).memoryCounters.release(sessionID: "S1")
        #expect(await try #require(stage.host as? TestHost).memoryCounters.count == 0)
        #expect(try await send(stage) == nil)
        #expect(try await send(stage) == nil)
        // Refused by this stage: not counted either, so the count stays at 2.
        for _ in 1...3 {
            #expect(isDeferred(try await send(stage), 451))
        }
        let key = CounterKey(key: .user, value: "alice", window: 3600)
        #expect(try await held(stage, key, .messages) == 2)
        #expect(try await held(stage, key, .recipients) == 2)
    }
}

@Suite("rate-limit: the relay's counters")
struct MemoryTests {
    @Test("idle counters expire")
    func idleExpire() async throws {
        let counters = MemoryCounters()
        let (stage, host) = try await makeStage([["key": "sender", "messages": 5, "per": "10m"]], counters: counters)
        for n in 0..<50 { try await send(stage, sender: "s\(n)@example.com") }
        #expect(await counters.count == 50)
        host.advance(600)
        try await send(stage, sender: "late@example.com")
        #expect(await counters.count == 1)
    }

    @Test("at most maxCounters counters; the least recently used go first")
    func maxCounters() async throws {
        let counters = MemoryCounters(maxCounters: 100)
        let (stage, host) = try await makeStage([["key": "client", "messages": 1, "per": "1d"]], counters: counters)
        for n in 0..<101 {
            try await send(stage, client: "10.0.0.\(n)")
            host.advance(1)
        }
        #expect(await counters.count == 90)
        #expect(await counters.evicted == 11)
        // The oldest were dropped (they start afresh); the newest still count.
        #expect(try await send(stage, client: "10.0.0.0") == nil)
        #expect(isDeferred(try await send(stage, client: "10.0.0.100"), 451))
    }

    @Test("a busy counter keeps a bounded log that never under-counts")
    func boundedLog() async throws {
        let counters = MemoryCounters(maxCounters: 10, maxEntriesPerCounter: 8)
        let id = CounterID(name: "rate-limit/user/messages/alice", window: 100)
        for t in 0..<40 {
            #expect(await counters.reserve([CounterCharge(id, amount: 1, limit: 1000)], sessionID: "S", now: Double(t)) == .reserved(used: [id: t]))
            await counters.commit(sessionID: "S", now: Double(t))
        }
        #expect(await counters.entryCount(id) <= 8)
        // Exactly 40 in the window at t = 40.
        #expect(await counters.usage([id], now: 40)[id] == 40)
        // Merged entries carry the later time, so they may count a little longer, never shorter.
        let later = await counters.usage([id], now: 120)[id]!
        #expect(later >= 19)  // 20…39 are certainly still inside (t > 20)
        #expect(await counters.usage([id], now: 140)[id] == 0)
    }

    @Test("reservations: all or nothing, replaced per transaction, and they expire")
    func reservations() async throws {
        let counters = MemoryCounters()
        let a = CounterID(name: "a", window: 3600)
        let b = CounterID(name: "b", window: 3600)
        // b does not fit: nothing is reserved, a included.
        #expect(await counters.reserve([CounterCharge(a, amount: 1, limit: 5), CounterCharge(b, amount: 3, limit: 2)], sessionID: "S", now: 0) == .exceeded(b, used: 0))
        #expect(await counters.usage([a, b], now: 0) == [a: 0, b: 0])
        // Reserving again replaces the transaction's amount.
        _ = await counters.reserve([CounterCharge(a, amount: 1, limit: 5)], sessionID: "S", now: 0)
        _ = await counters.reserve([CounterCharge(a, amount: 4, limit: 5)], sessionID: "S", now: 1)
        #expect(await counters.usage([a], now: 1)[a] == 4)
        #expect(await counters.reserve([CounterCharge(a, amount: 2, limit: 5)], sessionID: "T", now: 1) == .exceeded(a, used: 4))
        // A reservation never committed nor released stops counting.
        #expect(await counters.usage([a], now: MemoryCounters.reservationLifetime + 1)[a] == 0)
        await counters.commit(sessionID: "S", now: 2)
        #expect(await counters.usage([a], now: 3)[a] == 4)
    }
}
