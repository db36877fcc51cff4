import LDAPDirectory
import TestSupport
import TollgatePolicy
import Testing

@testable import LDAPStage

#if canImport(Glibc)
import Glibc
#endif

/// The `ldap` stage against a real Samba Active Directory domain controller
/// (``SambaDC``: the domain example.test, provisioned once per test process, each
/// DC on its own loopback address). Serialized: the shared DC is one process, and
/// the failover tests start and stop DCs of their own.
@Suite("ldap stage against a Samba AD DC", .serialized, .timeLimit(.minutes(10)))
struct ADStageIntegrationTests {
    typealias Account = SambaDC.Account

    static let departments = [
        DepartmentInfo(name: "finance", ldapGroups: [SambaDC.financeGroup]),
        DepartmentInfo(name: "payroll-only", ldapGroups: ["CN=nobody,OU=Groups,DC=example,DC=test"]),
    ]

    /// The stage settings of an AD deployment over LDAPS to `uris`, with `extra` replacing defaults.
    static func settings(
        uris: [String], caFile: String, _ extra: [(String, Settings.Node)] = [], removing: Set<String> = []
    ) -> PolicySettings {
        var entries: [(String, Settings.Node)] = [
            ("uri", .scalar(uris.joined(separator: " "))),
            ("ca_file", .scalar(caFile)),
            ("bind_dn", .scalar(Account.relay.dn)),
            ("bind_password", .scalar(Account.relay.password)),
            ("base", .scalar(SambaDC.baseDN)),
            ("login_forms", ["sam", "upn", "downlevel"]),
            ("netbios_domain", "EXAMPLE"),
            ("mail_attributes", ["mail", "proxyAddresses"]),
            ("nested_groups", "true"),
            ("timeout", "2s"),
        ]
        for (key, value) in extra {
            entries.removeAll { $0.0 == key }
            entries.append((key, value))
        }
        return Settings.map(entries: entries.filter { !removing.contains($0.0) })
    }

    /// An `ldap` stage (made through the factory) against the shared DC.
    func withStage(
        _ extra: [(String, Settings.Node)] = [],
        removing: Set<String> = [],
        uri: (SambaDC) -> String = { $0.ldapsURI },
        _ body: (any PolicyStage, TestHost) async throws -> Void
    ) async throws {
        let dc = try await SambaDC.shared()
        try await withStage(settings: Self.settings(uris: [uri(dc)], caFile: dc.caFile, extra, removing: removing), body)
    }

    func withStage(settings: PolicySettings, _ body: (any PolicyStage, TestHost) async throws -> Void) async throws {
        let host = TestHost(departments: Self.departments)
        let factory = LDAPStageFactory()
        let problems = factory.validate(settings: settings, host: host)
        #expect(problems.isEmpty, "\(problems)")
        let stage = try await factory.makeStage(settings: settings, host: host)
        do {
            try await body(stage, host)
        } catch {
            await stage.shutdown()
            throw error
        }
        await stage.shutdown()
    }

    // MARK: - Logins

    @Test("alice, EXAMPLE\\alice and alice@example.test log in and are one user: alice")
    func loginForms() async throws {
        try await withStage { stage, _ in
            for name in ["alice", Account.alice.downLevel, Account.alice.upn, "ALICE", "example\\alice"] {
                let outcome = await login(stage, name, Account.alice.password)
                let alice = try #require(facts(outcome), "\(name): \(String(describing: outcome))")
                #expect(alice.user == "alice", "\(name)")
                #expect(alice.tags["ldap.dn"] == Account.alice.dn)
            }
            // Another NetBIOS domain, or a form not accepted, finds nobody.
            #expect(isFailure(await login(stage, "OTHER\\alice", Account.alice.password), reason: "login_forms"))
            #expect(isFailure(await login(stage, "alice", "wrong-password"), reason: "wrong password"))
            #expect(isFailure(await login(stage, "nobody", "x"), reason: "unknown user"))
        }
        try await withStage([("login_forms", ["upn"])], removing: ["netbios_domain"]) { stage, _ in
            #expect(facts(await login(stage, Account.alice.upn, Account.alice.password))?.user == "alice")
            #expect(isFailure(await login(stage, "alice", Account.alice.password), reason: "login_forms"))
        }
    }

    @Test("user input is escaped: filter metacharacters in a login name match nothing")
    func injectionIsEscaped() async throws {
        try await withStage { stage, _ in
            for name in ["*", "a*", "alice)(sAMAccountName=*", "EXAMPLE\\*", "*@example.test"] {
                #expect(isFailure(await login(stage, name, Account.alice.password), reason: "unknown user"), "\(name)")
            }
        }
    }

    // MARK: - Addresses and delegation

