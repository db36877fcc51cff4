import LDAPDirectory
import TollgatePolicy
import Testing

@testable import LDAPStage

/// The Active Directory parts of the `ldap` stage that need no directory: login
/// names and filters, account state, proxyAddresses, server order, stale cache
/// entries, the new settings.
@Suite("ldap stage: Active Directory logic without a directory")
struct ADUnitTests {
    func parse(_ entries: [(String, Settings.Node)]) -> (LDAPStageSettings?, [String]) {
        let base: [(String, Settings.Node)] = [("uri", "ldaps://dc1.example.test"), ("base", "DC=example,DC=test")]
        let (parsed, diagnostics) = LDAPStageSettings.parse(Settings.map(entries: base + entries, file: "/etc/tollgate/tollgate.yaml"))
        return (parsed, diagnostics.map(\.description))
    }

    @Test("login names: plain, down-level and address forms, with %u %s %d escaped per RFC 4515")
    func loginNames() {
        let downLevel = LDAPLoginName("EXAMPLE\\alice")
        #expect(downLevel.form == .downLevel && downLevel.domain == "EXAMPLE" && downLevel.name == "alice")
        let address = LDAPLoginName("alice@example.com")
        #expect(address.form == .address && address.domain == "example.com" && address.name == "alice")
        #expect(LDAPLoginName("alice").form == .plain)
        #expect(downLevel.filter(template: "(|(uid=%s)(x=%d)(y=%u)(z=%q))") == "(|(uid=alice)(x=EXAMPLE)(y=EXAMPLE\\5calice)(z=%q))")
        #expect(LDAPLoginName("a*)(uid=*").filter(template: "(uid=%u)") == "(uid=a\\2a\\29\\28uid=\\2a)")
    }

    @Test("login_forms build one filter per form, and refuse forms not listed")
    func loginFormFilters() throws {
        let (parsed, problems) = parse([("login_forms", ["sam", "upn", "downlevel"]), ("netbios_domain", "EXAMPLE")])
        let s = try #require(parsed, "\(problems)")
        let restriction = LDAPStageSettings.defaultADRestriction
        #expect(s.userAttribute == "sAMAccountName")
        #expect(s.filter(for: LDAPLoginName("alice")) == "(&\(restriction)(sAMAccountName=alice))")
        #expect(s.filter(for: LDAPLoginName("example\\alice")) == "(&\(restriction)(sAMAccountName=alice))")
        #expect(s.filter(for: LDAPLoginName("OTHER\\alice")) == nil)
        #expect(s.filter(for: LDAPLoginName("alice@example.test")) == "(&\(restriction)(userPrincipalName=alice@example.test))")
        #expect(s.filter(for: LDAPLoginName("EXAMPLE\\a*")) == "(&\(restriction)(sAMAccountName=a\\2a))")
        let mail = try #require(parse([("login_forms", ["mail"])]).0)
        #expect(mail.filter(for: LDAPLoginName("alice")) == nil)
        #expect(mail.filter(for: LDAPLoginName("A@x.com")) == "(&\(restriction)(|(mail=A@x.com)(proxyAddresses=smtp:A@x.com)))")
    }

    @Test("new settings: bad values are reported where they are written")
    func settingsProblems() {
        let (parsed, problems) = parse([
            ("login_forms", ["sam", "kerberos"]),  // line 3
            ("netbios_domain", "EXAMPLE"),  // line 4: needs downlevel
            ("delegate_base", "shared"),  // line 5
            ("stale_ttl", "1h"),  // line 6
            ("cache_ttl", "0"),  // line 7
            ("server_retry", "often"),  // line 8
            ("user_attribute", "sam account"),  // line 9
        ])
        #expect(parsed == nil)
        let file = "/etc/tollgate/tollgate.yaml"
        #expect(problems.contains { $0.hasPrefix("\(file):3:") && $0.contains("unknown login form 'kerberos'") })
        #expect(problems.contains { $0.hasPrefix("\(file):4:") && $0.contains("downlevel") })
        #expect(problems.contains { $0.hasPrefix("\(file):5:") && $0.contains("DN") })
        #expect(problems.contains { $0.hasPrefix("\(file):6:") && $0.contains("cache_ttl") })
        #expect(problems.contains { $0.hasPrefix("\(file):8:") && $0.contains("duration") })
        #expect(problems.contains { $0.hasPrefix("\(file):9:") && $0.contains("attribute name") })
        #expect(parse([("user_filter", "(objectClass=user)")]).1.contains { $0.contains("%u") })
        #expect(parse([("login_forms", ["sam"]), ("user_filter", "(objectClass=user)")]).0 != nil)
        #expect(parse([("login_forms", .list([]))]).1.contains { $0.contains("at least one") })
        #expect(parse([("delegate_base", "OU=Shared,DC=example,DC=test")]).1.contains { $0.contains("delegate_attribute") })
    }

