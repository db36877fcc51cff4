import Testing
import TollgatePolicy
@testable import TollgateApp

/// How the relay renders the stages' own samples (ABI 3) after its registry.
@Suite struct StageMetricsExpositionTests {
    @Test func samplesBecomeFamiliesUnderThePluginsPrefix() {
        let rendered = StageMetricsExposition.render([
            ("ldap", [
                .counter("cache_hits_total", "Hits", 3),
                .gauge("cache_entries", "Entries", labels: ["kind": "positive"], 2),
                .gauge("cache_entries", "Entries", labels: ["kind": "negative"], 0.5),
            ]),
            ("postfix-policy", [.counter("requests_total", "Requests\nsent", labels: ["server": "a\"b\\c"], 7)]),
        ])
        #expect(rendered.rejected == [])
        #expect(rendered.text == """
            # HELP tollgate_ldap_cache_hits_total Hits
            # TYPE tollgate_ldap_cache_hits_total counter
            tollgate_ldap_cache_hits_total{stage="ldap"} 3
            # HELP tollgate_ldap_cache_entries Entries
            # TYPE tollgate_ldap_cache_entries gauge
            tollgate_ldap_cache_entries{stage="ldap",kind="positive"} 2
            tollgate_ldap_cache_entries{stage="ldap",kind="negative"} 0.5
            # HELP tollgate_postfix_policy_requests_total Requests sent
            # TYPE tollgate_postfix_policy_requests_total counter
            tollgate_postfix_policy_requests_total{stage="postfix-policy",server="a\\"b\\\\c"} 7

            """)
    }

    @Test func badNamesLabelsAndKindsAreLeftOutAndNamed() {
        let rendered = StageMetricsExposition.render([
            ("x", [
                .counter("1st_total", "starts with a digit", 1),
                .counter("has-dash", "dash", 1),
                .counter("ok_total", "fine", labels: ["stage": "mine"], 1),
                .counter("ok_total", "fine", labels: ["bad label": "v"], 1),
                .counter("same", "a counter", 1),
                .gauge("same", "then a gauge", 2),
            ]),
        ])
        #expect(rendered.rejected == ["x: 1st_total", "x: has-dash", "x: ok_total", "x: ok_total", "x: same"])
        #expect(rendered.text == "# HELP tollgate_x_same a counter\n# TYPE tollgate_x_same counter\ntollgate_x_same{stage=\"x\"} 1\n")
    }

    @Test func aNameOfTheRelaysOwnRegistryIsLeftOut() {
        let registry = Array("# HELP tollgate_smtp_messages_accepted_total Accepted\n# TYPE tollgate_smtp_messages_accepted_total counter\ntollgate_smtp_messages_accepted_total 4\n".utf8)
        let reserved = StageMetricsExposition.families(in: registry)
        #expect(reserved == ["tollgate_smtp_messages_accepted_total"])
        let rendered = StageMetricsExposition.render([
            ("smtp", [.counter("messages_accepted_total", "a plugin called smtp", 1), .counter("own_total", "its own", 2)]),
        ], reserved: reserved)
        #expect(rendered.rejected == ["smtp: messages_accepted_total"])
        #expect(rendered.text == "# HELP tollgate_smtp_own_total its own\n# TYPE tollgate_smtp_own_total counter\ntollgate_smtp_own_total{stage=\"smtp\"} 2\n")
    }

    @Test func aStageThatExportsNothingAddsNothing() async {
        struct Quiet: PolicyStage {
            func evaluate(_ context: PolicyContext) async throws -> PolicyDecision { .continue }
        }
        #expect(StageMetricsExposition.render([("quiet", [])]).text == "")
        #expect(await Quiet().metrics() == [])
    }
}
