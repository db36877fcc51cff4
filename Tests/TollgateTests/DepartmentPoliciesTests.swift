import Foundation
import SMTPCore
import SMTPServer
import TestSupport
import Testing
@testable import TollgateApp
@testable import TollgateConfiguration
@testable import TollgatePipeline
@testable import TollgateSpool
import TollgatePolicy

/// Department policy files: parsing, located errors, membership and the facts the
/// relay attaches.
@Suite struct DepartmentPoliciesTests {
    static var shipped: String { LiveRelayTests.PluginLoaderTests.repositoryRoot + "/policies" }
    let plugins: Set<String> = ["ldap", "sender-allowlist", "rate-limit"]
    let upstreams: Set<String> = ["outbox", "finance-outbox"]

    @Test func shippedExamplesAreValid() throws {
        let (policies, problems) = DepartmentPolicies.load(folder: Self.shipped, plugins: plugins, upstreams: upstreams)
        #expect(problems.isEmpty, "\(problems)")
        #expect(policies.departments.map(\.info.name).sorted() == ["engineering", "finance", "sales"])
        let finance = try #require(policies.department(named: "finance"))
        #expect(finance.info.ldapGroups == ["cn=finance,ou=groups,dc=example,dc=com"])
        #expect(finance.upstream == "finance-outbox")
        #expect(finance.maxMessageSize == 10 * 1024 * 1024)
        #expect(finance.sections["sender-allowlist"]?["senders"]?.list?.count == 2)
        #expect(policies.department(forClient: "10.20.1.2")?.info.name == "finance")
        #expect(policies.department(forClient: "fd00:30::7")?.info.name == "engineering")
        #expect(policies.department(forClient: "192.0.2.1") == nil)
        #expect(policies.department(named: "sales")?.info.ldapAttributes["departmentNumber"] == ["sales"])
    }

    @Test func aLaterDepartmentReplacesAnEarlierOnesRouteAndSize() throws {
        let (policies, _) = DepartmentPolicies.load(folder: Self.shipped, plugins: plugins, upstreams: upstreams)
        var annotations = RelayAnnotations()
        annotations.merge(RelayAnnotations(facts: SessionFacts(), trace: [], department: policies.department(named: "finance")))
        #expect(annotations.route == "finance-outbox")
        annotations.merge(RelayAnnotations(facts: SessionFacts(), trace: [], department: policies.department(named: "engineering")))
        #expect(annotations.route == nil)
        #expect(annotations.department?.maxMessageSize == 25 * 1024 * 1024)
        #expect(annotations.department?.info.name == "engineering")
        // A phase that assigns no department keeps the one in force.
        annotations.merge(RelayAnnotations())
        #expect(annotations.department?.info.name == "engineering")
    }

    /// A stage's reply keeps its code only within its class: a "reject" cannot
    /// accept with 2xx or defer with 4xx.
    @Test func verdictsBecomeSessionDecisions() {
        #expect(SessionDecision<RelayAnnotations>.Verdict(.continue) == .proceed)
        #expect(SessionDecision<RelayAnnotations>.Verdict(.accept) == .proceed)
        #expect(SessionDecision<RelayAnnotations>.Verdict(.reject(PolicyReply(code: 553, enhancedCode: "5.7.1", text: "no"))) == .refuse(SMTPReply(553, "5.7.1", "no")))
        #expect(SessionDecision<RelayAnnotations>.Verdict(.reject(PolicyReply(code: 250, text: "sneaky"))) == .refuse(SMTPReply(550, "5.0.0", "sneaky")))
        #expect(SessionDecision<RelayAnnotations>.Verdict(.reject(PolicyReply(code: 451, text: "x"))) == .refuse(SMTPReply(550, "5.0.0", "x")))
        #expect(SessionDecision<RelayAnnotations>.Verdict(.defer(PolicyReply(code: 554, text: "x"))) == .refuse(SMTPReply(450, "4.0.0", "x")))
        #expect(SessionDecision<RelayAnnotations>.Verdict(.disconnect(PolicyReply(code: 421, enhancedCode: "4.7.0", text: "bye"))) == .disconnect(SMTPReply(421, "4.7.0", "bye")))
    }

    @Test func errorsAreLocated() throws {
        let dir = try TemporaryDirectory()
        let file = dir.path + "/bad.yaml"
        try """
            department: legal
            members:
              networks: [10.0.0.0/33]
            unknown-plugin: { x: 1 }
            route:
              upstream: nowhere
            max_message_size: lots
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let (policies, problems) = DepartmentPolicies.load(folder: dir.path, plugins: plugins, upstreams: upstreams)
        #expect(policies.departments.isEmpty)
        let text = problems.map(\.description)
        #expect(text.contains { $0.hasPrefix("\(file):3:14: ") && $0.contains("the prefix length must be 0…32") })
        #expect(text.contains { $0.hasPrefix("\(file):4:1: ") && $0.contains("unknown key 'unknown-plugin'") })
        #expect(text.contains { $0.hasPrefix("\(file):6:13: ") && $0.contains("'nowhere'") })
        #expect(text.contains { $0.hasPrefix("\(file):7:19: ") && $0.contains("max_message_size") })
    }
}

extension DepartmentPoliciesTests {
    /// `[cn=a,ou=b]` is two YAML items: the loader says so instead of matching nothing.
    @Test func unquotedDNInAFlowListIsAnError() throws {
        let dir = try TemporaryDirectory()
        let file = dir.path + "/d.yaml"
        try "department: d\nmembers:\n  ldap_groups: [cn=finance,ou=groups,dc=example,dc=com]\n".write(toFile: file, atomically: true, encoding: .utf8)
        let (_, problems) = DepartmentPolicies.load(folder: dir.path, plugins: plugins, upstreams: upstreams)
        #expect(problems.contains { $0.description.hasPrefix("\(file):3:17: 'cn=finance' is not a whole group DN") })
    }
}
