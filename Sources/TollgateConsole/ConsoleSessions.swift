import NIOConcurrencyHelpers

/// Signed-in administrators: an opaque random token in a cookie names a session held
/// here (nothing about the user is in the cookie), with its own CSRF token that every
/// form carries. A session ends at sign-out, after `timeout` without use, or when its
/// user is no longer in the users file (reload).
final class ConsoleSessions: Sendable {
    struct Session: Sendable {
        var user: String
        /// The user's hash when they signed in: a changed password ends the session.
        var hash: String
        var csrf: String
        var lastUsed: Double
    }

    private let sessions = NIOLockedValueBox<[String: Session]>([:])
    let timeout: Double
    /// Sessions kept at most; the oldest is dropped past it.
    static let limit = 1000

    init(timeout: Double) {
        self.timeout = timeout
    }

    /// 32 random octets from the system's CSPRNG, as hex.
    static func token() -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for _ in 0..<32 {
            let byte = UInt8.random(in: 0...255, using: &generator)
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Starts a session for `user`; returns its cookie token.
    func start(user: String, hash: String = "", now: Double) -> String {
        let token = Self.token()
        sessions.withLockedValue { all in
            all = all.filter { now - $0.value.lastUsed < timeout }
            if all.count >= Self.limit, let oldest = all.min(by: { $0.value.lastUsed < $1.value.lastUsed })?.key { all[oldest] = nil }
            all[token] = Session(user: user, hash: hash, csrf: Self.token(), lastUsed: now)
        }
        return token
    }

    /// The live session of `token`, touched; nil if none or expired, or if `isUser`
    /// no longer knows its user with the hash it signed in with.
    func session(_ token: String?, now: Double, isUser: (_ user: String, _ hash: String) -> Bool) -> Session? {
        guard let token, !token.isEmpty else { return nil }
        return sessions.withLockedValue { all -> Session? in
            guard var s = all[token] else { return nil }
            guard now - s.lastUsed < timeout, isUser(s.user, s.hash) else {
                all[token] = nil
                return nil
            }
            s.lastUsed = now
            all[token] = s
            return s
        }
    }

    func end(_ token: String?) {
        guard let token else { return }
        _ = sessions.withLockedValue { $0.removeValue(forKey: token) }
    }

    var count: Int { sessions.withLockedValue { $0.count } }

    /// Constant-time comparison of two tokens.
    static func same(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        guard x.count == y.count, !x.isEmpty else { return false }
        var difference: UInt8 = 0
        for i in x.indices { difference |= x[i] ^ y[i] }
        return difference == 0
    }
}

/// Sign-in attempts, counted when they start (so guesses sent at once count too), by
/// client address: at most ``limit`` for one user name from one address within
/// ``window`` seconds, and at most ``addressLimit`` from one address for all names
/// together; past either the attempt is refused (`429`) until the oldest has aged out.
/// Passwords cannot be guessed at bcrypt's speed, and — because a name is limited per
/// address — nobody can lock an administrator out from elsewhere by failing in their
/// name. (A guesser with many addresses is still held to two bcrypt checks at a time,
/// ``ConsoleServer/maxVerifying``.) At most ``maxKeys`` counters are kept, the stalest
/// go first; a success clears that name's counter for that address.
final class SignInThrottle: Sendable {
    static let limit = 5
    static let addressLimit = 20
    static let window: Double = 300
    static let maxKeys = 10_000
    private let attempts = NIOLockedValueBox<[String: [Double]]>([:])

    /// Counts an attempt for `name` from `address` and says whether it may be made.
    func attempt(_ name: String, from address: String, now: Double) -> Bool {
        attempts.withLockedValue { all in
            let pair = Self.key(name, address), whole = Self.key(nil, address)
            var byName = (all[pair] ?? []).filter { now - $0 < Self.window }
            var byAddress = (all[whole] ?? []).filter { now - $0 < Self.window }
            guard byName.count < Self.limit, byAddress.count < Self.addressLimit else {
                all[pair] = byName
                all[whole] = byAddress
                return false
            }
            // Room for the two counters this attempt may add.
            while all.count > Self.maxKeys - 2, let stalest = all.min(by: { ($0.value.last ?? 0) < ($1.value.last ?? 0) })?.key {
                all[stalest] = nil
            }
            byName.append(now)
            byAddress.append(now)
            all[pair] = byName
            all[whole] = byAddress
            return true
        }
    }

    /// A success from `address` clears `name`'s counter there (the address's total stays).
    func succeeded(_ name: String, from address: String) {
        _ = attempts.withLockedValue { $0.removeValue(forKey: Self.key(name, address)) }
    }

    private static func key(_ name: String?, _ address: String) -> String {
        name.map { "\(address) \($0)" } ?? address
    }
}
