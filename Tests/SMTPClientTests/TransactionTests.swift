import NIOCore
import SMTPCore
import Testing

@testable import SMTPClient

private let full = ServerCapabilities(
    keywords: ["PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "DSN", "ENHANCEDSTATUSCODES"], maxSize: 1000
)

@Suite struct TransactionPlanTests {
    @Test func parametersFollowCapabilities() throws {
        let envelope = OutboundEnvelope(
            sender: "a@b.test", recipients: ["x@y.test", "z@y.test"], size: 500, eightBit: true,
            ret: "HDRS", envelopeID: "QQ314159", notify: [["SUCCESS", "FAILURE"]], orcpt: [nil, "rfc822;z@y.test"]
        )
        let plan = try TransactionPlan(envelope: envelope, contentSize: 480, contentHasEightBit: true, capabilities: full)
        #expect(plan.mail.line == "MAIL FROM:<a@b.test> SIZE=500 BODY=8BITMIME RET=HDRS ENVID=QQ314159")
        #expect(plan.recipients.map(\.line) == ["RCPT TO:<x@y.test> NOTIFY=SUCCESS,FAILURE", "RCPT TO:<z@y.test> ORCPT=rfc822;z@y.test"])

        let bare = ServerCapabilities(keywords: ["8BITMIME"])
        let plain = try TransactionPlan(envelope: envelope, contentSize: 480, contentHasEightBit: true, capabilities: bare)
        #expect(plain.mail.line == "MAIL FROM:<a@b.test> BODY=8BITMIME")
        #expect(plain.recipients.map(\.line) == ["RCPT TO:<x@y.test>", "RCPT TO:<z@y.test>"])
    }

    @Test func sizeFallsBackToContent() throws {
        let plan = try TransactionPlan(envelope: .init(sender: "", recipients: ["x@y.test"]), contentSize: 42, contentHasEightBit: false, capabilities: full)
        #expect(plan.mail.line == "MAIL FROM:<> SIZE=42")
    }

    @Test func refusals() {
        let envelope = OutboundEnvelope(sender: "a@b.test", recipients: ["x@y.test"], size: 100)
        #expect(throws: SMTPClientError.eightBitNotSupported) {
            try TransactionPlan(envelope: envelope, contentSize: 100, contentHasEightBit: true, capabilities: .none)
        }
        var flagged = envelope
        flagged.eightBit = true
        #expect(throws: SMTPClientError.eightBitNotSupported) {
            try TransactionPlan(envelope: flagged, contentSize: 100, contentHasEightBit: false, capabilities: .none)
        }
        #expect(throws: SMTPClientError.smtputf8NotSupported) {
            try TransactionPlan(envelope: .init(sender: "a@b.test", recipients: ["👾@example.com"]), contentSize: 1, contentHasEightBit: false, capabilities: ServerCapabilities(keywords: ["8BITMIME"]))
        }
        #expect(throws: SMTPClientError.messageTooLarge(limit: 1000)) {
            try TransactionPlan(envelope: .init(sender: "", recipients: ["x@y.test"], size: 1001), contentSize: 1, contentHasEightBit: false, capabilities: full)
        }
        #expect(throws: SMTPClientError.self) {
            try TransactionPlan(envelope: .init(sender: "", recipients: []), contentSize: 1, contentHasEightBit: false, capabilities: full)
        }
        let utf8 = try? TransactionPlan(envelope: .init(sender: "josé@b.test", recipients: ["x@y.test"]), contentSize: 1, contentHasEightBit: false, capabilities: full)
        #expect(utf8?.mail.line == "MAIL FROM:<josé@b.test> SIZE=1 SMTPUTF8")
    }

    @Test func errorsCarryReplies() {
        #expect(SMTPClientError.smtputf8NotSupported.reply?.enhancedCode == "5.6.7")
        #expect(SMTPClientError.eightBitNotSupported.reply?.enhancedCode == "5.6.3")
        #expect(SMTPClientError.messageTooLarge(limit: 5).reply?.code == 552)
        #expect(SMTPClientError.messageTooLarge(limit: 5).reply?.enhancedCode == "5.3.4")
        #expect(SMTPClientError.connectionClosed.reply?.code == 451)
        #expect(!SMTPClientError.connectionClosed.isPermanent)
        #expect(!SMTPClientError.greeting(SMTPReply(554, "5.7.1", "go away")).isPermanent)
        #expect(SMTPClientError.greeting(SMTPReply(554, "5.7.1", "go away")).reply?.isTransient == true)
        #expect(SMTPClientError.invalidArgument("x").isPermanent)
    }
}

/// The client transaction driven directly, as transcripts.
@Suite struct TransactionStateMachineTests {
    static let ok = SMTPReply(250, "2.1.0", "Ok")
    static let rcptOK = SMTPReply(250, "2.1.5", "Ok")
    static let rcptBad = SMTPReply(550, "5.1.1", "no such user")
    static let rcptLater = SMTPReply(450, "4.2.0", "try later")
    static let go = SMTPReply(354, nil, "go ahead")
    static let queued = SMTPReply(250, "2.0.0", "queued as X")

    private func plan(_ n: Int) throws -> TransactionPlan {
        try TransactionPlan(
            envelope: .init(sender: "a@b.test", recipients: (0..<n).map { "r\($0)@y.test" }),
            contentSize: 10, contentHasEightBit: false, capabilities: .none
        )
    }

