import LDAPDirectory
import Testing

@Suite("RFC 4515 and RFC 4514 escaping")
struct LDAPEscapingTests {
    @Test("filter values escape * ( ) \\ and NUL", arguments: [
        ("alice", "alice"),
        ("*", "\\2a"),
        ("bob)(uid=*", "bob\\29\\28uid=\\2a"),
        ("admin)(|(uid=*", "admin\\29\\28|\\28uid=\\2a"),
        ("a\\b", "a\\5cb"),
        ("nul\u{0}byte", "nul\\00byte"),
        ("jürgen", "jürgen"),
        ("", ""),
    ])
    func filterValue(input: String, expected: String) {
        #expect(LDAPEscaping.filterValue(input) == expected)
    }

    @Test("escaped filter values contain no filter metacharacters")
    func noMetacharactersSurvive() {
        let nasty = "*()\\\u{0}x*)(|(objectClass=*))"
        let escaped = LDAPEscaping.filterValue(nasty)
        #expect(!escaped.contains("*"))
        #expect(!escaped.contains("("))
        #expect(!escaped.contains(")"))
        #expect(!escaped.utf8.contains(0))
        // Every backslash starts a two-hex-digit escape.
        let bytes = Array(escaped.utf8)
        for (i, byte) in bytes.enumerated() where byte == UInt8(ascii: "\\") {
            #expect(i + 2 < bytes.count + 1)
            let hex = bytes[(i + 1)...].prefix(2)
            #expect(hex.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) })
        }
    }

    @Test("the user filter template substitutes every %u, escaped")
    func userFilterTemplate() {
        #expect(
            LDAPEscaping.userFilter(template: "(&(objectClass=inetOrgPerson)(uid=%u))", username: "bob)(uid=*")
                == "(&(objectClass=inetOrgPerson)(uid=bob\\29\\28uid=\\2a))"
        )
        #expect(LDAPEscaping.userFilter(template: "(|(uid=%u)(mail=%u))", username: "a*") == "(|(uid=a\\2a)(mail=a\\2a))")
    }

    @Test("DN values escape RFC 4514 specials", arguments: [
        ("alice", "alice"),
        ("Smith, John", "Smith\\, John"),
        ("a+b", "a\\+b"),
        ("x=y", "x\\=y"),
        ("#hash", "\\#hash"),
        ("mid#hash", "mid#hash"),
        (" lead", "\\ lead"),
        ("trail ", "trail\\ "),
        ("q\"<>;\\", "q\\\"\\<\\>\\;\\\\"),
        ("nul\u{0}", "nul\\00"),
    ])
    func dnValue(input: String, expected: String) {
        #expect(LDAPEscaping.dnValue(input) == expected)
    }

    @Test("DNs compare after normalisation")
    func normalizedDN() {
        #expect(
            LDAPEscaping.normalizedDN("CN=Finance, OU=Groups,  dc=Example,dc=COM")
                == "cn=finance,ou=groups,dc=example,dc=com"
        )
        #expect(LDAPEscaping.normalizedDN("cn=a\\,b,dc=x") == "cn=a\\,b,dc=x")
        #expect(LDAPEscaping.normalizedDN("cn=a\\,b,dc=x") != LDAPEscaping.normalizedDN("cn=a,b,dc=x"))
    }
}
