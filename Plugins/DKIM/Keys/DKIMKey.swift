import Crypto
import Foundation
import _CryptoExtras

/// A DKIM signing key (RFC 6376 §3.3): RSA with rsa-sha256 (at least 1024 bits;
/// 2048 is the default of `tollgate dkim keygen`), or Ed25519 with ed25519-sha256
/// (RFC 8463). All cryptography is swift-crypto's.
public enum DKIMKey: Sendable {
    case rsa(_RSA.Signing.PrivateKey)
    case ed25519(Curve25519.Signing.PrivateKey)

    /// The smallest RSA key accepted (RFC 8301 §3.2).
    public static let minimumRSABits = 1024

    /// The `a=` tag value.
    public var algorithm: String {
        switch self {
        case .rsa: return "rsa-sha256"
        case .ed25519: return "ed25519-sha256"
        }
    }

    /// The `k=` tag of the DNS record.
    public var keyType: String {
        switch self {
        case .rsa: return "rsa"
        case .ed25519: return "ed25519"
        }
    }

    /// Reads a PEM private key: RSA as PKCS#1 (`BEGIN RSA PRIVATE KEY`) or PKCS#8
    /// (`BEGIN PRIVATE KEY`), Ed25519 as PKCS#8 (`openssl genpkey -algorithm ed25519`).
    public init(pem: String) throws(DKIMKeyError) {
        guard pem.contains("-----BEGIN") else { throw DKIMKeyError("not a PEM private key (no -----BEGIN line)") }
        if let der = Self.pemBody(pem, label: "PRIVATE KEY"), let seed = Self.ed25519Seed(pkcs8: der) {
            do {
                self = .ed25519(try Curve25519.Signing.PrivateKey(rawRepresentation: seed))
            } catch {
                throw DKIMKeyError("not a usable Ed25519 key: \(error)")
            }
            return
        }
        let key: _RSA.Signing.PrivateKey
        do {
            key = try _RSA.Signing.PrivateKey(unsafePEMRepresentation: pem)
        } catch CryptoKitError.incorrectParameterSize {
            throw DKIMKeyError("the RSA key is shorter than \(Self.minimumRSABits) bits, the least DKIM accepts (RFC 8301)")
        } catch {
            throw DKIMKeyError("not an RSA or Ed25519 private key in PEM form")
        }
        guard key.keySizeInBits >= Self.minimumRSABits else {
            throw DKIMKeyError("the RSA key has \(key.keySizeInBits) bits; DKIM needs at least \(Self.minimumRSABits) (RFC 8301)")
        }
        self = .rsa(key)
    }

    /// A new key: RSA of `bits` (1024, 2048, 3072 or 4096) or Ed25519.
    public static func generate(_ type: String, bits: Int = 2048) throws(DKIMKeyError) -> DKIMKey {
        switch type {
        case "ed25519":
            return .ed25519(Curve25519.Signing.PrivateKey())
        case "rsa":
            guard [1024, 2048, 3072, 4096].contains(bits) else {
                throw DKIMKeyError("RSA keys are 1024, 2048, 3072 or 4096 bits, not \(bits)")
            }
            let size = _RSA.Signing.KeySize(bitCount: bits)
            do {
                return .rsa(try _RSA.Signing.PrivateKey(unsafeKeySize: size))
            } catch {
                throw DKIMKeyError("cannot make an RSA key: \(error)")
            }
        default:
            throw DKIMKeyError("the key type is rsa or ed25519, not '\(type)'")
        }
    }

    /// The private key as PKCS#8 PEM, for the key file.
    public var pem: String {
        switch self {
        case .rsa(let key):
            return key.pkcs8PEMRepresentation
        case .ed25519(let key):
            let der = Self.ed25519PKCS8Prefix + Array(key.rawRepresentation)
            return Self.pem(der, label: "PRIVATE KEY")
        }
    }

    /// The `p=` value: base64 of the SubjectPublicKeyInfo for RSA (RFC 6376 §3.6.1),
    /// of the raw 32-octet public key for Ed25519 (RFC 8463 §4.2).
    public var publicKeyBase64: String {
        switch self {
        case .rsa(let key): return key.publicKey.derRepresentation.base64EncodedString()
        case .ed25519(let key): return key.publicKey.rawRepresentation.base64EncodedString()
        }
    }

    /// The DNS TXT record's text (`v=DKIM1; k=…; p=…`).
    public var dnsRecordText: String { "v=DKIM1; k=\(keyType); p=\(publicKeyBase64)" }

    /// The record in zone-file form: `selector._domainkey.domain. IN TXT ( "…" "…" )`,
    /// the text split into strings of at most 255 octets (RFC 1035 §3.3.14).
    public func dnsRecord(domain: String, selector: String) -> String {
        let text = Array(dnsRecordText.utf8)
        var parts: [String] = []
        var i = 0
        while i < text.count {
            parts.append("\"" + String(decoding: text[i..<min(i + 255, text.count)], as: UTF8.self) + "\"")
            i += 255
        }
        return "\(selector)._domainkey.\(domain). IN TXT ( \(parts.joined(separator: " ")) )"
    }

    /// Signs the canonicalised header data (RFC 6376 §3.7): RSASSA-PKCS1-v1_5 over its
    /// SHA-256, or Ed25519 over its SHA-256 (RFC 8463 §3).
    public func sign(_ data: [UInt8]) throws -> [UInt8] {
        let digest = SHA256.hash(data: data)
        switch self {
        case .rsa(let key):
            return Array(try key.signature(for: digest, padding: .insecurePKCS1v1_5).rawRepresentation)
        case .ed25519(let key):
            return Array(try key.signature(for: Array(digest)))
        }
    }

    // MARK: - PEM and PKCS#8 framing (encoding only; no cryptography here)

    /// PKCS#8 `PrivateKeyInfo` for Ed25519 before the 32-octet seed (RFC 8410 §7).
    static let ed25519PKCS8Prefix: [UInt8] = [0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]

    static func ed25519Seed(pkcs8 der: [UInt8]) -> [UInt8]? {
        guard der.count == ed25519PKCS8Prefix.count + 32, Array(der.prefix(ed25519PKCS8Prefix.count)) == ed25519PKCS8Prefix else { return nil }
        return Array(der.suffix(32))
    }

    /// The DER inside `-----BEGIN label-----` … `-----END label-----`.
    static func pemBody(_ pem: String, label: String) -> [UInt8]? {
        guard let begin = pem.range(of: "-----BEGIN \(label)-----"), let end = pem.range(of: "-----END \(label)-----", range: begin.upperBound..<pem.endIndex) else { return nil }
        let base64 = pem[begin.upperBound..<end.lowerBound].filter { !$0.isWhitespace }
        return Data(base64Encoded: String(base64)).map { Array($0) }
    }

    static func pem(_ der: [UInt8], label: String) -> String {
        let base64 = Data(der).base64EncodedString()
        var lines: [String] = []
        var rest = Substring(base64)
        while !rest.isEmpty {
            lines.append(String(rest.prefix(64)))
            rest = rest.dropFirst(64)
        }
        return "-----BEGIN \(label)-----\n" + lines.joined(separator: "\n") + "\n-----END \(label)-----\n"
    }
}

/// Why a key cannot be used.
public struct DKIMKeyError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
