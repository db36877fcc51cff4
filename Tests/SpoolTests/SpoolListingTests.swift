import Foundation
import SpoolTestSupport
import Testing
import TollgateConfiguration
import TollgateSpool

/// `list(filter:page:)`, the same in every store: each filter alone and together,
/// case, pending recipients only, the node that accepted or holds the claim, the
/// order, pages and their totals.
@Suite struct SpoolListingTests {
    let t0 = 1_700_000_000.0

    /// The ids of the whole listing for `filter` (one page), after checking that its total agrees.
    func ids(_ spool: any Spool, _ filter: QueueFilter, sourceLocation: SourceLocation = #_sourceLocation) async throws -> [String] {
        let page = try await spool.list(filter: filter, page: QueuePage(limit: 1000))
        #expect(page.total == page.rows.count, "total \(page.total) for \(page.rows.count) rows", sourceLocation: sourceLocation)
        return page.rows.map(\.id)
    }

    /// Four messages, inserted newest first so that the order is the store's, not the insertion's:
    /// 0 from alice (user alice, finance, upstream outbox) to b and c;
    /// 1 from the null sender (user bob) to C;
    /// 2 from carol (user Alice, Finance, upstream other) to d, held;
    /// 3 from ALICE to e, claimed by relay-b.
    func fourMessages(_ spool: any Spool) async throws -> [String] {
        let specs: [(sender: String, to: [String], user: String?, department: String?, upstream: String?, created: Double)] = [
            ("alice@example.com", ["b@example.net", "c@example.net"], "alice", "finance", "outbox", t0 + 3),
            ("", ["C@Example.net"], "bob", nil, nil, t0 + 1),
            ("carol@example.org", ["d@example.net"], "Alice", "Finance", "other", t0 + 2),
            ("ALICE@example.com", ["e@example.net"], nil, nil, nil, t0),
        ]
        var ids: [String] = []
        for (n, spec) in specs.enumerated() {
            var m = SpoolFixtures.message(id: spool.makeQueueID(), from: spec.sender, to: spec.to, now: spec.created)
            m.envelope.user = spec.user
            m.envelope.department = spec.department
            m.upstream = spec.upstream
            try await spool.insert(m, claim: n == 3 ? SpoolClaim(owner: "relay-b/42/x", expires: t0 + 60) : nil)
            ids.append(m.id)
        }
        #expect(try await spool.hold([ids[2]]) == [ids[2]])
        return ids
    }

