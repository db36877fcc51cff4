import Testing
import PolicyTestSupport
import TollgatePolicy

@testable import SenderAllowlistStage

/// The finance department's section as in SPEC §5.
let financeSection: Y = [
    "senders": ["*@finance.example.com", "payroll@example.com"],
    "allow_null_sender": "true",
]

func makeStage(_ settings: Y = [:], sections: [String: Y] = ["finance": financeSection]) async throws -> (any PolicyStage, TestHost) {
    let host = TestHost(sections: sections.mapValues { $0.settings(file: "/etc/tollgate/policies/dept.yaml", line: 3) })
    let stage = try await SenderAllowlistFactory().makeStage(settings: settings.settings(), host: host)
    return (stage, host)
}

/// MAIL FROM by an authenticated user with the facts the ldap stage would attach.
func mail(
    _ sender: String, user: String? = "alice", department: String? = "finance",
    owns: [String] = ["alice@example.com", "alice.smith@example.com"], client: String = "192.0.2.10"
) -> PolicyContext {
    PolicyContext(
        phase: .mail, sessionID: "S1", listener: "submission", clientAddress: client, tls: true,
        authenticatedUser: user, sender: sender,
        facts: user == nil ? SessionFacts(department: department) : SessionFacts(user: user, department: department, allowedSenders: owns)
    )
}

func isRejected(_ decision: PolicyDecision, _ code: Int, _ enhanced: String) -> Bool {
    guard case .reject(let reply) = decision.verdict else { return false }
    return reply.code == code && reply.enhancedCode == enhanced
}

@Suite("sender-allowlist: authenticated users")
struct AuthenticatedSenderTests {
    @Test("a user may send as an own address, in any case")
    func ownAddress() async throws {
        let (stage, _) = try await makeStage()
        let decision = try await stage.evaluate(mail("alice@example.com"))
        #expect(decision.verdict == .continue)
        #expect(decision.reason == "sender alice@example.com owned by user alice")
        #expect(try await stage.evaluate(mail("Alice.Smith@EXAMPLE.com")).verdict == .continue)
        // Owned addresses arrive lower-cased, but the stage does not rely on it.
        #expect(try await stage.evaluate(mail("alice@example.com", owns: ["Alice@Example.COM"])).verdict == .continue)
    }

    @Test("a department's patterns allow more addresses to its members")
    func departmentPattern() async throws {
        let (stage, _) = try await makeStage()
        let any = try await stage.evaluate(mail("reports@Finance.Example.com"))
        #expect(any.verdict == .continue)
        #expect(any.reason.contains("department finance by pattern *@finance.example.com"))
        #expect(try await stage.evaluate(mail("PAYROLL@example.com")).verdict == .continue)
        // *@domain is that domain only, not its subdomains or other addresses.
        #expect(isRejected(try await stage.evaluate(mail("x@eu.finance.example.com")), 553, "5.7.1"))
        #expect(isRejected(try await stage.evaluate(mail("payroll2@example.com")), 553, "5.7.1"))
    }

    @Test("someone else's address is refused with 553 5.7.1")
    func someoneElse() async throws {
        let (stage, _) = try await makeStage()
        let decision = try await stage.evaluate(mail("ceo@example.com"))
        #expect(decision.verdict == .reject(PolicyReply(code: 553, enhancedCode: "5.7.1", text: "Sender address rejected: not owned by user alice")))
        #expect(decision.reason == "sender ceo@example.com not owned by user alice (department finance)")
    }

    @Test("a user in no department has only own addresses and the global patterns")
    func noDepartment() async throws {
        let (stage, _) = try await makeStage(["senders": ["noreply@example.com"]])
        #expect(try await stage.evaluate(mail("alice@example.com", department: nil)).verdict == .continue)
        let global = try await stage.evaluate(mail("noreply@example.com", department: nil))
        #expect(global.verdict == .continue)
        #expect(global.reason.contains("all users by pattern noreply@example.com"))
        let refused = try await stage.evaluate(mail("reports@finance.example.com", department: nil))
        #expect(isRejected(refused, 553, "5.7.1"))
        #expect(refused.reason.contains("(no department)"))
    }

    @Test("another department's patterns do not apply")
    func otherDepartment() async throws {
        let (stage, _) = try await makeStage(sections: ["finance": financeSection, "sales": ["senders": ["*@sales.example.com"]]])
        #expect(isRejected(try await stage.evaluate(mail("reports@finance.example.com", department: "sales")), 553, "5.7.1"))
        #expect(try await stage.evaluate(mail("deals@sales.example.com", department: "sales")).verdict == .continue)
        // A department without a section.
        #expect(isRejected(try await stage.evaluate(mail("deals@sales.example.com", department: "engineering")), 553, "5.7.1"))
    }

