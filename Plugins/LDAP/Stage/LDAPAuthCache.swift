import TollgatePolicy

/// The login cache and failure throttle of the `ldap` stage: pure state with the
/// time passed in, so tests drive it with an injected clock.
///
/// - Positive entries: per user name, the digest of the password that last worked
///   (see ``CredentialDigester``) and the facts found, until `positiveTTL`.
/// - Negative entries: per user name and password digest, "this failed", until
///   `negativeTTL`. A repeated wrong password does not reach the directory again.
/// - Throttle: a user with `maxFailures` distinct failed guesses within `window`
///   is refused without a check until the oldest of them leaves the window. Attempts
///   refused while throttled are not counted, so the throttle is a rate limit of
///   `maxFailures` guesses per window rather than a lock that an attacker can keep
///   shut forever.
struct LDAPAuthCache {
    enum Lookup: Equatable {
        case miss
        case hit(SessionFacts)
        case negative(reason: String)
        case throttled
    }

    var positiveTTL: Double
    var negativeTTL: Double
    var maxFailures: Int
    var window: Double
    var maxEntries: Int
    /// How long after its expiry a positive entry may still answer while the
    /// directory is unavailable (``staleHit(user:digest:now:)``); 0: never.
    var staleTTL: Double = 0

    private struct Positive {
        var digest: [UInt8]
        var facts: SessionFacts
        var expires: Double
    }

    private struct Negative {
        var reason: String
        var expires: Double
    }

    private var positive: [String: Positive] = [:]
    private var negative: [NegativeKey: Negative] = [:]
    private var failures: [String: [Double]] = [:]

    private struct NegativeKey: Hashable {
        var user: String
        var digest: [UInt8]
    }

    init(positiveTTL: Double, negativeTTL: Double, maxFailures: Int, window: Double, maxEntries: Int = 10_000) {
        self.positiveTTL = positiveTTL
        self.negativeTTL = negativeTTL
        self.maxFailures = maxFailures
        self.window = window
        self.maxEntries = maxEntries
    }

    /// What is known about these credentials at `now`, before asking the directory.
    mutating func lookup(user: String, digest: [UInt8], now: Double) -> Lookup {
        if isThrottled(user: user, now: now) { return .throttled }
        if let entry = positive[user] {
            if entry.expires <= now {
                if entry.expires + staleTTL <= now { positive[user] = nil }
            } else if SHA256.constantTimeEqual(entry.digest, digest) {
                return .hit(entry.facts)
            }
        }
        let key = NegativeKey(user: user, digest: digest)
        if let entry = negative[key] {
            if entry.expires <= now {
                negative[key] = nil
            } else {
                return .negative(reason: entry.reason)
            }
        }
        return .miss
    }

    /// The facts of an expired positive entry for these credentials that expired
    /// less than `staleTTL` ago, with its age past expiry: for logins while every
    /// directory server is down. Throttling still wins.
    func staleHit(user: String, digest: [UInt8], now: Double) -> (facts: SessionFacts, expiredFor: Double)? {
        guard staleTTL > 0, !isThrottled(user: user, now: now), let entry = positive[user] else { return nil }
        guard entry.expires + staleTTL > now, SHA256.constantTimeEqual(entry.digest, digest) else { return nil }
        return (entry.facts, max(0, now - entry.expires))
    }

    /// The directory accepted these credentials.
    mutating func recordSuccess(user: String, digest: [UInt8], facts: SessionFacts, now: Double) {
        failures[user] = nil
        negative[NegativeKey(user: user, digest: digest)] = nil
        guard positiveTTL > 0 else { return }
        positive[user] = Positive(digest: digest, facts: facts, expires: now + positiveTTL)
        if positive.count > maxEntries { positive = Self.pruned(positive, now: now, keep: maxEntries) { [staleTTL] in $0.expires + staleTTL } }
    }

    /// The directory refused these credentials. `isGuess` is false for refusals that
    /// do not reveal anything about the password (e.g. not in the required group).
    mutating func recordFailure(user: String, digest: [UInt8], reason: String, isGuess: Bool, now: Double) {
        if negativeTTL > 0 {
            negative[NegativeKey(user: user, digest: digest)] = Negative(reason: reason, expires: now + negativeTTL)
            if negative.count > maxEntries { negative = Self.pruned(negative, now: now, keep: maxEntries) { $0.expires } }
        }
        if isGuess, maxFailures > 0 {
            var times = failures[user, default: []].filter { $0 > now - window }
            times.append(now)
            if times.count > maxFailures { times.removeFirst(times.count - maxFailures) }
            failures[user] = times
            if failures.count > maxEntries {
                failures = failures.filter { $0.value.contains { $0 > now - window } }
            }
        }
    }

    func isThrottled(user: String, now: Double) -> Bool {
        guard maxFailures > 0, let times = failures[user] else { return false }
        return times.filter { $0 > now - window }.count >= maxFailures
    }

    var counts: (positive: Int, negative: Int, throttled: Int) {
        (positive.count, negative.count, failures.count)
    }

    /// Drops expired entries and, if still too many, those expiring soonest.
    private static func pruned<K, V>(_ map: [K: V], now: Double, keep: Int, expiry: (V) -> Double) -> [K: V] {
        var live = map.filter { expiry($0.value) > now }
        if live.count > keep * 9 / 10 {
            let sorted = live.sorted { expiry($0.value) > expiry($1.value) }.prefix(keep * 9 / 10)
            live = Dictionary(uniqueKeysWithValues: sorted.map { ($0.key, $0.value) })
        }
        return live
    }
}
