import LDAPDirectory
import TollgatePolicy
import Testing

@testable import LDAPStage

@Suite("facts from a directory entry")
struct LDAPUserFactsTests {
    func settings(_ extra: KeyValuePairs<String, Settings.Node> = [:]) -> LDAPStageSettings {
        var entries: [(String, Settings.Node)] = [("uri", "ldap://x"), ("base", "dc=example,dc=com")]
        for (k, v) in extra { entries.append((k, v)) }
        let map = Settings.map(entries: entries, file: "t")
        return LDAPStageSettings.parse(map).0!
    }

    let alice = LDAPEntry(
        dn: "uid=alice,ou=people,dc=example,dc=com",
        attributes: [
            "mail": ["alice@finance.example.com", "A.Andersen@Finance.example.com", "alice@finance.example.com"],
            "memberof": ["cn=finance,ou=groups,dc=example,dc=com", "cn=relay-users,ou=groups,dc=example,dc=com"],
            "departmentnumber": ["finance"],
        ]
    )

    @Test("addresses are lower-cased and de-duplicated; groups and DN are kept")
    func basics() {
        let facts = LDAPUserFacts.facts(user: "alice", entry: alice, settings: settings(), departments: TestHost.exampleDepartments)
        #expect(facts.user == "alice")
        #expect(facts.allowedSenders == ["alice@finance.example.com", "a.andersen@finance.example.com"])
        #expect(facts.groups == ["cn=finance,ou=groups,dc=example,dc=com", "cn=relay-users,ou=groups,dc=example,dc=com"])
        #expect(facts.tags["ldap.dn"] == "uid=alice,ou=people,dc=example,dc=com")
        #expect(facts.department == "finance")
    }

    @Test("department from a group DN written differently")
    func groupDepartment() {
        let bob = LDAPEntry(dn: "uid=bob", attributes: ["memberof": ["cn=engineering,ou=groups,dc=example,dc=com"]])
        #expect(LDAPUserFacts.facts(user: "bob", entry: bob, settings: settings(), departments: TestHost.exampleDepartments).department == "engineering")
    }

    @Test("department from an attribute value rule")
    func attributeRule() {
        let carol = LDAPEntry(dn: "uid=carol", attributes: ["departmentnumber": ["sales"]])
        #expect(LDAPUserFacts.facts(user: "carol", entry: carol, settings: settings(), departments: TestHost.exampleDepartments).department == "sales")
        #expect(LDAPUserFacts.attributes(settings: settings(), departments: TestHost.exampleDepartments) == [
            "mail", "memberOf", "uid", "userAccountControl", "msDS-User-Account-Control-Computed", "accountExpires", "pwdLastSet",
            "departmentNumber",
        ])
    }

    @Test("department_attribute wins, spelled as the known department")
    func departmentAttribute() {
        let s = settings(["department_attribute": "departmentNumber"])
        let entry = LDAPEntry(dn: "uid=x", attributes: ["departmentnumber": ["ENGINEERING"], "memberof": ["cn=finance,ou=groups,dc=example,dc=com"]])
        #expect(LDAPUserFacts.facts(user: "x", entry: entry, settings: s, departments: TestHost.exampleDepartments).department == "engineering")
        let unknown = LDAPEntry(dn: "uid=y", attributes: ["departmentnumber": ["4711"]])
        #expect(LDAPUserFacts.facts(user: "y", entry: unknown, settings: s, departments: TestHost.exampleDepartments).department == "4711")
        let none = LDAPEntry(dn: "uid=z", attributes: ["memberof": ["cn=finance,ou=groups,dc=example,dc=com"]])
        #expect(LDAPUserFacts.facts(user: "z", entry: none, settings: s, departments: TestHost.exampleDepartments).department == "finance")
    }

    @Test("no department when nothing matches")
    func noDepartment() {
        let dave = LDAPEntry(dn: "uid=dave", attributes: ["mail": ["dave@example.com"]])
        #expect(LDAPUserFacts.facts(user: "dave", entry: dave, settings: settings(), departments: TestHost.exampleDepartments).department == nil)
    }

    @Test("required group membership compares normalised DNs")
    func membership() {
        #expect(LDAPUserFacts.isMember(of: "CN=Relay-Users, ou=groups, dc=example, dc=com", groups: alice.values("memberOf")))
        #expect(!LDAPUserFacts.isMember(of: "cn=admins,ou=groups,dc=example,dc=com", groups: alice.values("memberOf")))
    }
}
