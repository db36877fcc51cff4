import Testing
import TestSupport

/// The `.smtp` scenario format itself: writes, escapes, expansions, reply lines and
/// located errors.
@Suite struct TranscriptFormatTests {
    @Test func consecutiveClientLinesAreOneWrite() throws {
        let t = try Transcript(parsing: "< 220\n> MAIL FROM:<a@b>\n>> x\\r\\n\\x00{y*3}\n< 250 2.1.0 Ok close\n", name: "t.smtp")
        #expect(t.steps.count == 3)
        guard case .send(let bytes) = t.steps[1].kind else { Issue.record("no write"); return }
        #expect(bytes == Array("MAIL FROM:<a@b>\r\nx\r\n".utf8) + [0] + Array("yyy".utf8))
        #expect(t.steps[1].line == 2)
        guard case .expect(let reply) = t.steps[2].kind else { Issue.record("no reply"); return }
        #expect(reply == ReplyExpectation(code: 250, enhancedCode: "2.1.0", text: "Ok", closes: true))
    }

    @Test func repeatBlocksNumberTheirPasses() throws {
        let t = try Transcript(parsing: "repeat 2\n> RCPT TO:<r{i}@x>\n< 250\nend\n", name: "t.smtp")
        #expect(t.steps.count == 4)
        guard case .send(let second) = t.steps[2].kind else { Issue.record("no write"); return }
        #expect(second == Array("RCPT TO:<r2@x>\r\n".utf8))
        #expect(t.steps[2].location(in: t.name) == "t.smtp:2 (pass 2)")
    }

    @Test func replyTextFragments() {
        let ehlo = SMTPTestReply(code: 250, lines: ["relay.test", "PIPELINING", "STARTTLS"])
        #expect(ReplyExpectation(code: 250, text: "pipelining & STARTTLS").mismatch(ehlo, closed: false) == nil)
        #expect(ReplyExpectation(code: 250, text: "!STARTTLS").mismatch(ehlo, closed: false) != nil)
        #expect(ReplyExpectation(code: 250).mismatch(ehlo, closed: true) != nil)
    }

    @Test func errorsNameFileAndLine() {
        let cases = [
            "< 220\n>> \\q\n": 2,
            "< 220\nrepeat 3\n> NOOP\n": 2,
            "< 220\nconfig tls=none\n": 2,
            "config tls=implicit\n< 220\n": 1,
            "< 220\npolicy rcpt reject 450 4.7.1 x\n": 2,
            "< 220\n> NOOP {i}\n": 2,
            "< hello\n": 1,
        ]
        for (source, line) in cases {
            #expect(throws: TranscriptError.self) { try Transcript(parsing: source, name: "t.smtp") }
            do {
                _ = try Transcript(parsing: source, name: "t.smtp")
            } catch {
                #expect(error.line == line, "\(source.debugDescription): \(error)")
            }
        }
    }

    @Test func machineOnlyScenariosMustSaySo() throws {
        #expect(throws: TranscriptError.self) { try Transcript(parsing: "policy rcpt reject 550 5.7.1 no\n< 220\n", name: "t.smtp") }
        let t = try Transcript(parsing: "live: no, verdicts\npolicy rcpt reject 550 5.7.1 no\n< 220\n", name: "t.smtp")
        #expect(t.notLiveReason == "verdicts")
    }
}
