import Testing
import PolicyTestSupport
import TollgatePolicy

@testable import SenderAllowlistStage

@Suite("sender-allowlist: patterns, networks, From: parsing")
struct SenderAllowlistUnitTests {
    @Test("patterns")
    func patterns() throws {
        let domain = try SenderPattern.parse("*@Example.COM").get()
        #expect(domain.matches("x@example.com"))
        #expect(domain.matches("X@EXAMPLE.com."))
        #expect(!domain.matches("x@sub.example.com"))
        #expect(!domain.matches("x@example.com.evil.test"))
        #expect(!domain.matches(""))
        let exact = try SenderPattern.parse(" Payroll@Example.com ").get()
        #expect(exact.matches("payroll@example.com"))
        #expect(exact.matches("PAYROLL@EXAMPLE.COM"))
        #expect(!exact.matches("payroll@example.org"))
        #expect(try SenderPattern.parse("*").get().matches("a@b"))
        #expect(!(try SenderPattern.parse("*").get().matches("")))
        for bad in ["example.com", "@example.com", "a*@example.com", "*@", "*@*.example.com", "a@"] {
            guard case .failure = SenderPattern.parse(bad) else {
                Issue.record("'\(bad)' should not be a pattern")
                continue
            }
        }
    }

    @Test("networks")
    func networks() throws {
        func net(_ text: String) throws -> CIDRNetwork { try CIDRNetwork.parse(text).get() }
        #expect(try net("10.0.0.0/8").contains(address: "10.255.1.2"))
        #expect(try !net("10.0.0.0/8").contains(address: "11.0.0.1"))
        #expect(try net("10.1.2.3/8").contains(address: "10.9.9.9"))  // host bits ignored
        #expect(try net("192.0.2.128/25").contains(address: "192.0.2.200"))
        #expect(try !net("192.0.2.128/25").contains(address: "192.0.2.127"))
        #expect(try net("0.0.0.0/0").contains(address: "203.0.113.9"))
        #expect(try !net("0.0.0.0/0").contains(address: "::1"))
        #expect(try net("127.0.0.1").contains(address: "127.0.0.1"))
        #expect(try !net("127.0.0.1").contains(address: "127.0.0.2"))
        #expect(try net("2001:db8::/32").contains(address: "2001:DB8:ffff::1"))
        #expect(try net("2001:db8::/32").contains(address: "[2001:db8::5]"))
        #expect(try net("fe80::/10").contains(address: "fe80::1%eth0"))
        #expect(try !net("2001:db8::/32").contains(address: "2001:db9::1"))
        #expect(try net("::1/128").contains(address: "::1"))
        #expect(try net("::/0").contains(address: "2001:db8::1"))
        #expect(try net("10.0.0.0/8").contains(address: "::ffff:10.1.2.3"))
        #expect(try net("::ffff:10.0.0.0/104").contains(address: "10.3.3.3"))
        #expect(try net("2001:db8:1:2:3:4:5:6/128").contains(address: "2001:db8:1:2:3:4:5:6"))
        #expect(try net("64:ff9b::192.0.2.0/120").contains(address: "64:ff9b::c000:2ff"))
        #expect(IPAddressParser.parseClient("1:2:3:4:5:6:7::") != nil)
        for bad in ["10.0.0.0/33", "10.0.0/8", "256.0.0.1", "010.0.0.1", "10.0.0.0/", "10.0.0.0/-1", "2001:db8::/129",
            "1::2::3", "1:2:3:4:5:6:7:8:9", "12345::", "fe80::1/64x", "example.com", "", "::ffff:0:0/80"]
        {
            guard case .failure = CIDRNetwork.parse(bad) else {
                Issue.record("'\(bad)' should not be a network")
                continue
            }
        }
    }

    @Test("From: header addresses")
    func headerAddresses() {
        #expect(HeaderAddresses.parse("alice@example.com") == ["alice@example.com"])
        #expect(HeaderAddresses.parse("Alice <alice@example.com>") == ["alice@example.com"])
        #expect(HeaderAddresses.parse("\"Smith, Alice\" <alice@example.com>, bob@example.com") == ["alice@example.com", "bob@example.com"])
        #expect(HeaderAddresses.parse("alice@example.com (Alice, Finance (EU))") == ["alice@example.com"])
        #expect(HeaderAddresses.parse("\"a <x@y>\" <real@example.com>") == ["real@example.com"])
        #expect(HeaderAddresses.parse("Team: a@example.com, B <b@example.com>;") == ["a@example.com", "b@example.com"])
        #expect(HeaderAddresses.parse("Undisclosed recipients:;") == [])
        #expect(HeaderAddresses.parse("<@relay.example:old@example.com>") == ["old@example.com"])
        #expect(HeaderAddresses.parse("\"john doe\"@example.com") == ["\"john doe\"@example.com"])
        #expect(HeaderAddresses.parse("Just A Name") == [])
        #expect(HeaderAddresses.parse("") == [])
    }
}
