import TollgatePolicy

#if canImport(Glibc)
import Glibc
#endif
import Testing

@testable import LDAPStage

@Suite("ldap stage settings")
struct LDAPStageSettingsTests {
    @Test("minimal settings take the documented defaults")
    func defaults() throws {
        let (parsed, diagnostics) = LDAPStageSettings.parse(
            Settings.map(["uri": "ldap://127.0.0.1:389", "base": "dc=example,dc=com"])
        )
        #expect(diagnostics.isEmpty)
        let s = try #require(parsed)
        #expect(s.userFilter == "(&(objectClass=inetOrgPerson)(|(uid=%u)(mail=%u)))")
        #expect(s.loginForms.isEmpty)
        #expect(s.userAttribute == "uid")
        #expect(!s.nestedGroups)
        #expect(s.accountChecks)
        #expect(s.serverRetry == 30)
        #expect(s.staleTTL == 0)
        #expect(s.delegateAttribute == nil)
        #expect(s.mailAttributes == ["mail"])
        #expect(s.groupAttribute == "memberOf")
        #expect(s.departmentAttribute == nil)
        #expect(s.poolSize == 4)
        #expect(s.timeout == 5)
        #expect(s.cacheTTL == 300)
        #expect(s.negativeCacheTTL == 30)
        #expect(s.maxFailuresPerUser == 5)
        #expect(s.failureWindow == 300)
        #expect(!s.startTLS)
    }

    @Test("every key parses")
    func everything() throws {
        let (parsed, diagnostics) = LDAPStageSettings.parse(
            Settings.map([
                "uri": "ldap://a.example ldap://b.example:3389",
                "starttls": "yes",
                "bind_dn": "cn=relay,ou=services,dc=example,dc=com",
                "bind_password": "s3cret",
                "base": "ou=people,dc=example,dc=com",
                "user_filter": "(&(objectClass=person)(|(uid=%u)(mail=%u)))",
                "mail_attributes": ["mail", "mailAlternateAddress"],
                "department_attribute": "departmentNumber",
                "group_attribute": "memberOf",
                "required_group": "cn=relay-users,ou=groups,dc=example,dc=com",
                "pool_size": "8",
                "timeout": "1500ms",
                "cache_ttl": "10m",
                "negative_cache_ttl": "0",
                "max_failures_per_user": "3",
                "failure_window": "1h",
            ])
        )
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        let s = try #require(parsed)
        #expect(s.startTLS)
        #expect(s.mailAttributes == ["mail", "mailAlternateAddress"])
        #expect(s.poolSize == 8)
        #expect(s.timeout == 1.5)
        #expect(s.cacheTTL == 600)
        #expect(s.negativeCacheTTL == 0)
        #expect(s.maxFailuresPerUser == 3)
        #expect(s.failureWindow == 3600)
        #expect(try s.readBindPassword() == "s3cret")
    }

    @Test("problems are reported with the location of the offending key or value")
    func located() {
        let (parsed, diagnostics) = LDAPStageSettings.parse(
            Settings.map([
                "uri": "http://example.com",  // line 11
                "base": "dc=example,dc=com",  // line 12
                "user_filter": "(uid=alice)",  // line 13
                "colour": "blue",  // line 14
                "timeout": "soon",  // line 15
                "pool_size": "0",  // line 16
            ])
        )
        #expect(parsed == nil)
        let text = diagnostics.map(\.description)
        #expect(text.contains { $0.hasPrefix("/etc/tollgate/tollgate.yaml:11:") && $0.contains("ldap://") })
        #expect(text.contains { $0.hasPrefix("/etc/tollgate/tollgate.yaml:13:") && $0.contains("%u") })
        #expect(text.contains { $0 == "/etc/tollgate/tollgate.yaml:14:5: unknown key 'colour' (expected one of: \(LDAPStageSettings.keys.sorted().joined(separator: ", ")))" })
        #expect(text.contains { $0.hasPrefix("/etc/tollgate/tollgate.yaml:15:") && $0.contains("duration") })
        #expect(text.contains { $0.hasPrefix("/etc/tollgate/tollgate.yaml:16:") && $0.contains("between 1 and 64") })
        #expect(diagnostics.count == 5)
    }

