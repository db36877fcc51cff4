@testable import DomainBlock
import Testing
import TollgatePolicy
import TollgatePolicyTestKit

/// How a third-party plugin tests itself with Tollgate's test kit: settings written
/// like YAML (with the locations the relay's loader would give), a test host, a
/// `TestSession` that gives the context of each phase as the relay would (or drives
/// the stage through a whole session), and `TestMessages` fixtures. No relay needed.
@Suite struct DomainBlockTests {
    @Test func missingDomainsIsALocatedError() {
        let settings: Y = ["domain": "typo.example"]
        let problems = DomainBlockFactory().validate(settings: settings.settings(file: "/etc/tollgate/tollgate.yaml", line: 20), host: TestHost())
        #expect(problems.map(\.description).contains { $0.hasPrefix("/etc/tollgate/tollgate.yaml:20:5: ") && $0.contains("domain") })
        #expect(problems.map(\.description).contains { $0.contains("needs domains") })
    }

    @Test func refusesABlockedRecipientAndTagsTheOthers() async throws {
        let settings: Y = ["domains": ["Blocked.Example"]]
        let stage = try await DomainBlockFactory().makeStage(settings: settings.settings(), host: TestHost())
        let blocked = try await stage.evaluate(PolicyContext(phase: .rcpt, sessionID: "s1", listener: "relay", clientAddress: "192.0.2.1", recipient: "x@blocked.example"))
        #expect(blocked.verdict.reply?.code == 550)
        let allowed = try await stage.evaluate(PolicyContext(phase: .rcpt, sessionID: "s1", listener: "relay", clientAddress: "192.0.2.1", recipient: "x@fine.example"))
        #expect(allowed.verdict == .continue)
        #expect(allowed.facts.tags["domain-block"] == "checked")
    }

    /// A whole session through the stage, as the relay would run it: the blocked
    /// recipient is refused and left out of the envelope, the message is marked with
    /// the transaction's queue id, for every shape of message the kit has.
    @Test func aWholeSessionForEveryKindOfMessage() async throws {
        let stage = try await DomainBlockFactory().makeStage(settings: (["domains": ["blocked.example"]] as Y).settings(), host: TestHost())
        for (name, message) in TestMessages.all {
            var session = TestSession()
            let (steps, delivered) = try await session.run(stage, from: "alice@example.com", to: ["bob@example.net", "eve@blocked.example"], message: message)
            #expect(steps.map(\.phase) == [.rcpt, .rcpt, .data], "\(name)")
            #expect(steps[1].decision.verdict.reply?.code == 550, "\(name)")
            #expect(delivered.header("X-Domain-Block-Queue-ID") == "TESTQ1", "\(name)")
            #expect(session.facts.tags["domain-block"] == "checked", "\(name)")
        }
    }

    @Test func marksTheMessageAtData() async throws {
        let stage = try await DomainBlockFactory().makeStage(settings: (["domains": []] as Y).settings(), host: TestHost())
        let message = MessageContent(parsing: Array("From: a@x.example\r\nX-Internal: 1\r\n\r\nbody\r\n".utf8))
        let decision = try await stage.evaluate(PolicyContext(phase: .data, sessionID: "s1", listener: "relay", clientAddress: "192.0.2.1", message: message))
        let changed = try message.applying(decision.changes)
        #expect(String(decoding: changed.bytes, as: UTF8.self) == "From: a@x.example\r\nX-Domain-Block: checked\r\n\r\nbody\r\n")
    }
}