    @Test("account state: disabled, locked, expired, must change, password expired; nothing for OpenLDAP entries")
    func accountState() {
        let now = 1_800_000_000.0
        func entry(_ attributes: [String: String]) -> LDAPEntry {
            LDAPEntry(dn: "CN=x", attributes: Dictionary(uniqueKeysWithValues: attributes.map { ($0.key.lowercased(), [$0.value]) }))
        }
        let normal = ["userAccountControl": "512", "pwdLastSet": "134406682578361480", "accountExpires": "9223372036854775807"]
        #expect(LDAPAccountState.refusal(entry(normal), now: now) == nil)
        #expect(LDAPAccountState.refusal(entry(normal.merging(["userAccountControl": "514"]) { $1 }), now: now) == "account disabled")
        #expect(LDAPAccountState.refusal(entry(normal.merging(["msDS-User-Account-Control-Computed": "16"]) { $1 }), now: now) == "account locked")
        let yesterday = String(LDAPAccountState.filetime(now - 86400))
        let tomorrow = String(LDAPAccountState.filetime(now + 86400))
        #expect(LDAPAccountState.refusal(entry(normal.merging(["accountExpires": yesterday]) { $1 }), now: now) == "account expired")
        #expect(LDAPAccountState.refusal(entry(normal.merging(["accountExpires": tomorrow]) { $1 }), now: now) == nil)
        #expect(LDAPAccountState.refusal(entry(normal.merging(["accountExpires": "0"]) { $1 }), now: now) == nil)
        #expect(LDAPAccountState.refusal(entry(normal.merging(["pwdLastSet": "0"]) { $1 }), now: now) == "password must be changed")
        #expect(LDAPAccountState.refusal(entry(normal.merging(["msDS-User-Account-Control-Computed": "8388608"]) { $1 }), now: now) == "password expired")
        #expect(LDAPAccountState.refusal(entry(["mail": "alice@example.com"]), now: now) == nil)
        // 2026-12-02 in FILETIME, as Samba wrote it.
        #expect(LDAPAccountState.filetime(1_796_169_600) / 10_000_000 == 13_440_643_200)
    }

    @Test("AD bind diagnostics name the account problem")
    func bindDiagnostics() {
        func problem(_ data: String) -> String? {
            LDAPError(code: 49, operation: "user bind", message: "Invalid credentials: 80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data \(data), v1db1").accountProblem
        }
        #expect(problem("52e") == nil)
        #expect(problem("533") == "account disabled")
        #expect(problem("775") == "account locked")
        #expect(problem("701") == "account expired")
        #expect(problem("773") == "password must be changed")
        #expect(LDAPError(code: 49, operation: "user bind", message: "Invalid credentials").accountProblem == nil)
    }

    @Test("proxyAddresses: SMTP: primary first, smtp: aliases, other types ignored, mail merged")
    func proxyAddresses() {
        let entry = LDAPEntry(dn: "CN=alice", attributes: [
            "mail": ["Alice@Finance.example.test"],
            "proxyaddresses": [
                "smtp:a.andersen@finance.example.test", "X400:c=US;a= ;p=Example;o=Finance;s=Andersen;",
                "SMTP:alice@finance.example.test", "SIP:alice@example.test", "X500:/o=Example/cn=alice", "sMtP:old@example.test",
            ],
        ])
        #expect(LDAPUserFacts.addresses(of: entry, attributes: ["mail", "proxyAddresses"]) == [
            "alice@finance.example.test", "a.andersen@finance.example.test", "old@example.test",
        ])
    }

    @Test("server order: a failed server is tried last until server_retry passes, then in its place again")
    func serverOrder() {
        let health = LDAPServerHealth(uris: ["ldaps://a", "ldaps://b", "ldaps://c"], retryAfter: 30)
        #expect(health.order(now: 100) == [0, 1, 2])
        health.markDown(0, now: 100)
        #expect(health.order(now: 101) == [1, 2, 0])
        health.markDown(1, now: 110)
        #expect(health.order(now: 111) == [2, 0, 1])
        #expect(health.order(now: 131) == [0, 2, 1])  // a's retry time has come: probed first again
        health.markUp(1)
        #expect(health.order(now: 131) == [0, 1, 2])
    }

    @Test("stale_ttl: an expired entry answers only through staleHit, only with its password, until stale_ttl")
    func staleEntries() {
        var cache = LDAPAuthCache(positiveTTL: 60, negativeTTL: 30, maxFailures: 5, window: 300)
        cache.staleTTL = 3600
        let digest: [UInt8] = [1, 2, 3]
        cache.recordSuccess(user: "alice", digest: digest, facts: SessionFacts(user: "alice"), now: 0)
        #expect(cache.lookup(user: "alice", digest: digest, now: 30) == .hit(SessionFacts(user: "alice")))
        #expect(cache.lookup(user: "alice", digest: digest, now: 120) == .miss)
        #expect(cache.staleHit(user: "alice", digest: digest, now: 120)?.facts.user == "alice")
        #expect(cache.staleHit(user: "alice", digest: digest, now: 120)?.expiredFor == 60)
        #expect(cache.staleHit(user: "alice", digest: [9], now: 120)?.facts == nil)
        #expect(cache.staleHit(user: "alice", digest: digest, now: 3700)?.facts == nil)
        var off = LDAPAuthCache(positiveTTL: 60, negativeTTL: 30, maxFailures: 5, window: 300)
        off.recordSuccess(user: "alice", digest: digest, facts: SessionFacts(user: "alice"), now: 0)
        #expect(off.staleHit(user: "alice", digest: digest, now: 61)?.facts == nil)
    }
}
