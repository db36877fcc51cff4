import Logging
import NIOCore
import Testing
import TollgateConfiguration
import TollgatePipeline
import TollgatePolicy

/// Stages change the message at `data` (SPEC §7): each stage sees what the stages
/// before it left, the trace says what changed, and header changes never copy the body.
@Suite struct MessageChangeTests {
    /// Asks for fixed changes and records the message it was shown.
    final class Changer: PolicyStage, @unchecked Sendable {
        let changes: [MessageChange]
        let verdict: PolicyVerdict
        let placement: StagePlacement
        var seen: MessageContent?

        init(_ changes: [MessageChange], verdict: PolicyVerdict = .continue, placement: StagePlacement = .asConfigured) {
            self.changes = changes
            self.verdict = verdict
            self.placement = placement
        }

        var phases: Set<PolicyPhase> { [.data] }

        func evaluate(_ context: PolicyContext) async throws -> PolicyDecision {
            seen = context.message
            return PolicyDecision(verdict, reason: "asked", changes: changes)
        }
    }

    static let original = "Received: from a by b\r\nFrom: a@example.com\r\nTo: b@example.net,\r\n c@example.net\r\nSubject: hello\r\nX-Spam: yes\r\nX-Spam: again\r\n\r\nBody line.\r\n"

    func pipeline(_ stages: [(String, any PolicyStage)]) -> PolicyPipeline {
        PolicyPipeline(stages: stages.map { PolicyPipeline.Stage(name: $0.0, stage: $0.1, timeout: 60, onError: .defer) }, logger: Logger(label: "test"))
    }

    func context(_ buffer: ByteBuffer) -> PolicyContext {
        let message = MessageContent(buffer: buffer)
        return PolicyContext(phase: .data, sessionID: "s", listener: "l", clientAddress: "127.0.0.1", headers: message.unfoldedHeaders, message: message)
    }

    func text(_ m: MessageContent?) -> String { String(decoding: m?.bytes ?? [], as: UTF8.self) }

