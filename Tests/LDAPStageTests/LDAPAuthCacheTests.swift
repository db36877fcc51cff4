import TollgatePolicy
import Testing

@testable import LDAPStage

@Suite("login cache and throttle, with an injected clock")
struct LDAPAuthCacheTests {
    let good: [UInt8] = Array(repeating: 1, count: 32)
    let bad: [UInt8] = Array(repeating: 2, count: 32)
    let worse: [UInt8] = Array(repeating: 3, count: 32)
    let facts = SessionFacts(user: "alice", department: "finance", allowedSenders: ["alice@finance.example.com"])

    @Test("a success is served from the cache until its TTL, and only for the same password")
    func positive() {
        var cache = LDAPAuthCache(positiveTTL: 60, negativeTTL: 10, maxFailures: 3, window: 100)
        #expect(cache.lookup(user: "alice", digest: good, now: 0) == .miss)
        cache.recordSuccess(user: "alice", digest: good, facts: facts, now: 0)
        #expect(cache.lookup(user: "alice", digest: good, now: 59.9) == .hit(facts))
        #expect(cache.lookup(user: "alice", digest: bad, now: 1) == .miss)
        #expect(cache.lookup(user: "bob", digest: good, now: 1) == .miss)
        #expect(cache.lookup(user: "alice", digest: good, now: 60) == .miss)
    }

    @Test("a failure is served from the negative cache until its TTL")
    func negative() {
        var cache = LDAPAuthCache(positiveTTL: 60, negativeTTL: 10, maxFailures: 0, window: 100)
        cache.recordFailure(user: "alice", digest: bad, reason: "wrong password", isGuess: true, now: 0)
        #expect(cache.lookup(user: "alice", digest: bad, now: 9) == .negative(reason: "wrong password"))
        #expect(cache.lookup(user: "alice", digest: good, now: 9) == .miss)
        #expect(cache.lookup(user: "alice", digest: bad, now: 10) == .miss)
    }

    @Test("a success clears the negative entry and the failure count")
    func successClears() {
        var cache = LDAPAuthCache(positiveTTL: 60, negativeTTL: 10, maxFailures: 3, window: 100)
        cache.recordFailure(user: "alice", digest: bad, reason: "x", isGuess: true, now: 0)
        cache.recordFailure(user: "alice", digest: worse, reason: "x", isGuess: true, now: 0)
        cache.recordSuccess(user: "alice", digest: bad, facts: facts, now: 1)
        #expect(cache.lookup(user: "alice", digest: bad, now: 2) == .hit(facts))
        cache.recordFailure(user: "alice", digest: worse, reason: "x", isGuess: true, now: 3)
        #expect(!cache.isThrottled(user: "alice", now: 3))
    }

    @Test("max_failures guesses within the window throttle the user until the oldest leaves the window")
    func throttle() {
        var cache = LDAPAuthCache(positiveTTL: 60, negativeTTL: 0, maxFailures: 3, window: 100)
        cache.recordFailure(user: "alice", digest: bad, reason: "x", isGuess: true, now: 0)
        cache.recordFailure(user: "alice", digest: bad, reason: "x", isGuess: true, now: 10)
        #expect(cache.lookup(user: "alice", digest: good, now: 11) == .miss)
        cache.recordFailure(user: "alice", digest: bad, reason: "x", isGuess: true, now: 20)
        #expect(cache.lookup(user: "alice", digest: good, now: 21) == .throttled)
        #expect(cache.lookup(user: "bob", digest: good, now: 21) == .miss)
        #expect(cache.lookup(user: "alice", digest: good, now: 99) == .throttled)
        #expect(cache.lookup(user: "alice", digest: good, now: 100.5) == .miss)
    }

    @Test("throttling wins over a cached success")
    func throttleBeforeCache() {
        var cache = LDAPAuthCache(positiveTTL: 600, negativeTTL: 0, maxFailures: 2, window: 100)
        cache.recordSuccess(user: "alice", digest: good, facts: facts, now: 0)
        cache.recordFailure(user: "alice", digest: bad, reason: "x", isGuess: true, now: 1)
        cache.recordFailure(user: "alice", digest: worse, reason: "x", isGuess: true, now: 2)
        #expect(cache.lookup(user: "alice", digest: good, now: 3) == .throttled)
    }

    @Test("refusals that are not guesses do not count towards the throttle")
    func notGuesses() {
        var cache = LDAPAuthCache(positiveTTL: 60, negativeTTL: 10, maxFailures: 1, window: 100)
        cache.recordFailure(user: "dave", digest: good, reason: "not in group", isGuess: false, now: 0)
        #expect(cache.lookup(user: "dave", digest: good, now: 1) == .negative(reason: "not in group"))
        #expect(!cache.isThrottled(user: "dave", now: 1))
    }

    @Test("TTL 0 turns caching off")
    func disabled() {
        var cache = LDAPAuthCache(positiveTTL: 0, negativeTTL: 0, maxFailures: 0, window: 100)
        cache.recordSuccess(user: "alice", digest: good, facts: facts, now: 0)
        cache.recordFailure(user: "alice", digest: bad, reason: "x", isGuess: true, now: 0)
        #expect(cache.lookup(user: "alice", digest: good, now: 0) == .miss)
        #expect(cache.lookup(user: "alice", digest: bad, now: 0) == .miss)
        #expect(cache.counts.positive == 0 && cache.counts.negative == 0)
    }

    @Test("the cache stays bounded")
    func bounded() {
        var cache = LDAPAuthCache(positiveTTL: 60, negativeTTL: 60, maxFailures: 5, window: 100, maxEntries: 100)
        for i in 0..<1_000 {
            cache.recordSuccess(user: "user\(i)", digest: good, facts: facts, now: Double(i) / 100)
            cache.recordFailure(user: "other\(i)", digest: bad, reason: "x", isGuess: true, now: Double(i) / 100)
        }
        #expect(cache.counts.positive <= 100)
        #expect(cache.counts.negative <= 100)
        #expect(cache.counts.throttled <= 1_000)
        // The most recent entries survive.
        #expect(cache.lookup(user: "user999", digest: good, now: 10) == .hit(facts))
    }
}
