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

/// Failed sign-ins per user name: after ``limit`` within ``window`` seconds the name
/// is refused (`429`) until the oldest of them is older than the window, so passwords
/// cannot be guessed at bcrypt's speed. Unknown names count too; at most ``maxNames``
/// names are remembered (the stalest go first).
final class SignInThrottle: Sendable {
    static let limit = 5
    static let window: Double = 300
    static let maxNames = 10_000
    private let failures = NIOLockedValueBox<[String: [Double]]>([:])

    /// Counts an attempt for `name` and says whether it may be made: at most ``limit``
    /// within ``window``, counted when they start (so guesses sent at once count too).
    /// A success clears the name (``succeeded(_:)``).
    func attempt(_ name: String, now: Double) -> Bool {
        failures.withLockedValue { all in
            var recent = (all[name] ?? []).filter { now - $0 < Self.window }
            guard recent.count < Self.limit else {
                all[name] = recent
                return false
            }
            if recent.isEmpty, all[name] == nil, all.count >= Self.maxNames,
                let stalest = all.min(by: { ($0.value.last ?? 0) < ($1.value.last ?? 0) })?.key
            {
                all[stalest] = nil
            }
            recent.append(now)
            all[name] = recent
            return true
        }
    }

    func succeeded(_ name: String) {
        _ = failures.withLockedValue { $0.removeValue(forKey: name) }
    }
}
