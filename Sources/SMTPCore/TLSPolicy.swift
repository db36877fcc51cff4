/// Which TLS versions and TLS 1.2 cipher suites one side offers: the listeners'
/// (`tls.min_version`, `tls.ciphers`) or an upstream's (`tls_min_version`,
/// `tls_ciphers`).
///
/// The default is Mozilla's "intermediate" profile: TLS 1.2 and 1.3, and for TLS 1.2
/// only ECDHE key exchange with AEAD ciphers (forward secrecy, no CBC). TLS 1.3's
/// suites are all forward-secret AEAD and are not configurable (BoringSSL fixes them).
public struct TLSPolicy: Sendable, Equatable {
    public enum Version: String, Sendable, CaseIterable, Comparable {
        case v1_0 = "1.0", v1_1 = "1.1", v1_2 = "1.2", v1_3 = "1.3"

        public static func < (a: Version, b: Version) -> Bool {
            allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
        }
    }

    /// A TLS 1.2 (and earlier) cipher suite, named as OpenSSL names it.
    public struct Suite: Sendable, Hashable {
        public let name: String
        public let ianaName: String
        /// The IANA code point.
        public let code: UInt16
        public let forwardSecret: Bool
        public let aead: Bool
    }

    public var minimumVersion: Version
    /// In order of preference. Empty with a minimum of 1.3 (no TLS 1.2 offered).
    public var suites: [Suite]

    public init(minimumVersion: Version = .v1_2, suites: [Suite] = TLSPolicy.intermediateSuites) {
        self.minimumVersion = minimumVersion
        self.suites = suites
    }

    public static let intermediate = TLSPolicy()

    /// Every suite Tollgate can offer, strongest first.
    public static let knownSuites: [Suite] = [
        Suite(name: "ECDHE-ECDSA-AES128-GCM-SHA256", ianaName: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", code: 0xC02B, forwardSecret: true, aead: true),
        Suite(name: "ECDHE-RSA-AES128-GCM-SHA256", ianaName: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", code: 0xC02F, forwardSecret: true, aead: true),
        Suite(name: "ECDHE-ECDSA-AES256-GCM-SHA384", ianaName: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", code: 0xC02C, forwardSecret: true, aead: true),
        Suite(name: "ECDHE-RSA-AES256-GCM-SHA384", ianaName: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", code: 0xC030, forwardSecret: true, aead: true),
        Suite(name: "ECDHE-ECDSA-CHACHA20-POLY1305", ianaName: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", code: 0xCCA9, forwardSecret: true, aead: true),
        Suite(name: "ECDHE-RSA-CHACHA20-POLY1305", ianaName: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", code: 0xCCA8, forwardSecret: true, aead: true),
        Suite(name: "ECDHE-ECDSA-AES128-SHA", ianaName: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", code: 0xC009, forwardSecret: true, aead: false),
        Suite(name: "ECDHE-RSA-AES128-SHA", ianaName: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", code: 0xC013, forwardSecret: true, aead: false),
        Suite(name: "ECDHE-ECDSA-AES256-SHA", ianaName: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", code: 0xC00A, forwardSecret: true, aead: false),
        Suite(name: "ECDHE-RSA-AES256-SHA", ianaName: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", code: 0xC014, forwardSecret: true, aead: false),
        Suite(name: "AES128-GCM-SHA256", ianaName: "TLS_RSA_WITH_AES_128_GCM_SHA256", code: 0x009C, forwardSecret: false, aead: true),
        Suite(name: "AES256-GCM-SHA384", ianaName: "TLS_RSA_WITH_AES_256_GCM_SHA384", code: 0x009D, forwardSecret: false, aead: true),
        Suite(name: "AES128-SHA", ianaName: "TLS_RSA_WITH_AES_128_CBC_SHA", code: 0x002F, forwardSecret: false, aead: false),
        Suite(name: "AES256-SHA", ianaName: "TLS_RSA_WITH_AES_256_CBC_SHA", code: 0x0035, forwardSecret: false, aead: false),
    ]

    /// Forward-secret AEAD suites only (Mozilla "intermediate").
    public static let intermediateSuites = knownSuites.filter { $0.forwardSecret && $0.aead }

    /// Everything known, for old devices that speak only CBC or static-RSA suites.
    public static let legacySuites = knownSuites

    /// A profile name (`intermediate`, `legacy`) or a list of suite names, as written
    /// in the configuration. Names are OpenSSL's (`ECDHE-RSA-AES128-GCM-SHA256`) or
    /// IANA's (`TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`), in any case.
    public static func suites(named names: [String]) -> Result<[Suite], TLSPolicyError> {
        if names.count == 1 {
            switch names[0].lowercased() {
            case "intermediate": return .success(intermediateSuites)
            case "legacy": return .success(legacySuites)
            default: break
            }
        }
        var out: [Suite] = []
        for name in names {
            guard let suite = knownSuites.first(where: { $0.name.caseInsensitiveEquals(name) || $0.ianaName.caseInsensitiveEquals(name) }) else {
                return .failure(TLSPolicyError("unknown cipher suite '\(name)'; use intermediate, legacy or names from: \(knownSuites.map(\.name).joined(separator: ", "))"))
            }
            if !out.contains(suite) { out.append(suite) }
        }
        if out.isEmpty { return .failure(TLSPolicyError("the cipher list is empty")) }
        return .success(out)
    }
}

public struct TLSPolicyError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

extension String {
    fileprivate func caseInsensitiveEquals(_ other: String) -> Bool {
        lowercased() == other.lowercased()
    }
}
