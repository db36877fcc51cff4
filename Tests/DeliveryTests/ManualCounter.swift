import NIOConcurrencyHelpers

/// A counter transports share across calls.
final class ManualCounter: Sendable {
    private let value = NIOLockedValueBox(0)

    /// Adds one and returns the new count.
    func increment() -> Int {
        value.withLockedValue {
            $0 += 1
            return $0
        }
    }
}
