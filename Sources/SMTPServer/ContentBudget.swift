import NIOConcurrencyHelpers

/// Memory for message content held by sessions, across all listeners: what DATA and
/// BDAT have read and what waits for its decision or its store. When the budget is
/// used up, new DATA commands get `451 4.3.0` (try again later) instead of `354`,
/// so an overload is answered rather than buffered without bound; transfers already
/// running finish, so the budget can be overrun by what they still bring
/// (`limits.content_memory`, reported as `tollgate_content_buffered_bytes`).
public final class ContentBudget: Sendable {
    public let limit: Int
    private let used = NIOLockedValueBox(0)

    public init(limit: Int) {
        self.limit = limit
    }

    public var bytesInUse: Int { used.withLockedValue { $0 } }

    public var isExhausted: Bool { bytesInUse >= limit }

    func add(_ bytes: Int) {
        used.withLockedValue { $0 += bytes }
    }

    func release(_ bytes: Int) {
        used.withLockedValue { $0 = max(0, $0 - bytes) }
    }
}
