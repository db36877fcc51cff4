import NIOCore
import SMTPCore
import Testing

@testable import SMTPServer

/// Memory for content shared by sessions (issue "Hardening", overload): past the
/// budget DATA gets 451 4.3.0 and the session goes on; the budget comes back when
/// content is stored or a session ends mid-DATA.
@Suite struct ContentBudgetTests {
    @Test func dataIsRefusedWhileTheBudgetIsUsedAndTakenWhenItComesBack() async throws {
        let budget = ContentBudget(limit: 1_000)
        let delegate = FakeDelegate(phases: [])
        let first = try await HandlerHarness(delegate: delegate, contentBudget: budget)
        try await first.openData()
        try await first.send("Subject: big\r\n\r\n" + String(repeating: "x", count: 1_500) + "\r\n")
        try await first.settle()
        #expect(budget.bytesInUse >= 1_000)

        let second = try await HandlerHarness(delegate: delegate, contentBudget: budget)
        _ = try await second.reply()
        try await second.send("EHLO c\r\n")
        _ = try await second.reply()
        try await second.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n")
        for _ in 0..<2 { _ = try await second.reply() }
        try await second.send("DATA\r\n")
        #expect(try await second.reply().hasPrefix("451 4.3.0"))
        try await second.send("NOOP\r\n")
        #expect(try await second.reply().hasPrefix("250"), "the session goes on")

        try await first.send(".\r\n")
        #expect(try await first.reply().hasPrefix("250 2.0.0 Ok: queued as"))
        #expect(budget.bytesInUse == 0, "stored content gives its memory back")

        try await second.send("DATA\r\n")
        #expect(try await second.reply().hasPrefix("354"), "the transaction stayed open")
        try await second.send("Subject: small\r\n\r\nhi\r\n.\r\n")
        #expect(try await second.reply().hasPrefix("250 2.0.0"))
        #expect(delegate.stored.count == 2)
        #expect(budget.bytesInUse == 0)
    }

    @Test func aSessionThatEndsInDataGivesItsShareBack() async throws {
        let budget = ContentBudget(limit: 1_000_000)
        let session = try await HandlerHarness(contentBudget: budget)
        try await session.openData()
        try await session.send(String(repeating: "y", count: 5_000))
        try await session.settle()
        #expect(budget.bytesInUse == 5_000)
        try await session.channel.close()
        try await session.settle()
        #expect(budget.bytesInUse == 0)
    }
}