    @Test(arguments: StoreKind.allCases) func eachFilterAloneAndTogether(_ kind: StoreKind) async throws {
        try await kind.with { spool in
            let m = try await fourMessages(spool)
            #expect(QueueFilter().isEmpty && !QueueFilter(upstream: "x").isEmpty)
            #expect(try await ids(spool, QueueFilter()) == [m[3], m[1], m[2], m[0]])
            #expect(try await spool.list().map(\.id) == [m[3], m[1], m[2], m[0]])
            #expect(try await ids(spool, QueueFilter(state: .held)) == [m[2]])
            #expect(try await ids(spool, QueueFilter(state: .queued)) == [m[3], m[1], m[0]])
            #expect(try await ids(spool, QueueFilter(state: .deferred)) == [])
            // User, department, sender and recipient: exact but in any case.
            #expect(try await ids(spool, QueueFilter(user: "ALICE")) == [m[2], m[0]])
            #expect(try await ids(spool, QueueFilter(user: "ali")) == [])
            #expect(try await ids(spool, QueueFilter(department: "FINANCE")) == [m[2], m[0]])
            #expect(try await ids(spool, QueueFilter(sender: "Alice@Example.COM")) == [m[3], m[0]])
            #expect(try await ids(spool, QueueFilter(sender: "")) == [m[1]])
            #expect(try await ids(spool, QueueFilter(sender: "alice@example")) == [])
            #expect(try await ids(spool, QueueFilter(recipient: "c@EXAMPLE.net")) == [m[1], m[0]])
            #expect(try await ids(spool, QueueFilter(recipient: "b@example.net")) == [m[0]])
            // Upstream and node: exact.
            #expect(try await ids(spool, QueueFilter(upstream: "outbox")) == [m[0]])
            #expect(try await ids(spool, QueueFilter(upstream: "OUTBOX")) == [])
            // Messages without a route go to the default upstream, and are listed under it.
            #expect(try await ids(spool, QueueFilter(upstream: "outbox", defaultUpstream: "outbox")) == [m[3], m[1], m[0]])
            #expect(try await ids(spool, QueueFilter(upstream: "other", defaultUpstream: "outbox")) == [m[2]])
            #expect(try await ids(spool, QueueFilter(state: .queued, upstream: "relay", defaultUpstream: "relay")) == [m[3], m[1]])
            #expect(try await spool.list(filter: QueueFilter(upstream: "relay", defaultUpstream: "relay"), page: QueuePage(limit: 1)).total == 2)
            #expect(try await ids(spool, QueueFilter(node: "node-a")) == [m[3], m[1], m[2], m[0]])
            #expect(try await ids(spool, QueueFilter(node: "relay-b")) == [m[3]])
            #expect(try await ids(spool, QueueFilter(node: "relay-b/42/x")) == [m[3]])
            #expect(try await ids(spool, QueueFilter(node: "relay")) == [])
            // Together: every field given must match.
            #expect(try await ids(spool, QueueFilter(state: .held, user: "alice", department: "finance")) == [m[2]])
            #expect(try await ids(spool, QueueFilter(state: .queued, user: "alice", department: "finance")) == [m[0]])
            #expect(try await ids(spool, QueueFilter(sender: "alice@example.com", recipient: "C@example.net")) == [m[0]])
            #expect(try await ids(spool, QueueFilter(sender: "alice@example.com", node: "relay-b")) == [m[3]])
            #expect(try await ids(spool, QueueFilter(user: "alice", upstream: "other")) == [m[2]])
            #expect(try await ids(spool, QueueFilter(department: "finance", node: "relay-b")) == [])
            #expect(try await ids(spool, QueueFilter(state: .queued, user: "alice", department: "finance", sender: "alice@example.com", recipient: "b@example.net", upstream: "outbox", node: "node-a")) == [m[0]])
            // The rows are the listing's, upstream included.
            let row = try #require(try await spool.list(filter: QueueFilter(upstream: "outbox"), page: QueuePage()).rows.first)
            #expect(row.upstream == "outbox" && row.recipients == ["b@example.net", "c@example.net"] && row.user == "alice")
            #expect(row.department == "finance" && row.sender == "alice@example.com" && row.acceptedBy == "node-a" && row.state == .queued)
            let claimed = try #require(try await spool.list(filter: QueueFilter(node: "relay-b"), page: QueuePage()).rows.first)
            #expect(claimed.claimedBy == "relay-b/42/x" && claimed.upstream == nil)
        }
    }

    /// A recipient delivered (or failed) no longer finds its message; the others still do.
    @Test(arguments: StoreKind.allCases) func theRecipientFilterMatchesPendingRecipientsOnly(_ kind: StoreKind) async throws {
        try await kind.with { spool in
            let m = SpoolFixtures.message(id: spool.makeQueueID(), to: ["b@example.net", "c@example.net", "d@example.net"], now: t0)
            try await spool.insert(m)
            #expect(try await ids(spool, QueueFilter(recipient: "b@example.net")) == [m.id])
            #expect(try await spool.claimDue(owner: "relay-a/1/x", now: t0, lease: 60, limit: 1) == [m.id])
            var after = m.recipients
            after[0].state = .delivered
            after[2].state = .failed
            #expect(try await spool.recordAttempt(m.id, owner: "relay-a/1/x", recipients: after, nextAttempt: t0 + 60, lastError: "451 later"))
            #expect(try await ids(spool, QueueFilter(recipient: "b@example.net")) == [])
            #expect(try await ids(spool, QueueFilter(recipient: "d@example.net")) == [])
            #expect(try await ids(spool, QueueFilter(recipient: "C@example.net")) == [m.id])
            #expect(try await ids(spool, QueueFilter(state: .deferred, recipient: "c@example.net")) == [m.id])
            let row = try #require(try await spool.list(filter: QueueFilter(recipient: "c@example.net"), page: QueuePage()).rows.first)
            #expect(row.recipients == ["c@example.net"] && row.attempts == 1 && row.lastError == "451 later")
        }
    }