    @Test("missing keys are reported at the settings map")
    func missing() {
        let (parsed, diagnostics) = LDAPStageSettings.parse(Settings.map([:]))
        #expect(parsed == nil)
        #expect(diagnostics.map(\.description) == [
            "/etc/tollgate/tollgate.yaml:10:5: missing required key 'uri'",
            "/etc/tollgate/tollgate.yaml:10:5: missing required key 'base'",
        ])
    }

    @Test("inconsistent TLS and bind settings are refused")
    func inconsistent() {
        func problems(_ settings: PolicySettings) -> [String] { LDAPStageSettings.parse(settings).1.map(\.message) }
        #expect(problems(Settings.map(["uri": "ldaps://x", "starttls": "true", "base": "dc=x"])).contains {
            $0.contains("ldaps:// is TLS from the start")
        })
        #expect(problems(Settings.map(["uri": "ldap://x", "ca_file": "/etc/hostname", "base": "dc=x"])).contains {
            $0.contains("needs an ldaps:// uri")
        })
        #expect(problems(Settings.map(["uri": "ldaps://x", "ca_file": "/nonexistent/ca.pem", "base": "dc=x"])).contains {
            $0 == "cannot read CA file '/nonexistent/ca.pem': it does not exist"
        })
        #expect(problems(Settings.map(["uri": "ldaps://x", "ca_file": "/etc", "base": "dc=x"])).contains {
            $0 == "cannot read CA file '/etc': it is a folder, not a file"
        })
        #expect(problems(Settings.map(["uri": "ldap://x", "bind_dn": "cn=relay,dc=x", "base": "dc=x"])).contains {
            $0.contains("needs 'bind_password'")
        })
        #expect(problems(Settings.map(["uri": "ldap://x", "bind_password": "pw", "base": "dc=x"])).contains {
            $0.contains("needs 'bind_dn'")
        })
        #expect(problems(Settings.map([
            "uri": "ldap://x", "bind_dn": "cn=r,dc=x", "bind_password": "", "base": "dc=x",
        ])).contains { $0.contains("must not be empty") })
        #expect(problems(Settings.map(["uri": "ldap://x", "base": "dc=x", "user_filter": "(uid=%u"])).contains {
            $0.contains("parenthesized") || $0.contains("unbalanced")
        })
        #expect(problems(Settings.map(["uri": "ldap://x", "base": "dc=x", "mail_attributes": ["mail", "bad attr"]])).contains {
            $0.contains("not an attribute name")
        })
        #expect(problems(Settings.map(["uri": "ldap://x", "base": "dc=x", "starttls": "maybe"])).contains {
            $0.contains("true or false")
        })
    }

    @Test("relative paths resolve against the configuration file's folder; the password file's first line is the password")
    func passwordFile() throws {
        let dir = "/tmp/tollgate-ldap-settings-\(getpid())"
        mkdir(dir, 0o700)
        defer {
            unlink(dir + "/ldap.pw")
            rmdir(dir)
        }
        let file = fopen(dir + "/ldap.pw", "w")
        fputs("relay-pw\nignored\n", file)
        fclose(file)
        let (parsed, diagnostics) = LDAPStageSettings.parse(
            Settings.map(
                ["uri": "ldap://x", "base": "dc=x", "bind_dn": "cn=relay,dc=x", "bind_password_file": "ldap.pw"],
                file: dir + "/tollgate.yaml"
            )
        )
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        let s = try #require(parsed)
        #expect(s.bindPasswordFile == dir + "/ldap.pw")
        #expect(try s.readBindPassword() == "relay-pw")
    }

    @Test("durations", arguments: [
        ("5s", 5.0), ("250ms", 0.25), ("2m", 120.0), ("1h", 3600.0), ("1d", 86400.0), ("0", 0.0), ("1.5s", 1.5),
    ])
    func durations(text: String, seconds: Double) {
        #expect(SettingsReader.parseDuration(text) == seconds)
    }

    @Test("bad durations", arguments: ["5", "s", "-1s", "5x", "", "1e3s"])
    func badDurations(text: String) {
        #expect(SettingsReader.parseDuration(text) == nil)
    }

    @Test("the factory validates department sections and the settings")
    func factoryValidation() {
        let section = PolicySettings(.map([]), at: SourceLocation(file: "/etc/tollgate/policies/finance.yaml", line: 7, column: 1))
        let host = TestHost(sections: ["finance": section])
        let diagnostics = LDAPStageFactory().validate(
            settings: Settings.map(["uri": "ldap://x", "base": "dc=x"]),
            host: host
        )
        #expect(diagnostics.map(\.description).contains {
            $0.hasPrefix("/etc/tollgate/policies/finance.yaml:7:1: the ldap stage has no per-department settings")
        })
        #expect(LDAPStageFactory().name == "ldap")
        #expect(LDAPStageFactory().validate(settings: Settings.map(["uri": "ldap://x", "base": "dc=x"]), host: TestHost()).isEmpty)
    }
}