    @Test func pipelinedGroupAndMixedResults() throws {
        let plan = try plan(3)
        var machine = TransactionStateMachine(plan: plan, pipelining: true)
        #expect(machine.start() == .init(output: .commands([plan.mail] + plan.recipients + [.data]), next: .awaitReply(.command)))
        #expect(machine.received(Self.ok) == .init(output: nil, next: .awaitReply(.command)))
        #expect(machine.received(Self.rcptOK).output == nil)
        #expect(machine.received(Self.rcptBad).output == nil)
        #expect(machine.received(Self.rcptLater) == .init(output: nil, next: .awaitReply(.command)))
        #expect(machine.received(Self.go) == .init(output: .content, next: .awaitReply(.dataTermination)))
        let report = DeliveryReport(recipientReplies: [Self.rcptOK, Self.rcptBad, Self.rcptLater], dataReply: Self.queued)
        #expect(machine.received(Self.queued).next == .finished(report, serverClosing: false, openTransaction: false))
        #expect(report.deliveredIndices == [0])
        #expect(report.outcome(forRecipientAt: 1) == Self.rcptBad)
    }

    /// RFC 2920 §3.1, RELIABILITY F4: 354 though every RCPT failed — send a lone dot.
    @Test func pipelinedAllRecipientsFailedButDataAccepted() throws {
        var machine = TransactionStateMachine(plan: try plan(2), pipelining: true)
        _ = machine.start()
        _ = machine.received(Self.ok)
        _ = machine.received(Self.rcptBad)
        _ = machine.received(Self.rcptLater)
        #expect(machine.received(Self.go) == .init(output: .terminatorOnly, next: .awaitReply(.dataTermination)))
        let step = machine.received(SMTPReply(554, "5.5.1", "no valid recipients"))
        #expect(step.next == .finished(.init(recipientReplies: [Self.rcptBad, Self.rcptLater], dataReply: nil), serverClosing: false, openTransaction: false))
    }

    @Test func pipelinedAllRecipientsFailedDataRefused() throws {
        var machine = TransactionStateMachine(plan: try plan(1), pipelining: true)
        _ = machine.start()
        _ = machine.received(Self.ok)
        _ = machine.received(Self.rcptBad)
        let step = machine.received(SMTPReply(554, "5.5.1", "no valid recipients"))
        #expect(step.next == .finished(.init(recipientReplies: [Self.rcptBad], dataReply: nil), serverClosing: false, openTransaction: true))
    }

    @Test func pipelinedMailRefusedAppliesToEveryRecipient() throws {
        var machine = TransactionStateMachine(plan: try plan(2), pipelining: true)
        _ = machine.start()
        let refused = SMTPReply(553, "5.7.1", "sender rejected")
        _ = machine.received(refused)
        _ = machine.received(SMTPReply(503, "5.5.1", "need MAIL"))
        _ = machine.received(SMTPReply(503, "5.5.1", "need MAIL"))
        let step = machine.received(SMTPReply(503, "5.5.1", "need MAIL"))
        #expect(step.next == .finished(.init(recipientReplies: [refused, refused], dataReply: nil), serverClosing: false, openTransaction: false))
    }

    @Test func lockStepTranscript() throws {
        let plan = try plan(2)
        var machine = TransactionStateMachine(plan: plan, pipelining: false)
        #expect(machine.start().output == .commands([plan.mail]))
        #expect(machine.received(Self.ok).output == .commands([plan.recipients[0]]))
        #expect(machine.received(Self.rcptBad).output == .commands([plan.recipients[1]]))
        #expect(machine.received(Self.rcptOK).output == .commands([.data]))
        #expect(machine.received(Self.go).output == .content)
        let failed = SMTPReply(451, "4.3.0", "queue write error")
        #expect(machine.received(failed).next == .finished(.init(recipientReplies: [Self.rcptBad, Self.rcptOK], dataReply: failed), serverClosing: false, openTransaction: false))
    }

    @Test func lockStepNoRecipientSkipsData() throws {
        var machine = TransactionStateMachine(plan: try plan(1), pipelining: false)
        _ = machine.start()
        _ = machine.received(Self.ok)
        #expect(machine.received(Self.rcptBad) == .init(output: nil, next: .finished(.init(recipientReplies: [Self.rcptBad], dataReply: nil), serverClosing: false, openTransaction: true)))
    }

    @Test func lockStepMailRefused() throws {
        var machine = TransactionStateMachine(plan: try plan(2), pipelining: false)
        _ = machine.start()
        let refused = SMTPReply(451, "4.3.0", "later")
        #expect(machine.received(refused).next == .finished(.init(recipientReplies: [refused, refused], dataReply: nil), serverClosing: false, openTransaction: false))
    }

    @Test func serviceClosingMidTransaction() throws {
        var machine = TransactionStateMachine(plan: try plan(3), pipelining: false)
        _ = machine.start()
        _ = machine.received(Self.ok)
        _ = machine.received(Self.rcptOK)
        _ = machine.received(Self.rcptBad)
        let closing = SMTPReply(421, "4.3.2", "shutting down")
        let step = machine.received(closing)
        #expect(step.next == .finished(.init(recipientReplies: [closing, Self.rcptBad, closing], dataReply: nil), serverClosing: true, openTransaction: false))
    }
}
