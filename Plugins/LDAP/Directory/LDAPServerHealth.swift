/// Which of several directory servers to try, and in what order.
///
/// A server that failed at the connection level (unreachable, timed out, TLS,
/// `busy`/`unavailable`) is marked down for `retryAfter` seconds. While it is
/// down it is tried only after every server that is not; once the time has
/// passed it is tried in its configured place again (the probe is the next real
/// request), and a success marks it up. Shared by all worker threads.
public final class LDAPServerHealth: @unchecked Sendable {
    public let uris: [String]
    public let retryAfter: Double
    private let lock = LDAPConditionLock()
    private var downUntil: [Double]

    public init(uris: [String], retryAfter: Double) {
        self.uris = uris
        self.retryAfter = retryAfter
        self.downUntil = Array(repeating: 0, count: uris.count)
    }

    /// Server indices in the order to try them at `now`: those not marked down
    /// (or whose time is up) in configured order, then the others, soonest due first.
    public func order(now: Double) -> [Int] {
        lock.withLock {
            let up = downUntil.indices.filter { downUntil[$0] <= now }
            let down = downUntil.indices.filter { downUntil[$0] > now }.sorted { downUntil[$0] < downUntil[$1] }
            return up + down
        }
    }

    /// Whether server `index` is marked down at `now`.
    public func isDown(_ index: Int, now: Double) -> Bool {
        lock.withLock { downUntil[index] > now }
    }

    public func markDown(_ index: Int, now: Double) {
        lock.withLock { downUntil[index] = now + retryAfter }
    }

    public func markUp(_ index: Int) {
        lock.withLock { downUntil[index] = 0 }
    }
}
