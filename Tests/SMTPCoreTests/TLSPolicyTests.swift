import SMTPCore
import Testing

@Suite struct TLSPolicyTests {
    @Test func intermediateIsForwardSecretAEADOnly() {
        #expect(TLSPolicy.intermediate.minimumVersion == .v1_2)
        #expect(TLSPolicy.intermediateSuites.count == 6)
        #expect(TLSPolicy.intermediateSuites.allSatisfy { $0.forwardSecret && $0.aead })
        #expect(TLSPolicy.legacySuites.contains { !$0.forwardSecret })
    }

    @Test func namesAreOpenSSLsOrIANAsInAnyCaseWithoutDuplicates() throws {
        let suites = try TLSPolicy.suites(named: ["ecdhe-rsa-aes256-gcm-sha384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "AES128-SHA"]).get()
        #expect(suites.map(\.name) == ["ECDHE-RSA-AES256-GCM-SHA384", "AES128-SHA"])
        #expect(try TLSPolicy.suites(named: ["Legacy"]).get() == TLSPolicy.legacySuites)
    }

    @Test func unknownNamesAreRefusedWithTheKnownOnes() {
        guard case .failure(let error) = TLSPolicy.suites(named: ["ECDHE-RSA-AES128-GCM-SHA256", "RC4-MD5"]) else {
            Issue.record("RC4-MD5 accepted")
            return
        }
        #expect(error.description.hasPrefix("unknown cipher suite 'RC4-MD5'; use intermediate, legacy or names from: ECDHE-ECDSA-AES128-GCM-SHA256"))
        #expect(TLSPolicy.Version.v1_1 < .v1_2 && TLSPolicy.Version(rawValue: "1.3") == .v1_3)
    }
}
