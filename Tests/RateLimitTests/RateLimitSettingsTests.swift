import Testing
import PolicyTestSupport
import TollgatePolicy

@testable import RateLimitStage

@Suite("rate-limit: settings")
struct RateLimitSettingsTests {
    @Test("rules parse into one limit per measure")
    func parses() throws {
        let settings: Y = [
            "limits": [
                ["key": "user", "messages": 200, "per": "1h"],
                ["key": "Client", "messages": 1000, "recipients": 5000, "per": "30m"],
                ["key": "sender", "bytes": "2GB", "per": "1d"],
                ["key": "department", "bytes": "1048576", "per": "90s"],
            ],
            "max_keys": 5000,
        ]
        let (parsed, diagnostics) = RateLimitSettings.parse(settings.settings())
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        let s = try #require(parsed)
        #expect(s.maxKeys == 5000)
        #expect(s.limits == [
            RateLimit(key: .user, measure: .messages, limit: 200, window: 3600),
            RateLimit(key: .client, measure: .messages, limit: 1000, window: 1800),
            RateLimit(key: .client, measure: .recipients, limit: 5000, window: 1800),
            RateLimit(key: .sender, measure: .bytes, limit: 2 << 30, window: 86400),
            RateLimit(key: .department, measure: .bytes, limit: 1 << 20, window: 90),
        ])
        #expect(s.limits.map(\.description) == [
            "200 messages per 1h", "1000 messages per 30m", "5000 recipients per 30m", "2GB per 1d", "1MB per 90s",
        ])
        #expect(RateLimitSettings.parse(([:] as Y).settings()).1.isEmpty)
        #expect(RateLimitSettings.parse((nil as Y).settings()).1.isEmpty)
    }

    @Test("durations and sizes")
    func units() {
        #expect(RateLimitFormat.parseDuration("45s") == 45)
        #expect(RateLimitFormat.parseDuration("15m") == 900)
        #expect(RateLimitFormat.parseDuration("1.5h") == 5400)
        #expect(RateLimitFormat.parseDuration("7d") == 604_800)
        for bad in ["", "h", "10", "-1h", "1w", "1 h x"] { #expect(RateLimitFormat.parseDuration(bad) == nil, "\(bad)") }
        #expect(RateLimitFormat.parseSize("512") == 512)
        #expect(RateLimitFormat.parseSize("512B") == 512)
        #expect(RateLimitFormat.parseSize("10KB") == 10_240)
        #expect(RateLimitFormat.parseSize("25 MB") == 25 << 20)
        #expect(RateLimitFormat.parseSize("1gb") == 1 << 30)
        for bad in ["", "MB", "1.5MB", "-5", "1TB", "99999999999999999999GB"] { #expect(RateLimitFormat.parseSize(bad) == nil, "\(bad)") }
    }

    @Test("problems are reported with file:line:column")
    func located() {
        // Line 10 limits; 11 key/12 messages/13 per; 14 key/15 per; 16 key/17 bytes/18 per/19 colour; 20 "nonsense"; 21 max_keys.
        let settings: Y = [
            "limits": [
                ["key": "user", "messages": 0, "per": "1h"],
                ["key": "mailbox", "per": "1w"],
                ["key": "sender", "bytes": "lots", "per": "1d", "colour": "red"],
                "nonsense",
            ],
            "max_keys": "many",
            "burst": 5,
        ]
        let diagnostics = RateLimitSettings.parse(settings.settings()).1.map(\.description)
        #expect(diagnostics == [
            "/etc/tollgate/tollgate.yaml:22:5: unknown key 'burst' (expected one of: limits, max_keys)",
            "/etc/tollgate/tollgate.yaml:12:19: 'messages' must be a whole number of at least 1",
            "/etc/tollgate/tollgate.yaml:14:14: 'key' must be one of user, sender, client, department, not 'mailbox'",
            "/etc/tollgate/tollgate.yaml:15:14: 'per' must be a duration from 1s to 31d such as 30m, 1h or 1d, not '1w'",
            "/etc/tollgate/tollgate.yaml:14:9: a rate limit needs at least one of 'messages', 'recipients', 'bytes'",
            "/etc/tollgate/tollgate.yaml:19:9: unknown key 'colour' (expected one of: bytes, key, messages, per, recipients)",
            "/etc/tollgate/tollgate.yaml:17:16: 'bytes' must be a size such as 500MB (at least 1 byte)",
            "/etc/tollgate/tollgate.yaml:20:9: a rate limit must be a map such as {key: user, messages: 200, per: 1h}",
            "/etc/tollgate/tollgate.yaml:21:15: 'max_keys' must be a whole number from 100 to 100000000",
        ])
        let missing = RateLimitSettings.parse((["limits": [["messages": 5]]] as Y).settings()).1.map(\.description)
        #expect(missing == [
            "/etc/tollgate/tollgate.yaml:11:9: a rate limit needs 'key' (user, sender, client or department)",
            "/etc/tollgate/tollgate.yaml:11:9: a rate limit needs 'per' (a duration such as 1h)",
        ])
        let notList = RateLimitSettings.parse((["limits": "200/h"] as Y).settings()).1.map(\.description)
        #expect(notList == ["/etc/tollgate/tollgate.yaml:10:13: 'limits' must be a list of rules such as {key: user, messages: 200, per: 1h}"])
    }

    @Test("validate walks every department's section, located in its policy file")
    func departments() {
        let host = TestHost(sections: [
            "finance": ([["key": "user", "messages": 200, "per": "1h"], ["key": "department", "recipients": "-3", "per": "1d"]] as Y)
                .settings(file: "/etc/tollgate/policies/finance.yaml", line: 8, column: 3),
            "sales": (["limit": [["key": "user", "messages": 5, "per": "1h"]]] as Y)
                .settings(file: "/etc/tollgate/policies/sales.yaml", line: 6, column: 3),
            "engineering": ("lots" as Y).settings(file: "/etc/tollgate/policies/engineering.yaml", line: 9, column: 14),
        ])
        let diagnostics = RateLimitFactory().validate(settings: ([:] as Y).settings(), host: host).map(\.description)
        #expect(diagnostics == [
            "/etc/tollgate/policies/finance.yaml:12:17: department 'finance': 'recipients' must be a whole number of at least 1",
            "/etc/tollgate/policies/sales.yaml:6:3: department 'sales': unknown key 'limit' (expected one of: limits)",
            "/etc/tollgate/policies/engineering.yaml:9:14: department 'engineering': the rate-limit section must be a list of rules such as {key: user, messages: 200, per: 1h}",
        ])
    }

    @Test("makeStage refuses invalid settings and invalid department sections")
    func makeStageRefuses() async {
        await #expect(throws: PolicyDiagnostic.self) {
            _ = try await RateLimitFactory().makeStage(settings: (["limits": [["key": "user", "per": "1h"]]] as Y).settings(), host: TestHost())
        }
        let host = TestHost(sections: ["finance": ([["key": "nobody", "messages": 1, "per": "1h"]] as Y).settings()])
        await #expect(throws: PolicyDiagnostic.self) {
            _ = try await RateLimitFactory().makeStage(settings: ([:] as Y).settings(), host: host)
        }
        #expect(RateLimitFactory().name == "rate-limit")
    }
}
