import TollgateSpool

/// The queue page's filters, from its query string.
struct ConsoleFilter: Sendable, Hashable {
    var state: QueueState?
    var user: String?
    var department: String?
    var sender: String?
    var recipient: String?
    var upstream: String?
    /// Not a filter: where messages without a route go, so that `upstream` naming it
    /// lists them too, and the queue's column names it.
    var defaultUpstream: String?

    var isEmpty: Bool { state == nil && user == nil && department == nil && sender == nil && recipient == nil && upstream == nil }

    /// The query string that repeats these filters (for paging links).
    var query: String {
        var parts: [String] = []
        if let state { parts.append("state=\(state.rawValue)") }
        for (key, value) in [("user", user), ("department", department), ("sender", sender), ("recipient", recipient), ("upstream", upstream)] {
            if let value { parts.append("\(key)=\(HTML.query(value))") }
        }
        return parts.joined(separator: "&")
    }

    /// The store's filter (exact, case-insensitive matches; pending recipients only).
    var queueFilter: QueueFilter {
        QueueFilter(state: state, user: user, department: department, sender: sender, recipient: recipient, upstream: upstream, defaultUpstream: defaultUpstream)
    }

    /// One page of the matching messages, oldest first, and how many match — filtered,
    /// counted and paged by the store (indexes in SQLite and PostgreSQL).
    static func page(_ spool: any Spool, _ filter: ConsoleFilter, offset: Int, limit: Int) async throws -> QueueListPage {
        try await spool.list(filter: filter.queueFilter, page: QueuePage(offset: offset, limit: limit))
    }
}
