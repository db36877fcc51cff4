import Foundation
import TestSupport
import Testing

/// SPEC §8 shadow mode on a live relay: a rate limit of one message per client and
/// hour, in shadow mode, would defer the second and third messages; all three are
/// accepted, and the would-be verdicts are in `queue show`, the log, `/metrics` and
/// `tollgate explain`.
extension LiveRelayTests {
    @Suite struct ShadowModeLiveTests {
        @Test func aShadowRateLimitRecordsWhatItWouldHaveRefused() throws {
            let metricsPort = freePort()
            let relay = try RelayProcess(
                rest: """
                    upstreams:
                      - name: held
                        hosts: [127.0.0.1:\(freePort())]
                        tls: none
                    delivery:
                      default_upstream: held
                      retry: [1h]
                    stages:
                      - use: rate-limit
                        mode: shadow
                        settings:
                          limits:
                            - { key: client, messages: 1, per: 1h }
                    metrics: { address: 127.0.0.1:\(metricsPort) }
                    """
            )
            try relay.start()
            defer { relay.stop() }
            var ids: [String] = []
            for n in 0..<3 {
                let reply = try SMTPTestClient.sendMessage(port: relay.port, from: "a@example.com", to: ["b@example.net"], data: testMessage(marker: "shadow-\(n)"))
                #expect(reply.code == 250, "shadow verdicts are not applied: \(reply)")
                if let id = reply.text.split(separator: " ").last { ids.append(String(id)) }
            }
            try #require(ids.count == 3)
            let first = try relay.cli(["queue", "show", ids[0]]).stdout
            #expect(first.contains("rate-limit: continue (shadow)"), "\(first)")
            let third = try relay.cli(["queue", "show", ids[2]]).stdout
            #expect(third.contains("rate-limit: defer (shadow)"), "\(third)")
            #expect(relay.log.contains("shadow policy decision"), "\(relay.log.suffix(2000))")
            let metrics = try ChildProcess.run(
                "python3", ["-c", "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:\(metricsPort)/metrics', timeout=5).read().decode())"], timeout: 10
            ).stdout
            #expect(metrics.contains(#"tollgate_policy_shadow_decisions_total{stage="rate-limit",phase="mail",verdict="defer"} 2"#), "\(metrics)")
            let explain = try relay.cli(["explain", "--from", "a@example.com", "--to", "b@example.net", "--client", "127.0.0.1"])
            #expect(explain.stdout.contains("rate-limit"), "\(explain.stdout)")
            #expect(explain.stdout.contains("(shadow)"), "\(explain.stdout)")
            #expect(explain.status == 0, "a shadow refusal does not refuse")
        }
    }
}