    @Test func headerFieldsAreAddedInsertedChangedAndRemovedInOrder() async throws {
        let first = Changer([
            .addHeader(name: "X-Added", value: "at the end"),
            .insertHeader(index: 1, name: "X-Inserted", value: "second\r\n\tfolded"),
            .changeHeader(name: "subject", occurrence: 1, value: "changed"),
            .removeHeader(name: "X-Spam", occurrence: 2),
        ])
        let second = Changer([.replaceBody(Array("New body.\r\n".utf8))])
        let outcome = await pipeline([("first", first), ("second", second)]).evaluate(context(ByteBuffer(string: Self.original)))
        #expect(outcome.verdict == .continue)
        let expected = "Received: from a by b\r\nX-Inserted: second\r\n\tfolded\r\nFrom: a@example.com\r\nTo: b@example.net,\r\n c@example.net\r\nSubject: changed\r\nX-Spam: yes\r\nX-Added: at the end\r\n\r\n"
        // The second stage saw the first one's changes.
        #expect(text(second.seen) == expected + "Body line.\r\n")
        #expect(text(outcome.message) == expected + "New body.\r\n")
        // The trace records each change.
        #expect(outcome.trace.map(\.reason) == [
            "asked; changes: +X-Added +X-Inserted@1 ~subject[1] -X-Spam[2]",
            "asked; changes: body=11",
        ])
    }

    @Test func aStagePlacedLastRunsAfterTheOthersEvenAfterAnAccept() async throws {
        let signer = Changer([.insertHeader(index: 0, name: "X-Signed", value: "yes")], placement: .last)
        let accepting = Changer([.addHeader(name: "X-Accepted", value: "1")], verdict: .accept)
        let skipped = Changer([.addHeader(name: "X-Never", value: "1")])
        // Configured first, the signer runs last and sees the accepting stage's change.
        let outcome = await pipeline([("signer", signer), ("accepting", accepting), ("skipped", skipped)]).evaluate(context(ByteBuffer(string: Self.original)))
        #expect(outcome.verdict == .accept)
        #expect(outcome.trace.map(\.stage) == ["accepting", "signer"])
        #expect(skipped.seen == nil)
        #expect(signer.seen?.header("X-Accepted") == "1")
        #expect(text(outcome.message).hasPrefix("X-Signed: yes\r\nReceived: from a by b\r\n"))
    }

    @Test func aChangeThatWouldSmuggleALineIsTheStagesFailure() async throws {
        for bad: MessageChange in [
            .addHeader(name: "X-Bad", value: "a\r\nBcc: victim@example.net"),
            .addHeader(name: "Bad Name", value: "x"),
            .addHeader(name: "X-Nul", value: "a\u{0}b"),
            .replaceBody(Array("bare\nnewline".utf8)),
        ] {
            let outcome = await pipeline([("bad", Changer([bad]))]).evaluate(context(ByteBuffer(string: Self.original)))
            #expect(outcome.verdict.reply?.code == 451, "\(bad.summary)")
            #expect(outcome.message == nil, "\(bad.summary)")
        }
    }

    @Test func fieldsInsertedAtTheTopAreStoredWithoutCopyingTheBody() throws {
        let buffer = ByteBuffer(string: Self.original + String(repeating: "x", count: 100_000) + "\r\n")
        let message = MessageContent(buffer: buffer)
        let signed = try message.applying([.insertHeader(index: 0, name: "DKIM-Signature", value: "v=1; a=x;\r\n\tb=abc")])
        let stored = signed.stored(replacing: buffer)
        #expect(!stored.rewritten)
        #expect(stored.prefix == "DKIM-Signature: v=1; a=x;\r\n\tb=abc\r\n")
        // The very same storage: no byte of the body was copied.
        #expect(stored.content.withUnsafeReadableBytes { $0.baseAddress } == buffer.withUnsafeReadableBytes { $0.baseAddress })
        // Any other change writes the message out once, exactly.
        let changed = try message.applying([.removeHeader(name: "X-Spam", occurrence: 1)])
        let rewritten = changed.stored(replacing: buffer)
        #expect(rewritten.rewritten && rewritten.prefix.isEmpty)
        #expect(Array(rewritten.content.readableBytesView) == changed.bytes)
        #expect(String(buffer: rewritten.content).contains("X-Spam: again\r\n\r\nBody line.\r\n"))
    }

    @Test func rawFieldsRoundTripByteForByte() {
        let samples = [Self.original, "From: a\r\n\r\n", "From: a\r\n", "no colon line\r\nFrom: a\r\n\r\nb", "\r\nbody only\r\n", "Subject: caf\u{e9}\r\n\r\n\u{fc}\r\n"]
        for sample in samples {
            let buffer = ByteBuffer(string: sample)
            let parsed = MessageContent(buffer: buffer)
            let expected = sample.hasSuffix("\r\n") || sample.contains("\r\n\r\n") ? sample : sample + "\r\n"
            #expect(String(decoding: parsed.bytes, as: UTF8.self) == expected, "\(sample.debugDescription)")
            #expect(parsed.size == parsed.bytes.count)
        }
    }

    /// Answers a fixed decision at the phases it is given.
    struct Answering: PolicyStage {
        let decision: PolicyDecision
        let phases: Set<PolicyPhase>
        func evaluate(_ context: PolicyContext) async throws -> PolicyDecision { decision }
    }

    func stages(_ stages: [(String, any PolicyStage, TollgateConfiguration.StageMode)]) -> PolicyPipeline {
        PolicyPipeline(stages: stages.map { PolicyPipeline.Stage(name: $0.0, stage: $0.1, timeout: 60, onError: .defer, mode: $0.2) }, logger: Logger(label: "test"))
    }

    @Test func theStrongestDispositionWinsAndIsInTheTrace() async {
        let hold = Answering(decision: PolicyDecision(.continue, disposition: .hold(reason: "review")), phases: [.rcpt])
        let discard = Answering(decision: PolicyDecision(.continue, reason: "spam", disposition: .discard(reason: "score 20")), phases: [.rcpt])
        let plain = Answering(decision: .continue, phases: [.rcpt])
        let rcpt = PolicyContext(phase: .rcpt, sessionID: "s", listener: "l", clientAddress: "127.0.0.1", recipient: "x@example.net")
        let held = await stages([("hold", hold, .enforce), ("plain", plain, .enforce)]).evaluate(rcpt)
        #expect(held.disposition == .hold(reason: "review"))
        #expect(held.trace.first?.reason == "hold: review")
        let both = await stages([("discard", discard, .enforce), ("hold", hold, .enforce)]).evaluate(rcpt)
        #expect(both.disposition == .discard(reason: "score 20"))
        #expect(both.trace.map(\.reason) == ["spam; discard: score 20", "hold: review"])
        // A shadow stage's disposition is only recorded.
        let shadow = await stages([("discard", discard, .shadow)]).evaluate(rcpt)
        #expect(shadow.disposition == .deliver)
        // A refusal carries none.
        let refusing = Answering(decision: PolicyDecision(.reject(PolicyReply(code: 550, text: "no")), disposition: .hold(reason: "x")), phases: [.rcpt])
        #expect(await stages([("r", refusing, .enforce)]).evaluate(rcpt).disposition == .deliver)
    }

    @Test func changesAskedAtRcptAreKeptForDataAndEnvelopeChangesGathered() async {
        let prepend = Answering(decision: PolicyDecision(.continue, changes: [.addHeader(name: "X-Policy", value: "seen")]), phases: [.rcpt])
        let rcpt = PolicyContext(phase: .rcpt, sessionID: "s", listener: "l", clientAddress: "127.0.0.1", recipient: "x@example.net")
        let outcome = await stages([("prepend", prepend, .enforce)]).evaluate(rcpt)
        #expect(outcome.pendingChanges == [.addHeader(name: "X-Policy", value: "seen")])
        #expect(outcome.message == nil)
        #expect(outcome.trace.first?.reason == "changes at data: +X-Policy")
        #expect(await stages([("prepend", prepend, .shadow)]).evaluate(rcpt).pendingChanges.isEmpty)

        let redirect = Answering(decision: PolicyDecision(.continue, envelopeChanges: [.removeRecipient("b@example.net"), .addRecipient("c@example.net"), .changeSender("")]), phases: [.data])
        let data = context(ByteBuffer(string: Self.original))
        let redirected = await stages([("redirect", redirect, .enforce)]).evaluate(data)
        #expect(redirected.envelopeChanges == [.removeRecipient("b@example.net"), .addRecipient("c@example.net"), .changeSender("")])
        #expect(redirected.trace.first?.reason == "envelope: -rcpt=<b@example.net> +rcpt=<c@example.net> from=<>")
        #expect(await stages([("redirect", redirect, .shadow)]).evaluate(data).envelopeChanges.isEmpty)
        // An address the relay cannot use is the stage's failure: its on_error (defer).
        for bad in ["", "no-at-sign", "a b@example.net", "<x@example.net>", "x@", "@example.net", "x@example.net\r\nRCPT TO:<y@evil>"] {
            let malformed = Answering(decision: PolicyDecision(.continue, envelopeChanges: [.addRecipient(bad)]), phases: [.data])
            let failed = await stages([("bad", malformed, .enforce)]).evaluate(data)
            #expect(failed.verdict.reply?.code == 451, "\(bad.debugDescription)")
            #expect(failed.envelopeChanges.isEmpty)
        }
    }

    @Test func aShadowStageNeverChangesTheMessage() async {
        let changer = Changer([.addHeader(name: "X-Shadow", value: "1")])
        let outcome = await stages([("changer", changer, .shadow)]).evaluate(context(ByteBuffer(string: Self.original)))
        #expect(outcome.message == nil)
        #expect(outcome.trace.first?.shadow == true)
    }
}
