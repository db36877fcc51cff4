import Hummingbird
import HummingbirdBcrypt
import Logging
import Synchronization
import Testing
import TollgateSpool

@testable import TollgateConsole

/// The console's pieces without a server: escaping, the users file and bcrypt, the
/// sessions, the event tally and the log handler that feeds it.
@Suite struct ConsoleUnitTests {
    @Test func escapingLeavesNoMarkupAndNoControls() {
        #expect(HTML.escape("<script>alert('x')</script> & \"q\"") == "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;")
        #expect(HTML.escape("a\u{0}b\u{1B}[31mc\td\ne") == "ab[31mc\td\ne")
        #expect(HTML.escape("Grüße ✓") == "Grüße ✓")
        #expect(HTML.query("a b&c=d/é") == "a%20b%26c%3Dd%2F%C3%A9")
    }

    /// A reply is a remote server's text: on the message page it is text, never markup.
    @Test func anAttemptsReplyIsEscaped() {
        let attempt = DeliveryAttempt(number: 3, at: 0, upstream: "smarthost", host: "mx1.example:25", owner: "relay-a/1/x", recipients: [
            .init(address: "b@example.net", code: 550, enhancedStatus: "5.7.1", text: "<script>alert(1)</script> & <img src=x>", state: .failed),
            .init(address: "c@example.net", code: 250, enhancedStatus: "2.0.0", text: "ok", state: .delivered),
        ])
        let html = ConsolePages.attempts([attempt])
        #expect(!html.contains("<script>") && !html.contains("<img"))
        #expect(html.contains("<td>550 5.7.1 &lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;img src=x&gt;</td>"), "\(html)")
        #expect(html.contains("<td rowspan=\"2\" class=\"n\">3</td><td rowspan=\"2\">1970-01-01T00:00:00Z</td><td rowspan=\"2\">smarthost</td><td rowspan=\"2\">mx1.example:25</td>"), "\(html)")
        #expect(html.contains("Attempts before #3 are not kept."))
        #expect(ConsolePages.attempts([]).contains("No delivery attempt recorded yet."))
    }

