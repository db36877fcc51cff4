import PolicyTestSupport
import TestSupport
import Testing
import TollgatePolicy

@testable import PostfixPolicyStage

func makeStage(_ settings: [(String, Y)], host: TestHost = TestHost()) async throws -> PostfixPolicyStage {
    let stage = try await PostfixPolicyFactory().makeStage(settings: Y.map(settings).settings(), host: host)
    return try #require(stage as? PostfixPolicyStage)
}

/// A context at `phase` of session `session`, as the relay builds it.
func context(
    _ phase: PolicyPhase, session: String = "S1", recipient: String? = nil, recipients: [String] = [],
    sender: String? = "alice@example.com", user: String? = nil, size: Int? = nil,
    connection: ConnectionInfo = ConnectionInfo(), queueID: String? = nil
) -> PolicyContext {
    PolicyContext(
        phase: phase, sessionID: session, listener: "relay", clientAddress: "192.0.2.7",
        helo: phase == .connect ? nil : "client.example.org", tls: connection.tls != nil, connection: connection, authenticatedUser: user,
        sender: phase == .mail || phase == .rcpt || phase == .data ? sender : nil,
        recipients: recipients, recipient: recipient, messageSize: size, queueID: queueID
    )
}

@Suite struct PostfixPolicySettingsTests {
    @Test func badSettingsAreLocatedErrors() {
        let settings = Y.map([
            ("server", "localhost"), ("phases", ["rcpt", "vrfy"]), ("timeout", "soon"), ("cache", "often"), ("colour", "red"),
        ]).settings(file: "/etc/tollgate/tollgate.yaml", line: 20)
        let messages = PostfixPolicyFactory().validate(settings: settings, host: TestHost()).map(\.description)
        #expect(messages.contains("/etc/tollgate/tollgate.yaml:20:13: 'server' must be host:port or unix:/absolute/path, not 'localhost'"), "\(messages)")
        #expect(messages.contains { $0.hasPrefix("/etc/tollgate/tollgate.yaml:23:9: unknown phase 'vrfy'") }, "\(messages)")
        #expect(messages.contains { $0.hasPrefix("/etc/tollgate/tollgate.yaml:24:14: 'timeout' must be a duration") }, "\(messages)")
        #expect(messages.contains { $0.hasPrefix("/etc/tollgate/tollgate.yaml:25:12: 'cache' must be a duration") }, "\(messages)")
        #expect(messages.contains { $0.hasPrefix("/etc/tollgate/tollgate.yaml:26:5: unknown key 'colour'") }, "\(messages)")
        let missing = PostfixPolicyFactory().validate(settings: Y.map([("phases", "rcpt")]).settings(), host: TestHost())
        #expect(missing.map(\.message) == ["missing required key 'server'"])
    }

    @Test func goodSettingsParse() throws {
        let parsed = try #require(PostfixPolicySettings.parse(Y.map([
            ("server", "unix:/run/postfwd.sock"), ("phases", ["mail", "rcpt", "data"]), ("timeout", "2s"), ("cache", "30s"),
        ]).settings()).0)
        #expect(parsed.server == .unix(path: "/run/postfwd.sock"))
        #expect(parsed.phases == [.mail, .rcpt, .data] && parsed.timeout == 2 && parsed.cacheTTL == 30)
        let defaults = try #require(PostfixPolicySettings.parse(Y.map([("server", "[::1]:10045")]).settings()).0)
        #expect(defaults.server == .tcp(host: "::1", port: 10045) && defaults.phases == [.rcpt] && defaults.cacheTTL == 0)
    }
}

@Suite struct PolicyActionTests {
    @Test func actionsMapAsPostfixDoes() throws {
        #expect(try PolicyAction.parse("REJECT not here") == .reject(PolicyReply(code: 554, enhancedCode: "5.7.1", text: "not here")))
        #expect(try PolicyAction.parse("reject") == .reject(PolicyReply(code: 554, enhancedCode: "5.7.1", text: "Access denied")))
        #expect(try PolicyAction.parse("REJECT 5.7.9 custom") == .reject(PolicyReply(code: 554, enhancedCode: "5.7.9", text: "custom")))
        #expect(try PolicyAction.parse("550 5.1.1 no such user") == .reject(PolicyReply(code: 550, enhancedCode: "5.1.1", text: "no such user")))
        #expect(try PolicyAction.parse("521 go away") == .reject(PolicyReply(code: 521, enhancedCode: "5.7.1", text: "go away")))
        #expect(try PolicyAction.parse("451 4.3.2 busy") == .defer(PolicyReply(code: 451, enhancedCode: "4.3.2", text: "busy")))
        #expect(try PolicyAction.parse("DEFER later") == .defer(PolicyReply(code: 450, enhancedCode: "4.7.1", text: "later")))
        #expect(try PolicyAction.parse("defer_if_permit Rate limit reach, retry later") == .defer(PolicyReply(code: 450, enhancedCode: "4.7.1", text: "Rate limit reach, retry later")))
        #expect(try PolicyAction.parse("DEFER_IF_REJECT x") == .defer(PolicyReply(code: 450, enhancedCode: "4.7.1", text: "x")))
        #expect(try PolicyAction.parse("dunno") == .continue(keyword: "DUNNO"))
        #expect(try PolicyAction.parse("OK") == .continue(keyword: "OK"))
        #expect(try PolicyAction.parse("12345") == .continue(keyword: "12345"))
        #expect(try PolicyAction.parse("PREPEND X-Policy: checked by postfwd") == .prepend(name: "X-Policy", value: "checked by postfwd"))
        #expect(try PolicyAction.parse("HOLD look at it") == .hold("look at it"))
        #expect(try PolicyAction.parse("DISCARD spam") == .discard("spam"))
        #expect(try PolicyAction.parse("WARN odd") == .warn("odd"))
        #expect(try PolicyAction.parse("BCC audit@example.com") == .ignored(keyword: "BCC", text: "audit@example.com"))
        #expect(try PolicyAction.parse("REDIRECT x@example.com") == .unsupported(keyword: "REDIRECT"))
        #expect(try PolicyAction.parse("FILTER smtp:[10.0.0.1]") == .unsupported(keyword: "FILTER"))
        for garbage in ["", "MAYBE", "PREPEND no colon", "permit_mynetworks", "350 continue", "HTTP/1.1 200 OK"] {
            #expect(throws: PolicyAction.Garbage.self, "\(garbage)") { try PolicyAction.parse(garbage) }
        }
    }
}
