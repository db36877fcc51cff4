import Testing
import PolicyTestSupport
import TollgatePolicy

@testable import SenderAllowlistStage

@Suite("sender-allowlist: settings")
struct SenderAllowlistSettingsTests {
    @Test("every key parses; none are required")
    func parses() throws {
        let (parsed, diagnostics) = SenderAllowlistSettings.parse(
            ([
                "senders": ["postmaster@example.com"],
                "networks": ["10.0.0.0/8", "2001:db8::/32"],
                "unauthenticated_senders": "*@devices.example.com",
                "require_auth_outside_networks": "true",
                "allow_null_sender": "no",
                "check_header_from": "on",
            ] as Y).settings()
        )
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        let s = try #require(parsed)
        #expect(s.senders.map(\.text) == ["postmaster@example.com"])
        #expect(s.networks.map(\.text) == ["10.0.0.0/8", "2001:db8::/32"])
        #expect(s.unauthenticatedSenders.map(\.text) == ["*@devices.example.com"])
        #expect(s.requireAuthOutsideNetworks && !s.allowNullSender && s.checkHeaderFrom)
        #expect(SenderAllowlistSettings.parse(([:] as Y).settings()).1.isEmpty)
        #expect(SenderAllowlistSettings.parse((nil as Y).settings()).1.isEmpty)
    }

    @Test("problems are reported with file:line:column")
    func located() {
        // Line 10: senders, 11: bad pattern (column 9, after "- "), 12: good pattern, 13: networks, 14: bad network,
        // 15: check_header_from, 16: colour.
        let settings: Y = [
            "senders": ["finance.example.com", "*@example.com"],
            "networks": ["10.0.0.0/33"],
            "check_header_from": "maybe",
            "colour": "blue",
        ]
        let diagnostics = SenderAllowlistSettings.parse(settings.settings()).1.map(\.description)
        #expect(diagnostics == [
            "/etc/tollgate/tollgate.yaml:16:5: unknown key 'colour' (expected one of: allow_null_sender, check_header_from, networks, require_auth_outside_networks, senders, unauthenticated_senders)",
            "/etc/tollgate/tollgate.yaml:11:9: 'senders': 'finance.example.com' is not a sender pattern (expected *, *@domain or local@domain)",
            "/etc/tollgate/tollgate.yaml:14:9: 'networks': '10.0.0.0/33': the prefix length must be 0…32",
            "/etc/tollgate/tollgate.yaml:15:24: 'check_header_from' must be true or false",
        ])
        let wrongShape = SenderAllowlistSettings.parse(("just text" as Y).settings()).1.map(\.description)
        #expect(wrongShape == ["/etc/tollgate/tollgate.yaml:10:5: the sender-allowlist stage's settings must be a map"])
        let pointless = SenderAllowlistSettings.parse((["unauthenticated_senders": ["*@x.example"]] as Y).settings()).1.map(\.description)
        #expect(pointless == ["/etc/tollgate/tollgate.yaml:11:7: 'unauthenticated_senders' has no effect without 'networks'"])
    }

    @Test("validate walks every department's section, located in its policy file")
    func departments() async {
        let host = TestHost(sections: [
            "finance": (["senders": ["*@finance.example.com", "bad pattern"], "allow_null_sender": "sometimes"] as Y)
                .settings(file: "/etc/tollgate/policies/finance.yaml", line: 7, column: 3),
            "sales": (["sendres": ["*@sales.example.com"]] as Y)
                .settings(file: "/etc/tollgate/policies/sales.yaml", line: 5, column: 3),
            "engineering": (["*@eng.example.com", "eng"] as Y)
                .settings(file: "/etc/tollgate/policies/engineering.yaml", line: 4, column: 3),
        ])
        let diagnostics = SenderAllowlistFactory().validate(settings: ([:] as Y).settings(), host: host).map(\.description)
        #expect(diagnostics == [
            "/etc/tollgate/policies/finance.yaml:9:7: 'senders': 'bad pattern' is not a sender pattern (expected *, *@domain or local@domain)",
            "/etc/tollgate/policies/finance.yaml:10:22: 'allow_null_sender' must be true or false",
            "/etc/tollgate/policies/sales.yaml:5:3: department 'sales': unknown key 'sendres' (expected one of: allow_null_sender, networks, senders, unauthenticated_senders)",
            "/etc/tollgate/policies/engineering.yaml:5:5: 'senders': 'eng' is not a sender pattern (expected *, *@domain or local@domain)",
        ])
    }

    @Test("makeStage refuses invalid settings and invalid department sections")
    func makeStageRefuses() async {
        await #expect(throws: PolicyDiagnostic.self) {
            _ = try await SenderAllowlistFactory().makeStage(settings: (["networks": "nowhere"] as Y).settings(), host: TestHost())
        }
        let host = TestHost(sections: ["finance": (["senders": "nope"] as Y).settings()])
        await #expect(throws: PolicyDiagnostic.self) {
            _ = try await SenderAllowlistFactory().makeStage(settings: ([:] as Y).settings(), host: host)
        }
        #expect(SenderAllowlistFactory().name == "sender-allowlist")
    }
}