    @Test("'*' allows every address")
    func wildcard() async throws {
        let (stage, _) = try await makeStage(sections: ["engineering": ["senders": ["*"]]])
        #expect(try await stage.evaluate(mail("anyone@anywhere.test", department: "engineering")).verdict == .continue)
        #expect(isRejected(try await stage.evaluate(mail("anyone@anywhere.test", department: "finance")), 553, "5.7.1"))
    }

    @Test("phases other than mail and data continue")
    func otherPhases() async throws {
        let (stage, _) = try await makeStage(["check_header_from": "true"])
        for phase in [PolicyPhase.connect, .helo, .starttls, .auth, .rcpt] {
            var context = mail("ceo@example.com")
            context.phase = phase
            context.recipient = "x@example.net"
            #expect(try await stage.evaluate(context).verdict == .continue, "\(phase)")
        }
    }
}

@Suite("sender-allowlist: unauthenticated clients")
struct UnauthenticatedSenderTests {
    static let settings: Y = [
        "networks": ["10.0.0.0/8", "2001:db8:10::/48", "192.0.2.77"],
        "unauthenticated_senders": ["*@devices.example.com", "alerts@example.com"],
    ]

    @Test("from an allowed network with an allowed sender: relay")
    func allowed() async throws {
        let (stage, _) = try await makeStage(Self.settings)
        let decision = try await stage.evaluate(mail("printer1@devices.example.com", user: nil, department: nil, client: "10.1.2.3"))
        #expect(decision.verdict == .continue)
        #expect(decision.reason == "unauthenticated client 10.1.2.3 in 10.0.0.0/8, sender printer1@devices.example.com matches *@devices.example.com")
        #expect(try await stage.evaluate(mail("ALERTS@example.com", user: nil, client: "2001:db8:10:ff::1")).verdict == .continue)
        #expect(try await stage.evaluate(mail("alerts@example.com", user: nil, client: "::ffff:10.9.9.9")).verdict == .continue)
        #expect(try await stage.evaluate(mail("alerts@example.com", user: nil, client: "192.0.2.77")).verdict == .continue)
    }

    @Test("from an allowed network with another sender: 553 5.7.1")
    func wrongSender() async throws {
        let (stage, _) = try await makeStage(Self.settings)
        let decision = try await stage.evaluate(mail("ceo@example.com", user: nil, client: "10.1.2.3"))
        #expect(isRejected(decision, 553, "5.7.1"))
        #expect(decision.reason.contains("matches no unauthenticated_senders pattern"))
    }

    @Test("from outside the networks: 553 5.7.1, or 530 5.7.0 when authentication is required there")
    func outside() async throws {
        let (stage, _) = try await makeStage(Self.settings)
        for client in ["11.0.0.1", "192.0.2.78", "2001:db8:11::1", "not-an-address"] {
            let decision = try await stage.evaluate(mail("alerts@example.com", user: nil, client: client))
            #expect(isRejected(decision, 553, "5.7.1"), "\(client)")
        }
        var settings = Self.settings
        if case .map(var entries) = settings {
            entries.append(("require_auth_outside_networks", "true"))
            settings = .map(entries)
        }
        let (strict, _) = try await makeStage(settings)
        let decision = try await strict.evaluate(mail("alerts@example.com", user: nil, client: "11.0.0.1"))
        #expect(decision.verdict == .reject(PolicyReply(code: 530, enhancedCode: "5.7.0", text: "Authentication required")))
        // Inside the networks the pattern decides as before.
        #expect(isRejected(try await strict.evaluate(mail("ceo@example.com", user: nil, client: "10.0.0.1")), 553, "5.7.1"))
    }

    @Test("without networks no unauthenticated client relays")
    func noNetworks() async throws {
        let (stage, _) = try await makeStage()
        #expect(isRejected(try await stage.evaluate(mail("alice@example.com", user: nil, client: "127.0.0.1")), 553, "5.7.1"))
    }

    @Test("a department's networks and unauthenticated senders add to the stage's")
    func departmentNetworks() async throws {
        let (stage, _) = try await makeStage(
            Self.settings,
            sections: ["finance": ["networks": ["10.20.30.0/24"], "unauthenticated_senders": ["scanner@finance.example.com"]]]
        )
        let scanner = mail("scanner@finance.example.com", user: nil, department: "finance", client: "172.16.0.1")
        #expect(isRejected(try await stage.evaluate(scanner), 553, "5.7.1"))
        var inside = scanner
        inside.clientAddress = "10.20.30.40"
        #expect(try await stage.evaluate(inside).verdict == .continue)
        inside.facts.department = "sales"
        #expect(isRejected(try await stage.evaluate(inside), 553, "5.7.1"))
    }
}

