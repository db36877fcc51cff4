import PolicyTestSupport
import Synchronization
import Testing
import TollgatePolicy

/// The plugin test kit behaves as the relay does, or plugin authors' tests would pass
/// against something the relay never does: phases asked only when declared, facts
/// kept, a refused recipient left out, STARTTLS forgetting what the client said, one
/// queue id per transaction, changes applied, the stage told of an accepted message
/// and of the session's end; and the message fixtures have the shapes they promise.
@Suite struct PolicyTestKitTests {
    /// A stage that records every call and refuses `no@…` recipients.
    final class Recorder: PolicyStage {
        let phases: Set<PolicyPhase>
        let seen = Mutex<[PolicyContext]>([])
        let accepted = Mutex<[AcceptedMessage]>([])
        let closed = Mutex<[String]>([])
        init(_ phases: Set<PolicyPhase>) { self.phases = phases }

        func evaluate(_ context: PolicyContext) async throws -> PolicyDecision {
            seen.withLock { $0.append(context) }
            if context.phase == .rcpt, context.recipient?.hasPrefix("no@") == true {
                return PolicyDecision(.reject(PolicyReply(code: 550, enhancedCode: "5.1.1", text: "no")), reason: "no")
            }
            if context.phase == .helo { return PolicyDecision(.continue, reason: "tagged", facts: SessionFacts(tags: ["seen-helo": context.helo ?? "-"])) }
            if context.phase == .data { return PolicyDecision(.continue, reason: "marked", changes: [.addHeader(name: "X-Recorder", value: "yes")]) }
            return .continue
        }
        func messageAccepted(_ message: AcceptedMessage) async { accepted.withLock { $0.append(message) } }
        func sessionClosed(sessionID: String) async { closed.withLock { $0.append(sessionID) } }
    }

    @Test func runAsksOnlyTheDeclaredPhasesAndKeepsWhatTheRelayKeeps() async throws {
        let stage = Recorder([.helo, .starttls, .auth, .mail, .rcpt, .data])
        var session = TestSession()
        session.connection.tls = TLSInfo(protocolVersion: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256", cipherBits: 128)
        let (steps, message) = try await session.run(stage, user: "alice", from: "alice@example.com", to: ["bob@example.net", "no@example.net", "carol@example.net"])
        #expect(steps.map(\.phase) == [.helo, .starttls, .helo, .auth, .mail, .rcpt, .rcpt, .rcpt, .data])
        let seen = stage.seen.withLock { $0 }
        // STARTTLS forgot the first EHLO; the second is known again.
        #expect(seen[1].helo == nil && seen[2].helo == "client.example" && seen[1].tls)
        #expect(seen[3].connection.saslMethod == "PLAIN" && seen[3].facts.user == "alice" && seen[4].authenticatedUser == "alice")
        #expect(seen[4].queueID == "TESTQ1" && seen[0].queueID == nil && seen[3].queueID == nil)
        // The refused recipient is left out; the facts of helo reach data.
        #expect(seen[7].recipients == ["bob@example.net"] && seen[7].recipient == "carol@example.net")
        #expect(seen[8].recipients == ["bob@example.net", "carol@example.net"] && seen[8].facts.tags["seen-helo"] == "client.example")
        #expect(seen[8].message != nil && seen[8].messageSize == seen[8].message?.size)
        #expect(message.header("X-Recorder") == "yes")
        let accepted = stage.accepted.withLock { $0 }
        #expect(accepted.count == 1 && accepted.first?.queueID == "TESTQ1" && accepted.first?.context.message?.header("X-Recorder") == "yes")
        #expect(stage.closed.withLock { $0 } == ["S1"])
        // The next transaction gets another queue id; RSET semantics drop the envelope.
        let next = session.mail(from: "alice@example.com")
        #expect(next.queueID == "TESTQ2" && next.recipients.isEmpty)
    }

    @Test func aRefusedTransactionTellsNoAcceptedMessage() async throws {
        let stage = Recorder([.rcpt, .data])
        var session = TestSession()
        let (steps, _) = try await session.run(stage, from: "a@example.com", to: ["no@example.net"])
        #expect(steps.map(\.phase) == [.rcpt])
        #expect(stage.accepted.withLock { $0 }.isEmpty && stage.closed.withLock { $0 } == ["S1"])
    }

    @Test func messageFixturesHaveTheirShapes() {
        for (name, message) in TestMessages.all {
            #expect(message.header("From") != nil, "\(name)")
        }
        #expect(TestMessages.eightBit.bytes.contains { $0 >= 0x80 })
        #expect(!TestMessages.plain.bytes.contains { $0 >= 0x80 } && TestMessages.plain.bytes.suffix(2) == [13, 10])
        #expect(TestMessages.dotLines.body.count > 0 && String(decoding: TestMessages.dotLines.bytes, as: UTF8.self).contains("\r\n\r\n.hidden line\r\n..two dots\r\n.\r\n"))
        #expect(TestMessages.emptyBody.hasBodySeparator && TestMessages.emptyBody.body.count == 0)
        #expect(TestMessages.noFinalCRLF.bytes.suffix(2) != [13, 10])
        #expect(!TestMessages.headerOnly.hasBodySeparator)
        #expect(TestMessages.twoFromFields.fields.filter { $0.isNamed("From") }.count == 2)
        #expect(TestMessages.foldedHeaders.header("X-Folded")?.contains("second part") == true && TestMessages.foldedHeaders.fields.first { $0.isNamed("X-Folded") }?.raw.contains(9) == true)
        #expect(TestMessages.foldedHeaders.fields.first { $0.isNamed("X-Long") }.map { $0.raw.count > 998 } == true)
        #expect(TestMessages.large(bytes: 100_000).size > 99_000)
        #expect(TestMessages.make(body: "a\nb\n").bytes.suffix(6) == Array("a\r\nb\r\n".utf8))
    }
}
