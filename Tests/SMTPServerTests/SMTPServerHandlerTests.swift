import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import SMTPCore
import TestSupport
import Testing

@testable import SMTPServer

/// The NIO handler on an in-memory channel with a fake delegate: framing across
/// reads, pipelined groups, back-pressure, deadlines on a clock the test moves,
/// clients that talk too early or vanish mid-DATA.
@Suite struct SMTPServerHandlerTests {
    @Test func aPipelinedGroupIsAnsweredInOrder() async throws {
        let h = try await HandlerHarness()
        #expect(try await h.reply().hasPrefix("220 relay.test ESMTP"))
        try await h.send("EHLO c\r\n")
        #expect(try await h.reply().contains("250-PIPELINING"))
        try await h.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nRCPT TO:<e@d.example>\r\nDATA\r\n")
        #expect(try await h.reply() == "250 2.1.0 Ok\r\n")
        #expect(try await h.reply() == "250 2.1.5 Ok\r\n")
        #expect(try await h.reply() == "250 2.1.5 Ok\r\n")
        #expect(try await h.reply().hasPrefix("354 "))
        // Content split across reads, the end in the same read as the next group.
        try await h.send("Subject: x\r\n\r\nhel")
        try await h.send("lo\r\n.\r\nRSET\r\nQUIT\r\n")
        #expect(try await h.reply() == "250 2.0.0 Ok: queued as Q1\r\n")
        #expect(try await h.reply() == "250 2.0.0 Ok\r\n")
        #expect(try await h.reply().hasPrefix("221 "))
        try await h.channel.closeFuture.get()
        let stored = try #require(h.delegate.stored.first)
        #expect(String(buffer: stored.message.content) == "Subject: x\r\n\r\nhello\r\n")
        #expect(stored.envelope.recipients.count == 2)
    }

    @Test func aGroupThatDoesNotEndAtDATAClosesTheSession() async throws {
        let h = try await HandlerHarness()
        _ = try await h.reply()
        try await h.send("EHLO c\r\n")
        _ = try await h.reply()
        try await h.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nSubject: smuggled\r\n")
        _ = try await h.reply()
        _ = try await h.reply()
        #expect(try await h.reply().hasPrefix("554 5.5.0"))
        try await h.channel.closeFuture.get()
    }

    /// Nothing is answered before the greeting; a line sent early waits for it.
    @Test func commandsBeforeTheGreetingWait() async throws {
        let gate = Gate()
        let h = try await HandlerHarness(delegate: FakeDelegate(phases: [.connect], gates: [.connect: gate]))
        try await h.send("EHLO early\r\n")
        try await h.settle()
        #expect(try await h.written().isEmpty)
        gate.open()
        #expect(try await h.reply().hasPrefix("220 "))
        #expect(try await h.reply().hasPrefix("250-relay.test"))
    }

    /// While a decision runs, the handler asks the socket for nothing more.
    @Test func readsPauseWhileADecisionRuns() async throws {
        let gate = Gate()
        let h = try await HandlerHarness(delegate: FakeDelegate(phases: [.mail], gates: [.mail: gate]))
        _ = try await h.reply()
        try await h.send("EHLO c\r\n")
        _ = try await h.reply()
        try await h.send("MAIL FROM:<a@b.example>\r\n")
        try await h.settle()
        let before = h.reads.reads.withLockedValue { $0 }
        h.channel.read()
        h.channel.read()
        #expect(h.reads.reads.withLockedValue { $0 } == before)
        gate.open()
        #expect(try await h.reply() == "250 2.1.0 Ok\r\n")
        try await h.settle()
        #expect(h.reads.reads.withLockedValue { $0 } == before + 1)
    }

