import NIOConcurrencyHelpers

/// A clock the test moves: seconds since 1970, as the spool and the queue runner count.
public final class ManualClock: Sendable {
    private let value: NIOLockedValueBox<Double>

    public init(_ start: Double = 1_700_000_000) {
        value = NIOLockedValueBox(start)
    }

    public var now: Double { value.withLockedValue { $0 } }

    public func advance(by seconds: Double) {
        value.withLockedValue { $0 += seconds }
    }

    /// The clock as the queue runner takes it.
    public var function: @Sendable () -> Double { { self.now } }
}
