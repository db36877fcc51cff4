/// Which messages ``Spool/list(filter:page:)`` returns; nil fields match everything,
/// and the fields given must all match.
public struct QueueFilter: Sendable, Hashable {
    public var state: QueueState?
    /// The authenticated user, exact, case-insensitive.
    public var user: String?
    /// The department, exact, case-insensitive.
    public var department: String?
    /// The envelope sender, exact, case-insensitive (`""`: the null sender).
    public var sender: String?
    /// One of the pending recipients, exact, case-insensitive.
    public var recipient: String?
    /// The upstream the message goes to, by name, exact: its route's, or — for a
    /// message without a route of its own — ``defaultUpstream`` when it names the same.
    public var upstream: String?
    /// Where messages without a route go (`delivery.default_upstream`): when
    /// ``upstream`` names it, those messages match too.
    public var defaultUpstream: String?
    /// The node that accepted the message, or the node holding its delivery claim
    /// (a claim owner is `node/pid/tag`; an owner equal to it matches too), exact.
    public var node: String?

    public init(
        state: QueueState? = nil, user: String? = nil, department: String? = nil, sender: String? = nil, recipient: String? = nil,
        upstream: String? = nil, defaultUpstream: String? = nil, node: String? = nil
    ) {
        self.state = state
        self.user = user
        self.department = department
        self.sender = sender
        self.recipient = recipient
        self.upstream = upstream
        self.defaultUpstream = defaultUpstream
        self.node = node
    }

    /// Whether ``upstream`` names the default, so that unrouted messages match it too.
    public var upstreamIncludesUnrouted: Bool { upstream != nil && upstream == defaultUpstream }

    /// No field given: every message matches.
    public var isEmpty: Bool {
        state == nil && user == nil && department == nil && sender == nil && recipient == nil && upstream == nil && node == nil
    }
}

/// One page of a listing: `limit` messages after the first `offset`.
public struct QueuePage: Sendable, Hashable {
    /// At least 0.
    public var offset: Int
    /// 1 to ``maximumLimit``.
    public var limit: Int

    /// The largest page a store returns.
    public static let maximumLimit = 1000

    /// Out-of-range values are clamped: a negative offset to 0, the limit to 1...1000.
    public init(offset: Int = 0, limit: Int = 100) {
        self.offset = max(0, offset)
        self.limit = min(max(1, limit), Self.maximumLimit)
    }
}

/// What ``Spool/list(filter:page:)`` returns.
public struct QueueListPage: Sendable {
    /// The page's messages, oldest first (by creation time, then id).
    public var rows: [QueueListing]
    /// How many messages match the filter, over all pages.
    public var total: Int

    public init(rows: [QueueListing], total: Int) {
        self.rows = rows
        self.total = total
    }
}