    /// 250 messages, two at each creation time (ties go by id): pages of 100 give
    /// 100, 100 and 50 in order, each with the total; past the end, none and the total.
    @Test(arguments: StoreKind.allCases) func pagesAndTotals(_ kind: StoreKind) async throws {
        try await kind.with { spool in
            var expected: [(Double, String)] = []
            var held: [String] = []
            for n in 0..<250 {
                let m = SpoolFixtures.message(id: spool.makeQueueID(), now: t0 + Double((250 - n) / 2))
                try await spool.insert(m)
                expected.append((m.createdAt, m.id))
                if n % 5 == 0 { held.append(m.id) }
            }
            _ = try await spool.hold(held)
            let order = expected.sorted { $0 < $1 }.map(\.1)
            var seen: [String] = []
            for (offset, count) in [(0, 100), (100, 100), (200, 50)] {
                let page = try await spool.list(filter: QueueFilter(), page: QueuePage(offset: offset, limit: 100))
                #expect(page.rows.count == count && page.total == 250)
                seen += page.rows.map(\.id)
            }
            #expect(seen == order)
            let past = try await spool.list(filter: QueueFilter(), page: QueuePage(offset: 250, limit: 100))
            #expect(past.rows.isEmpty && past.total == 250)
            #expect(try await spool.list(filter: QueueFilter(), page: QueuePage(offset: 10_000)).total == 250)
            // A filter pages the same way, its own total on every page.
            let heldOrder = order.filter(Set(held).contains)
            let first = try await spool.list(filter: QueueFilter(state: .held), page: QueuePage(offset: 0, limit: 30))
            let second = try await spool.list(filter: QueueFilter(state: .held), page: QueuePage(offset: 30, limit: 30))
            #expect(first.total == 50 && second.total == 50 && first.rows.count == 30 && second.rows.count == 20)
            #expect(first.rows.map(\.id) + second.rows.map(\.id) == heldOrder)
            let none = try await spool.list(filter: QueueFilter(state: .held, upstream: "nowhere"), page: QueuePage())
            #expect(none.rows.isEmpty && none.total == 0)
        }
    }

    /// A page's limit is 1 to 1000 and its offset at least 0, however it was set.
    @Test(arguments: StoreKind.allCases) func pageBoundsAreClamped(_ kind: StoreKind) async throws {
        #expect(QueuePage().offset == 0 && QueuePage().limit == 100)
        #expect(QueuePage(limit: 0).limit == 1 && QueuePage(limit: -3).limit == 1 && QueuePage(limit: 5000).limit == 1000)
        #expect(QueuePage(offset: -5).offset == 0)
        try await kind.with { spool in
            var ids: [String] = []
            for n in 0..<3 {
                let m = SpoolFixtures.message(id: spool.makeQueueID(), now: t0 + Double(n))
                try await spool.insert(m)
                ids.append(m.id)
            }
            var page = QueuePage()
            page.limit = 0
            page.offset = -10
            let one = try await spool.list(filter: QueueFilter(), page: page)
            #expect(one.rows.map(\.id) == [ids[0]] && one.total == 3)
            page.limit = 1_000_000
            #expect(try await spool.list(filter: QueueFilter(), page: page).rows.map(\.id) == ids)
        }
    }

    /// More than a page's worth: the limit stops at 1000.
    @Test func theLimitStopsAtAThousand() async throws {
        let spool = InMemorySpool()
        for n in 0..<1001 { try await spool.insert(SpoolFixtures.message(id: spool.makeQueueID(), now: t0 + Double(n))) }
        var page = QueuePage()
        page.limit = 5000
        let listed = try await spool.list(filter: QueueFilter(), page: page)
        #expect(listed.rows.count == 1000 && listed.total == 1001)
        #expect(try await spool.list(filter: QueueFilter(), page: QueuePage(offset: 1000, limit: 1000)).rows.count == 1)
    }

    /// A listing encoded before `upstream` existed still decodes (as the default route).
    @Test func aListingWithoutItsUpstreamDecodes() throws {
        let old = #"{"id":"A","createdAt":1,"size":2,"sender":"","recipients":["b@example.net"],"state":"queued","attempts":0,"nextAttempt":1,"acceptedBy":"n"}"#
        let listing = try JSONDecoder().decode(QueueListing.self, from: Data(old.utf8))
        #expect(listing.id == "A" && listing.upstream == nil && listing.user == nil && listing.recipients == ["b@example.net"])
        var routed = listing
        routed.upstream = "outbox"
        #expect(try JSONDecoder().decode(QueueListing.self, from: JSONEncoder().encode(routed)) == routed)
    }
}
