import TollgateConfiguration
import TollgateSpool
import TollgateMetrics
/// When to try again (`delivery.retry`, `delivery.max_lifetime`): pure arithmetic.
public struct RetrySchedule: Sendable {
    public var intervals: [Double]
    public var maxLifetime: Double

    public init(intervals: [Double], maxLifetime: Double) {
        self.intervals = intervals.isEmpty ? [300] : intervals
        self.maxLifetime = maxLifetime
    }

    /// The delay after the `attempt`-th failed attempt (1-based); the last interval repeats.
    public func delay(afterAttempt attempt: Int) -> Double {
        intervals[min(max(attempt, 1), intervals.count) - 1]
    }

    /// Whether a message created at `createdAt` has outlived `max_lifetime` at `now`.
    public func expired(createdAt: Double, now: Double) -> Bool {
        now - createdAt >= maxLifetime
    }
}