@Suite("sender-allowlist: the null sender")
struct NullSenderTests {
    @Test("refused unless allowed")
    func refusedByDefault() async throws {
        let (stage, _) = try await makeStage(sections: [:])
        let decision = try await stage.evaluate(mail("", department: nil))
        #expect(decision.verdict == .reject(PolicyReply(code: 553, enhancedCode: "5.7.1", text: "Sender address rejected: null sender not permitted")))
        // '*' does not cover the null sender.
        let (wild, _) = try await makeStage(["senders": ["*"]], sections: [:])
        #expect(isRejected(try await wild.evaluate(mail("", department: nil)), 553, "5.7.1"))
    }

    @Test("allowed by the stage settings or by the user's department")
    func allowed() async throws {
        let (global, _) = try await makeStage(["allow_null_sender": "yes"], sections: [:])
        #expect(try await global.evaluate(mail("", department: nil)).verdict == .continue)

        let (stage, _) = try await makeStage()
        let finance = try await stage.evaluate(mail("", department: "finance"))
        #expect(finance.verdict == .continue)
        #expect(finance.reason.contains("department finance"))
        #expect(isRejected(try await stage.evaluate(mail("", department: "sales")), 553, "5.7.1"))
    }

    @Test("from unauthenticated clients only inside the networks")
    func unauthenticated() async throws {
        let (stage, _) = try await makeStage(["networks": ["10.0.0.0/8"], "allow_null_sender": "true"], sections: [:])
        let inside = try await stage.evaluate(mail("", user: nil, department: nil, client: "10.0.0.5"))
        #expect(inside.verdict == .continue)
        #expect(inside.reason.contains("from network 10.0.0.0/8"))
        #expect(isRejected(try await stage.evaluate(mail("", user: nil, department: nil, client: "192.0.2.1")), 553, "5.7.1"))

        let (closed, _) = try await makeStage(["networks": ["10.0.0.0/8"]], sections: [:])
        #expect(isRejected(try await closed.evaluate(mail("", user: nil, department: nil, client: "10.0.0.5")), 553, "5.7.1"))
    }
}

@Suite("sender-allowlist: the From: header")
struct HeaderFromTests {
    func data(from values: [String], user: String? = "alice", client: String = "192.0.2.10") -> PolicyContext {
        var context = mail("alice@example.com", user: user, client: client)
        context.phase = .data
        context.messageSize = 1200
        context.recipients = ["bob@example.net"]
        context.headers = [("Subject", "hello")] + values.map { ("From", $0) } + [("To", "bob@example.net")]
        return context
    }

    @Test("not checked unless configured")
    func off() async throws {
        let (stage, _) = try await makeStage()
        #expect(try await stage.evaluate(data(from: ["ceo@example.com"])).verdict == .continue)
    }

    @Test("the From: addresses must pass the same rule")
    func checked() async throws {
        let (stage, _) = try await makeStage(["check_header_from": "true"])
        #expect(try await stage.evaluate(data(from: ["Alice Smith <Alice@Example.com>"])).verdict == .continue)
        #expect(try await stage.evaluate(data(from: ["\"Smith, Alice\" <alice.smith@example.com>, payroll@example.com"])).verdict == .continue)
        let forged = try await stage.evaluate(data(from: ["\"The CEO\" <ceo@example.com>"]))
        #expect(forged.verdict == .reject(PolicyReply(code: 553, enhancedCode: "5.7.1", text: "From: header address rejected: not owned by user alice")))
        #expect(forged.reason == "From: header address ceo@example.com not owned by user alice (department finance)")
        // One bad address in a list, or a second From: field, is enough.
        #expect(isRejected(try await stage.evaluate(data(from: ["alice@example.com, ceo@example.com"])), 553, "5.7.1"))
        #expect(isRejected(try await stage.evaluate(data(from: ["alice@example.com", "ceo@example.com"])), 553, "5.7.1"))
        // A display name that looks like an allowed address does not count.
        #expect(isRejected(try await stage.evaluate(data(from: ["\"alice@example.com\" <ceo@example.com>"])), 553, "5.7.1"))
    }

    @Test("a message without a From: address is refused")
    func missing() async throws {
        let (stage, _) = try await makeStage(["check_header_from": "true"])
        let none = try await stage.evaluate(data(from: []))
        #expect(isRejected(none, 553, "5.7.1"))
        #expect(none.reason == "no From: header")
        #expect(isRejected(try await stage.evaluate(data(from: ["Undisclosed:;"])), 553, "5.7.1"))
    }

    @Test("unauthenticated clients: From: must match the unauthenticated patterns")
    func unauthenticated() async throws {
        let (stage, _) = try await makeStage(
            ["networks": ["10.0.0.0/8"], "unauthenticated_senders": ["*@devices.example.com"], "check_header_from": "true"]
        )
        #expect(try await stage.evaluate(data(from: ["Printer <printer@devices.example.com>"], user: nil, client: "10.1.1.1")).verdict == .continue)
        #expect(isRejected(try await stage.evaluate(data(from: ["boss@example.com"], user: nil, client: "10.1.1.1")), 553, "5.7.1"))
    }
}