    @Test("proxyAddresses: SMTP: primary first, smtp: aliases, X400: and SIP: ignored; delegates send as the shared mailbox")
    func addressesAndDelegation() async throws {
        try await withStage([("delegate_attribute", "member"), ("delegate_base", .scalar(SambaDC.sharedOU))]) { stage, _ in
            let alice = try #require(facts(await login(stage, "alice", Account.alice.password)))
            #expect(alice.allowedSenders == [
                "alice@finance.example.test", "a.andersen@finance.example.test",
                SambaDC.teamAddress, "finance-team@finance.example.test",
            ])
            #expect(!alice.allowedSenders.contains { $0.contains("x400") || $0.contains("c=us") || $0 == "alice@example.test" })
            let bob = try #require(facts(await login(stage, "bob", Account.bob.password)))
            #expect(bob.allowedSenders == ["bob@finance.example.test"])
        }
        // Without a delegate attribute nobody gets the shared mailbox.
        try await withStage { stage, _ in
            let alice = try #require(facts(await login(stage, "alice", Account.alice.password)))
            #expect(!alice.allowedSenders.contains(SambaDC.teamAddress))
        }
    }

    // MARK: - Groups

    @Test("nested groups: bob (finance-payroll ⊂ finance) is in finance; required_group through nesting")
    func nestedGroups() async throws {
        try await withStage([("required_group", .scalar(SambaDC.relayUsersGroup))]) { stage, _ in
            let bob = try #require(facts(await login(stage, "bob", Account.bob.password)))
            #expect(bob.department == "finance")
            #expect(bob.groups.first == SambaDC.payrollGroup)
            #expect(Set(bob.groups.map { $0.lowercased() }).isSuperset(of: [
                SambaDC.payrollGroup.lowercased(), SambaDC.financeGroup.lowercased(), SambaDC.relayUsersGroup.lowercased(),
            ]))
            let alice = try #require(facts(await login(stage, "alice", Account.alice.password)))
            #expect(alice.department == "finance")
            // carol is in no group: refused by required_group, with her right password.
            #expect(isFailure(await login(stage, "carol", Account.carol.password), reason: "required group"))
        }
        // Without nested_groups only memberOf counts: bob is not in finance.
        try await withStage([("nested_groups", "false")]) { stage, _ in
            let bob = try #require(facts(await login(stage, "bob", Account.bob.password)))
            #expect(bob.department == nil)
            #expect(bob.groups == [SambaDC.payrollGroup])
        }
    }

    // MARK: - Account state

    @Test("disabled, locked, expired and must-change-password accounts are refused with the right password")
    func accountState() async throws {
        let cases: [(Account, String)] = [
            (.dave, "account disabled"), (.erin, "account locked"), (.frank, "account expired"),
            (.grace, "password must be changed"),
        ]
        try await withStage { stage, host in
            for (account, reason) in cases {
                let outcome = await login(stage, account.rawValue, account.password)
                #expect(isFailure(outcome, reason: reason), "\(account): \(String(describing: outcome))")
                // Whatever the password.
                #expect(isFailure(await login(stage, account.upn, "wrong-password"), reason: reason), "\(account)")
            }
            #expect(host.logs.contains { $0.contains("LDAP login failed") && $0.contains("ldap.reason=account locked") })
        }
        // With account_checks off the DC itself refuses the bind; its reason is logged.
        try await withStage([("account_checks", "false")]) { stage, _ in
            for (account, _) in cases {
                let outcome = await login(stage, account.rawValue, account.password)
                #expect(isFailure(outcome), "\(account): \(String(describing: outcome))")
                #expect(facts(outcome) == nil)
            }
            #expect(isFailure(await login(stage, "dave", Account.dave.password), reason: "account disabled"))
        }
    }

    // MARK: - TLS

    @Test("StartTLS with the domain's CA; plain LDAP is refused by the DC as a temporary failure")
    func startTLS() async throws {
        try await withStage([("starttls", "true")], uri: { $0.ldapURI }) { stage, _ in
            #expect(facts(await login(stage, "alice", Account.alice.password))?.user == "alice")
        }
        try await withStage(removing: ["ca_file"], uri: { $0.ldapURI }) { stage, _ in
            let outcome = await login(stage, "alice", Account.alice.password)
            guard case .temporaryFailure(let reason) = outcome else {
                Issue.record("expected a temporary failure, got \(String(describing: outcome))")
                return
            }
            #expect(reason.contains("Strong(er) authentication required") || reason.contains("(8)"), "\(reason)")
        }
    }

    @Test("a CA that did not sign the DC's certificate: temporary failure, never success")
    func wrongCA() async throws {
        let other = try TemporaryDirectory(label: "other-ca")
        defer { other.remove() }
        let certificates = try TestCertificates.make(in: other.path)
        try await withStage([("ca_file", .scalar(certificates.caCertificatePath))]) { stage, _ in
            #expect(isTemporaryFailure(await login(stage, "alice", Account.alice.password)))
        }
    }

    // MARK: - Several DCs

    @Test("two DCs: one stopped, logins go on; both stopped, 454; stale_ttl serves the last good login")
    func failoverAndStale() async throws {
        let first = try await SambaDC.start()
        let second: SambaDC
        do { second = try await SambaDC.start() } catch {
            await first.shutdown()
            throw error
        }
        do {
            try await failover(first, second)
        } catch {
            await first.shutdown()
            await second.shutdown()
            throw error
        }
        await first.shutdown()
        await second.shutdown()
    }

    func failover(_ first: SambaDC, _ second: SambaDC) async throws {
        let settings = Self.settings(
            uris: [first.ldapsURI, second.ldapsURI], caFile: first.caFile,
            [("cache_ttl", "1m"), ("stale_ttl", "1h"), ("server_retry", "30s"), ("pool_size", "2")]
        )
        try await withStage(settings: settings) { stage, host in
            let ldapStage = try #require(stage as? LDAPAuthStage)
            #expect(facts(await login(stage, "alice", Account.alice.password))?.user == "alice")

            await first.stop()
            // bob was never cached: his login must reach the second DC.
            let bob = await login(stage, "bob", Account.bob.password, within: 20)
            #expect(facts(bob)?.department == "finance", "\(String(describing: bob))")
            #expect(ldapStage.directory.health.isDown(0, now: monotonic()))
            // The next login skips the dead DC: no connect timeout to wait for.
            host.advance(120)  // past cache_ttl
            var elapsed = await seconds {
                #expect(facts(await login(stage, "bob", Account.bob.password))?.user == "bob")
            }
            #expect(elapsed < 5, "\(elapsed) s")

            await second.stop()
            host.advance(120)
            // carol never logged in: nothing stale to serve.
            #expect(isTemporaryFailure(await login(stage, "carol", Account.carol.password, within: 20)))
            // alice's entry expired 3 minutes ago, within stale_ttl: served, and logged as such.
            let stale = await login(stage, "alice", Account.alice.password, within: 20)
            #expect(facts(stale)?.user == "alice", "\(String(describing: stale))")
            #expect(host.logs.contains { $0.contains("expired cache entry") && $0.contains("ldap.user=alice") })
            // A wrong password is not served from the stale entry.
            #expect(isTemporaryFailure(await login(stage, "alice", "wrong-password", within: 20)))

            // The second DC comes back: it is probed again and logins work.
            try await second.restart()
            host.advance(120)
            elapsed = await seconds {
                #expect(facts(await login(stage, "carol", Account.carol.password, within: 20))?.user == "carol")
            }
            #expect(elapsed < 10, "\(elapsed) s")
        }
        // Without stale_ttl the outage is a temporary failure for everyone.
        let noStale = Self.settings(uris: [first.ldapsURI, second.ldapsURI], caFile: first.caFile, [("cache_ttl", "1m")])
        await second.stop()
        try await withStage(settings: noStale) { stage, _ in
            #expect(isTemporaryFailure(await login(stage, "alice", Account.alice.password, within: 20)))
        }
    }

    // MARK: - Cost

    @Test("cost: the first (uncached) login, and cached logins per second")
    func cost() async throws {
        try await withStage([("pool_size", "4")]) { stage, _ in
            var first = 0.0
            first = await seconds { #expect(facts(await login(stage, "bob", Account.bob.password)) != nil) }
            var uncached: [Double] = []
            for account in [Account.alice, .carol] {
                uncached.append(await seconds { #expect(facts(await login(stage, account.upn, account.password)) != nil) })
            }
            let count = 20_000
            let elapsed = await seconds {
                await withTaskGroup(of: Void.self) { group in
                    for worker in 0..<8 {
                        group.addTask {
                            for _ in 0..<(count / 8) {
                                _ = try? await stage.authenticate(
                                    AuthCredentials(username: worker % 2 == 0 ? "bob" : Account.alice.upn,
                                                    password: worker % 2 == 0 ? Account.bob.password : Account.alice.password,
                                                    mechanism: "PLAIN"),
                                    context: authContext()
                                )
                            }
                        }
                    }
                }
            }
            let rate = Double(count) / elapsed
            print("AD cost: first login \(Int(first * 1000)) ms (nested groups, LDAPS connect), later uncached "
                + "\(uncached.map { Int($0 * 1000) }) ms; \(count) cached logins in \(elapsed) s = \(Int(rate))/s; "
                + "provisioning took \(Int(SambaDC.provisionSeconds ?? 0)) s")
            #expect(first < 10)
            #expect(rate > 200)
        }
    }

    // MARK: - Helpers

    func monotonic() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
