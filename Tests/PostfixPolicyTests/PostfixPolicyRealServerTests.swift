import PolicyTestSupport
import TestSupport
import Testing
import TollgatePolicy

@testable import PostfixPolicyStage

/// The rules of the postfwd tests (and of the README's example): the action texts
/// use postfwd's `$$attribute` substitution, so each answer shows what postfwd saw.
let postfwdRules = """
    id=R1; recipient==blocked@example.net; action=REJECT postfwd R1 refuses $$recipient from $$client_address
    id=D1; recipient==later@example.net; action=DEFER postfwd D1 defers $$recipient for $$sender
    id=H1; recipient==held@example.net; action=HOLD postfwd H1 holds $$recipient
    id=P1; recipient==tagged@example.net; action=PREPEND X-Postfwd: tagged instance=$$instance

    """

/// The stage against a real postfwd (Debian's postfwd2), started on loopback.
@Suite(.serialized, .timeLimit(.minutes(2))) struct PostfwdStageTests {
    @Test func rejectDeferDunnoAndDown() async throws {
        try #require(ExecutableLookup.find("postfwd2") != nil, "postfwd is not installed (scripts/install-deps.sh)")
        let postfwd = try await Postfwd.start(rules: postfwdRules)
        var stopped = false
        defer { if !stopped { Task { await postfwd.shutdown() } } }
        let stage = try await makeStage([("server", .scalar(postfwd.address)), ("timeout", "5s")])

        let reject = try await stage.evaluate(context(.rcpt, recipient: "blocked@example.net"))
        #expect(reject.verdict == .reject(PolicyReply(code: 554, enhancedCode: "5.7.1", text: "postfwd R1 refuses blocked@example.net from 192.0.2.7")), "\(reject)")
        #expect(reject.reason.contains("said \"REJECT postfwd R1"), "\(reject.reason)")
        let deferred = try await stage.evaluate(context(.rcpt, recipient: "later@example.net"))
        #expect(deferred.verdict == .defer(PolicyReply(code: 450, enhancedCode: "4.7.1", text: "postfwd D1 defers later@example.net for alice@example.com")), "\(deferred)")
        let passed = try await stage.evaluate(context(.rcpt, recipient: "ok@example.net"))
        #expect(passed.verdict == .continue && passed.reason.hasSuffix("said \"DUNNO\""), "\(passed)")
        let held = try await stage.evaluate(context(.rcpt, recipient: "held@example.net"))
        #expect(held.verdict == .continue && held.disposition == .hold(reason: "postfwd H1 holds held@example.net"), "\(held)")
        let tagged = try await stage.evaluate(context(.rcpt, recipient: "tagged@example.net"))
        guard case .insertHeader(0, "X-Postfwd", let value)? = tagged.changes.first else {
            Issue.record("\(tagged)")
            return
        }
        // postfwd saw the instance the stage sent for this transaction.
        #expect(value.hasPrefix("tagged instance=") && value.count > "tagged instance=".count, "\(value)")
        #expect(stage.pool.connectionsOpened == 1, "one kept connection for all five requests")

        // postfwd goes away: the stage throws, so the relay applies on_error.
        await postfwd.shutdown()
        stopped = true
        await #expect(throws: PolicyServerError.self) { try await stage.evaluate(context(.rcpt, recipient: "ok@example.net")) }
        await stage.shutdown()
    }
}

/// The stage against a real policyd-rate-limit, sqlite backend, started on loopback.
@Suite(.serialized, .timeLimit(.minutes(2))) struct PolicydRateLimitStageTests {
    @Test func aLimitPerSenderTakesEffect() async throws {
        try #require(ExecutableLookup.find("policyd-rate-limit") != nil, "policyd-rate-limit is not installed (scripts/install-deps.sh)")
        let policyd = try await PolicydRateLimit.start(limits: [(3, 3600)])
        defer { Task { await policyd.shutdown() } }
        let stage = try await makeStage([("server", .scalar(policyd.address))])
        defer { Task { await stage.shutdown() } }
        var verdicts: [String] = []
        for n in 1...5 {
            let d = try await stage.evaluate(context(.rcpt, session: "S\(n)", recipient: "r\(n)@example.net", sender: "counted@example.com"))
            verdicts.append(d.verdict.name)
            if n == 4 {
                #expect(d.verdict == .defer(PolicyReply(code: 450, enhancedCode: "4.7.1", text: "Rate limit reach, retry later")), "\(d)")
            }
        }
        #expect(verdicts == ["continue", "continue", "continue", "defer", "defer"], "\(verdicts)\n\(policyd.log)")
        // Another sender has its own count.
        #expect(try await stage.evaluate(context(.rcpt, recipient: "x@example.net", sender: "other@example.com")).verdict == .continue)
        // What policyd-rate-limit saw (its debug log): our requests, counted by sender.
        #expect(policyd.log.contains("sender=counted@example.com") && policyd.log.contains("003/003 hit since 3600s"), "\(policyd.log)")
    }
}
