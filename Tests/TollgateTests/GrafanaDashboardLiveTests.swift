import Foundation
import TestSupport
import Testing

/// dist/grafana/tollgate.json against a live relay's `/metrics` after real traffic
/// (a delivery over STARTTLS, a failed AUTH, a broken TLS handshake, a refusal by a
/// stage, a shadow stage, a deferral): every metric name its expressions use is
/// exposed (histograms by their family, `_bucket`/`_sum`/`_count` stripped).
extension LiveRelayTests {
    @Suite(.serialized, .timeLimit(.minutes(2))) struct GrafanaDashboardLiveTests {
        static var dashboardPath: String {
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("dist/grafana/tollgate.json").path
        }

        /// Every `expr` of every panel, and the names `tollgate_…` they use.
        static func expressions() throws -> [String] {
            let data = try Data(contentsOf: URL(fileURLWithPath: dashboardPath))
            let dashboard = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            let panels = try #require(dashboard["panels"] as? [[String: Any]])
            return panels.flatMap { ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String } }
        }

        static func names(in expression: String) -> Set<String> {
            let regex = try! NSRegularExpression(pattern: "tollgate_[a-z_]+")
            let range = NSRange(expression.startIndex..., in: expression)
            return Set(regex.matches(in: expression, range: range).compactMap { Range($0.range, in: expression).map { String(expression[$0]) } })
        }

        @Test func theDashboardIsGrafanaJSONWithAPrometheusVariable() throws {
            let data = try Data(contentsOf: URL(fileURLWithPath: Self.dashboardPath))
            let dashboard = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            #expect(dashboard["title"] as? String == "Tollgate")
            let variables = ((dashboard["templating"] as? [String: Any])?["list"] as? [[String: Any]]) ?? []
            #expect(variables.contains { $0["type"] as? String == "datasource" && $0["query"] as? String == "prometheus" && $0["name"] as? String == "datasource" })
            let panels = (dashboard["panels"] as? [[String: Any]]) ?? []
            let titles = Set(panels.compactMap { $0["title"] as? String })
            for title in ["Throughput", "Queue by state", "Deferrals by upstream", "Refusals by stage", "Stage latency", "Sessions and connections", "TLS and AUTH failures"] {
                #expect(titles.contains(title), "no panel \(title): \(titles.sorted())")
            }
            for panel in panels {
                #expect(((panel["datasource"] as? [String: Any])?["uid"] as? String) == "${datasource}", "\(panel["title"] ?? "")")
            }
            #expect(try Self.expressions().contains { $0.contains("histogram_quantile(") })
        }

        @Test func everyMetricTheDashboardUsesIsExposed() throws {
            let used = try Self.expressions().reduce(into: Set<String>()) { $0.formUnion(Self.names(in: $1)) }
            #expect(used.count >= 15, "\(used.sorted())")

            let dir = try TemporaryDirectory()
            let (relay, sink, certs, metricsPort) = try OperatorMetricsLiveTests.relay(in: dir, more: """

                stages:
                  - use: sender-allowlist
                    settings:
                      networks: [127.0.0.0/8]
                      unauthenticated_senders: ["*@example.com"]
                  - use: rate-limit
                    mode: shadow
                    settings:
                      limits:
                        - { key: client, messages: 1, per: 1h }
                """)
            try relay.start()
            defer { relay.stop() }
            // A sender the allowlist refuses, then the operator metrics' traffic.
            let refused = try SMTPTestClient.connect(port: relay.port)
            _ = try refused.readReply()
            _ = try refused.command("EHLO c.test")
            let mail = try refused.command("MAIL FROM:<a@elsewhere.org>")
            let refusal = mail.code == 250 ? try refused.command("RCPT TO:<c@example.net>") : mail
            #expect(refusal.code / 100 == 5, "\(refusal)")
            refused.close()
            try OperatorMetricsLiveTests.sendTraffic(relay: relay, sink: sink, certs: certs)

            #expect(waitUntil(timeout: 15) { (try? OperatorMetricsLiveTests.scrape(metricsPort)).map { OperatorMetricsLiveTests.value($0, "tollgate_queue_messages{state=\"deferred\"}") == 1 } ?? false })
            let text = try OperatorMetricsLiveTests.scrape(metricsPort)
            // The ldap plugin's metrics need a directory: PolicyRelayTests.ldapCacheHitsReachMetrics
            // checks those names against a relay with a real slapd.
            let missing = Self.missing(used.filter { !$0.hasPrefix("tollgate_ldap_") }, in: text)
            #expect(missing == [], "not exposed: \(missing)\n\(text.prefix(3000))")
        }

        /// The names of `used` that `text` (a `/metrics` answer) has no series or no
        /// `# TYPE` line for (histograms by their family).
        static func missing(_ used: Set<String>, in text: String) -> [String] {
            let lines = text.split(separator: "\n").map(String.init)
            var missing: [String] = []
            for name in used.sorted() {
                var family = name
                for suffix in ["_bucket", "_sum", "_count"] where family.hasSuffix(suffix) { family = String(family.dropLast(suffix.count)) }
                let series = lines.contains { $0.hasPrefix(name + "{") || $0.hasPrefix(name + " ") }
                let declared = lines.contains { $0.hasPrefix("# TYPE \(family) ") }
                if !(series && declared) { missing.append(name) }
            }
            return missing
        }
    }
}