    /// The command deadline runs from when Tollgate starts waiting: trickled bytes
    /// do not extend it.
    @Test func trickledBytesDoNotExtendTheDeadline() async throws {
        let h = try await HandlerHarness()
        _ = try await h.reply()
        try await h.send("EH")
        await h.advance(.seconds(200))
        try await h.send("L")
        await h.advance(.seconds(99))
        #expect(h.channel.isActive)
        await h.advance(.seconds(2))
        #expect(try await h.reply().hasPrefix("421 4.4.2"))
        try await h.channel.closeFuture.get()
    }

    @Test func aCompleteCommandRestartsTheDeadline() async throws {
        let h = try await HandlerHarness()
        _ = try await h.reply()
        await h.advance(.seconds(299))
        try await h.send("NOOP\r\n")
        _ = try await h.reply()
        await h.advance(.seconds(299))
        #expect(h.channel.isActive)
        await h.advance(.seconds(2))
        #expect(try await h.reply().hasPrefix("421 4.4.2"))
    }

    /// RELIABILITY C12: under stress (most session slots taken) the wait for a command
    /// is the short one, from the next wait on; the session that began unstressed keeps
    /// its current deadline, and when the stress is over the long wait comes back.
    @Test func stressShortensTheWaitForACommand() async throws {
        let stress = NIOLockedValueBox(false)
        let h = try await HandlerHarness(stressed: { stress.withLockedValue { $0 } })
        _ = try await h.reply()
        stress.withLockedValue { $0 = true }
        await h.advance(.seconds(20))
        #expect(h.channel.isActive, "the deadline armed before the stress is kept")
        try await h.send("NOOP\r\n")
        #expect(try await h.reply().hasPrefix("250"))
        await h.advance(.seconds(9))
        #expect(h.channel.isActive)
        try await h.send("NOOP\r\n")
        _ = try await h.reply()
        stress.withLockedValue { $0 = false }
        await h.advance(.seconds(9))
        try await h.send("NOOP\r\n")
        _ = try await h.reply()
        await h.advance(.seconds(60))
        #expect(h.channel.isActive, "stress over: the long wait again")
        stress.withLockedValue { $0 = true }
        try await h.send("NOOP\r\n")
        _ = try await h.reply()
        await h.advance(.seconds(11))
        #expect(try await h.reply().hasPrefix("421 4.4.2"))
        try await h.channel.closeFuture.get()
    }

    @Test func dataHasItsOwnDeadline() async throws {
        let h = try await HandlerHarness()
        try await h.openData()
        try await h.send("Subject: slow\r\n")
        await h.advance(.seconds(400))
        #expect(h.channel.isActive)
        await h.advance(.seconds(201))
        #expect(try await h.reply().hasPrefix("421 4.4.2"))
        #expect(h.delegate.stored.isEmpty)
    }

    /// A client gone in the middle of DATA leaves nothing stored.
    @Test func disconnectMidDataStoresNothing() async throws {
        let h = try await HandlerHarness()
        try await h.openData()
        try await h.send("Subject: half\r\n\r\nhalf a mess")
        try await h.channel.close()
        try await h.settle()
        #expect(h.delegate.stored.isEmpty)
        await h.advance(.seconds(700))
    }

    @Test func anOverlongLineIsSkippedAndTheSessionGoesOn() async throws {
        let h = try await HandlerHarness()
        _ = try await h.reply()
        try await h.send("NOOP " + String(repeating: "x", count: 3000))
        #expect(try await h.reply().hasPrefix("500 5.5.2"))
        try await h.send(String(repeating: "y", count: 3000) + "\r\nNOOP\r\n")
        #expect(try await h.reply() == "250 2.0.0 Ok\r\n")
    }

    @Test func drainClosesAnIdleSessionWith421() async throws {
        let h = try await HandlerHarness()
        _ = try await h.reply()
        h.channel.pipeline.fireUserInboundEventTriggered(SMTPServerEvent.drain)
        #expect(try await h.reply().hasPrefix("421 4.3.2"))
        try await h.channel.closeFuture.get()
    }
}
