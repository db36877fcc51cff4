import Testing

@testable import LDAPStage

@Suite("SHA-256 and HMAC used by the login cache")
struct SHA256Tests {
    private func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }

    @Test("FIPS 180-4 test vectors")
    func vectors() {
        #expect(hex(SHA256.hash([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(hex(SHA256.hash(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            hex(SHA256.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        )
        #expect(
            hex(SHA256.hash([UInt8](repeating: UInt8(ascii: "a"), count: 1_000)))
                == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"
        )
    }

    @Test("RFC 4231 HMAC-SHA-256 test cases 1, 2 and 6")
    func hmacVectors() {
        #expect(
            hex(SHA256.hmac(key: [UInt8](repeating: 0x0b, count: 20), message: Array("Hi There".utf8)))
                == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        )
        #expect(
            hex(SHA256.hmac(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8)))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        )
        #expect(
            hex(SHA256.hmac(
                key: [UInt8](repeating: 0xaa, count: 131),
                message: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8)
            )) == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        )
    }

    @Test("credential digests depend on the key, the user and the password")
    func digests() {
        let a = CredentialDigester(key: [1, 2, 3])
        let b = CredentialDigester(key: [1, 2, 4])
        let d = a.digest(username: "alice", password: "pw")
        #expect(d.count == 32)
        #expect(d == a.digest(username: "alice", password: "pw"))
        #expect(d != b.digest(username: "alice", password: "pw"))
        #expect(d != a.digest(username: "alice", password: "pw2"))
        #expect(a.digest(username: "a\u{0}", password: "b") != a.digest(username: "a", password: "\u{0}b"))
        #expect(SHA256.constantTimeEqual(d, d))
        #expect(!SHA256.constantTimeEqual(d, Array(d.dropLast())))
    }
}
