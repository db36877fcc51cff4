import TollgateSpool

/// The queue page's filters, from its query string.
struct ConsoleFilter: Sendable, Hashable {
    var state: QueueState?
    var user: String?
    var department: String?
    var sender: String?
    var recipient: String?
    var upstream: String?

    var isEmpty: Bool { self == ConsoleFilter() }

    /// The query string that repeats these filters (for paging links).
    var query: String {
        var parts: [String] = []
        if let state { parts.append("state=\(state.rawValue)") }
        for (key, value) in [("user", user), ("department", department), ("sender", sender), ("recipient", recipient), ("upstream", upstream)] {
            if let value { parts.append("\(key)=\(HTML.query(value))") }
        }
        return parts.joined(separator: "&")
    }

    struct Page: Sendable {
        var rows: [QueueListing]
        var total: Int
    }

    /// One page of the matching messages, oldest first, and how many match.
    static func page(_ spool: any Spool, _ filter: ConsoleFilter, offset: Int, limit: Int) async throws -> Page {
        func same(_ a: String?, _ b: String?) -> Bool { b == nil || a?.lowercased() == b?.lowercased() }
        let matching = try await spool.list().filter { m in
            (filter.state == nil || m.state == filter.state) && same(m.user, filter.user) && same(m.department, filter.department)
                && same(m.sender, filter.sender) && (filter.recipient == nil || m.recipients.contains { same($0, filter.recipient) })
        }
        let rows = offset < matching.count ? Array(matching[offset..<min(matching.count, offset + limit)]) : []
        return Page(rows: rows, total: matching.count)
    }
}