    @Test func usersFileAcceptsBcryptOnlyAndSaysWhereNot() throws {
        let hash = Bcrypt.hash("correct horse", cost: 4)
        // htpasswd -B writes $2y$: the same algorithm, accepted and verified.
        let y = "$2y$" + hash.dropFirst(4)
        let users = try ConsoleUsers.parse("# admins\n\nadmin:\(y)\nops:\(hash)\r\n", file: "u.htpasswd")
        #expect(users.names == ["admin", "ops"])
        do {
            _ = try ConsoleUsers.parse("admin:{SHA}abc\nnocolon\nadmin2:\(hash)\nadmin2:\(hash)\n bad name:\(hash)\n", file: "u.htpasswd")
            Issue.record("a bad file was accepted")
        } catch {
            #expect(error.description.components(separatedBy: "\n") == [
                "u.htpasswd:1: the hash for admin is not bcrypt ($2y$, $2b$ or $2a$ with a cost and 53 characters); make it with htpasswd -B",
                "u.htpasswd:2: expected name:hash (as `htpasswd -B` writes)",
                "u.htpasswd:4: admin2 is listed twice",
                "u.htpasswd:5: a user name must not be empty or contain spaces",
            ])
        }
        #expect(throws: ConsoleUsers.ProblemList.self) { try ConsoleUsers.parse("# nobody\n", file: "empty") }
    }

    @Test func verificationTakesTheRightPasswordOnly() async throws {
        let hash = "$2y$" + Bcrypt.hash("correct horse", cost: 4).dropFirst(4)
        let users = try ConsoleUsers.parse("admin:\(hash)\n", file: "u")
        #expect(await users.verify("admin", "correct horse"))
        #expect(!(await users.verify("admin", "correct horse ")))
        #expect(!(await users.verify("admin", "")))
        #expect(!(await users.verify("nobody", "correct horse")))
    }

    @Test func sessionsExpireAndEndWithTheirUser() {
        let sessions = ConsoleSessions(timeout: 60)
        let token = sessions.start(user: "admin", now: 1000)
        #expect(token.count == 64 && token.allSatisfy(\.isHexDigit))
        #expect(sessions.start(user: "admin", now: 1000) != token)
        let live = sessions.session(token, now: 1050) { _, _ in true }
        #expect(live?.user == "admin" && live?.csrf.count == 64 && live?.csrf != token)
        // Use renews it; idleness past the timeout ends it.
        #expect(sessions.session(token, now: 1100) { _, _ in true } != nil)
        #expect(sessions.session(token, now: 1161) { _, _ in true } == nil)
        // A user no longer in the file, or with another password: the session ends.
        let other = sessions.start(user: "gone", hash: "h1", now: 2000)
        #expect(sessions.session(other, now: 2001) { user, hash in user == "gone" && hash == "h1" } != nil)
        #expect(sessions.session(other, now: 2002) { user, hash in user == "gone" && hash == "h2" } == nil, "the password changed")
        #expect(sessions.session(other, now: 2003) { _, _ in true } == nil)
        #expect(sessions.session(nil, now: 2000) { _, _ in true } == nil && sessions.session("", now: 2000) { _, _ in true } == nil)
        #expect(ConsoleSessions.same("abc", "abc") && !ConsoleSessions.same("abc", "abd") && !ConsoleSessions.same("", "") && !ConsoleSessions.same("ab", "abc"))
    }

    @Test func hostNamesOtherThanTheConsolesAreRefused() {
        let allowed: Set = ["localhost", "console.corp.example"]
        for good in ["127.0.0.1:9465", "127.0.0.1", "[::1]:9465", "localhost:9465", "LOCALHOST", "console.corp.example"] {
            #expect(HostCheck<BasicRequestContext>.accepts(good, allowed), "\(good)")
        }
        for bad in ["attacker.example:9465", "127.0.0.1.attacker.example", "", ":9465", "localhost.attacker.example"] {
            #expect(!HostCheck<BasicRequestContext>.accepts(bad, allowed), "\(bad)")
        }
    }

    @Test func signInAttemptsAreCountedWhenTheyStart() {
        let throttle = SignInThrottle()
        let a = "192.0.2.1", b = "198.51.100.7"
        // Five at once (none has failed yet): the sixth is refused all the same.
        for i in 0..<SignInThrottle.limit { #expect(throttle.attempt("admin", from: a, now: Double(i))) }
        #expect(!throttle.attempt("admin", from: a, now: 10) && throttle.attempt("other", from: a, now: 10))
        // Failing in admin's name from one address does not lock admin out from another.
        #expect(throttle.attempt("admin", from: b, now: 10))
        #expect(throttle.attempt("admin", from: a, now: SignInThrottle.window + 1), "the first attempt has aged out")
        throttle.succeeded("admin", from: a)
        #expect(throttle.attempt("admin", from: a, now: SignInThrottle.window + 2))
    }

    /// One address may not spread its guesses over many names.
    @Test func oneAddressIsLimitedOverAllNames() {
        let throttle = SignInThrottle()
        for i in 0..<SignInThrottle.addressLimit { #expect(throttle.attempt("name\(i)", from: "192.0.2.1", now: 1)) }
        #expect(!throttle.attempt("fresh", from: "192.0.2.1", now: 2))
        #expect(throttle.attempt("fresh", from: "192.0.2.2", now: 2))
        #expect(throttle.attempt("fresh", from: "192.0.2.1", now: 2 + SignInThrottle.window))
    }

    @Test func theTallyCountsTheLastHourOfEvents() {
        let tally = EventTally(window: 3600, started: 0)
        func accepted(_ sender: String, user: String? = nil, at: Double) {
            var m: Logger.Metadata = ["event": "accepted", "smtp.mail.from": .string(sender), "client.address": "192.0.2.1", "policy.department": "-"]
            if let user { m["policy.user"] = .string(user) }
            tally.record(m, at: at)
        }
        accepted("<old@example.com>", at: 0)
        accepted("<a@example.com>", user: "alice", at: 4000)
        accepted("<a@example.com>", user: "alice", at: 4001)
        accepted("<>", at: 4002)
        tally.record(["event": "refused", "policy.stage": "rate-limit", "policy.phase": "mail", "smtp.reply": "451 4.7.1 no"], at: 4003)
        tally.record(["event": "delivery", "upstream.name": "primary", "delivery.result": "sent"], at: 4004)
        tally.record(["event": "delivery", "upstream.name": "primary", "delivery.result": "deferred"], at: 4005)
        tally.record(["event": "something else"], at: 4006)
        tally.record(["no": "event"], at: 4006)
        let s = tally.snapshot(now: 4100)
        #expect(s.acceptedBySender == [.init("a@example.com", 2), .init("<>", 1)], "the event at 0 is older than the hour")
        #expect(s.acceptedByUser == [.init("alice", 2)] && s.acceptedByDepartment.isEmpty)
        #expect(s.refusalsByStage == [.init("rate-limit", 1)] && s.recentRefusals.first?.reply == "451 4.7.1 no")
        #expect(s.upstreams == [.init(name: "primary", sent: 1, deferred: 1, bounced: 0)])
        #expect(s.busiest.map(\.sender) == ["a@example.com", ""] && s.busiest.first?.user == "alice")
    }

    /// The handler counts events the log's level would drop, and logs only what it lets through.
    @Test func theTallyingHandlerSeesInfoEventsAtAnyLevel() {
        struct Recorder: LogHandler {
            let lines: TallyLines
            var metadata: Logger.Metadata = [:]
            var logLevel: Logger.Level = .warning
            subscript(metadataKey key: String) -> Logger.Metadata.Value? {
                get { metadata[key] }
                set { metadata[key] = newValue }
            }
            func log(event: LogEvent) { lines.append("\(event.message)") }
        }
        let lines = TallyLines()
        let tally = EventTally(started: 0)
        var logger = Logger(label: "t", factory: { _ in TallyingLogHandler(Recorder(lines: lines), tally: tally, clock: { 100 }) })
        logger[metadataKey: "upstream.name"] = "primary"
        logger.info("delivered", metadata: ["event": "delivery", "delivery.result": "sent"])
        logger.warning("careful")
        #expect(lines.all == ["careful"])
        #expect(tally.snapshot(now: 100).upstreams == [.init(name: "primary", sent: 1)])
    }
}

final class TallyLines: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}

