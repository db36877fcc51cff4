/// What the relay knows of the client's connection beyond its address: ports, the
/// names reverse DNS gave, the SASL mechanism, and TLS. What is not known is `nil`
/// (no reverse DNS configured, no TLS, no client certificate).
///
/// These are the facts Postfix hands to policy servers (`client_port`,
/// `reverse_client_name`, `encryption_*`, `ccert_*`, …) and milters (`{cipher}`,
/// `{cert_subject}`, …), with the same meaning.
public struct ConnectionInfo: Sendable, Hashable {
    /// The client's TCP port.
    public var clientPort: Int?
    /// The client's name, forward-confirmed: the PTR name of its address, kept only
    /// if that name resolves back to the address (Postfix's `client_name`).
    public var clientName: String?
    /// The PTR name of the client's address as the resolver gave it, confirmed or not
    /// (Postfix's `reverse_client_name`).
    public var reverseClientName: String?
    /// The address and port of the listener the client connected to.
    public var serverAddress: String?
    public var serverPort: Int?
    /// The SASL mechanism of a successful AUTH (`PLAIN`, `LOGIN`), once authenticated.
    public var saslMethod: String?
    /// The TLS session, once encrypted.
    public var tls: TLSInfo?

    public init(
        clientPort: Int? = nil,
        clientName: String? = nil,
        reverseClientName: String? = nil,
        serverAddress: String? = nil,
        serverPort: Int? = nil,
        saslMethod: String? = nil,
        tls: TLSInfo? = nil
    ) {
        self.clientPort = clientPort
        self.clientName = clientName
        self.reverseClientName = reverseClientName
        self.serverAddress = serverAddress
        self.serverPort = serverPort
        self.saslMethod = saslMethod
        self.tls = tls
    }
}

/// A TLS session as negotiated.
public struct TLSInfo: Sendable, Hashable {
    /// `TLSv1.2`, `TLSv1.3` (OpenSSL's names, as Postfix reports them).
    public var protocolVersion: String
    /// The cipher suite's OpenSSL name (`ECDHE-RSA-AES256-GCM-SHA384`,
    /// `TLS_AES_128_GCM_SHA256`); empty if the TLS library did not say.
    public var cipher: String
    /// The cipher's strength in bits (128, 256); `nil` if unknown.
    public var cipherBits: Int?
    /// The client's certificate, when the client presented one and it verified
    /// against the listener's `tls.client_ca_file`.
    public var clientCertificate: ClientCertificate?

    public init(protocolVersion: String, cipher: String, cipherBits: Int? = nil, clientCertificate: ClientCertificate? = nil) {
        self.protocolVersion = protocolVersion
        self.cipher = cipher
        self.cipherBits = cipherBits
        self.clientCertificate = clientCertificate
    }
}

/// A verified client certificate.
public struct ClientCertificate: Sendable, Hashable {
    /// The subject's common name (CN); empty if it has none.
    public var subject: String
    /// The issuer's common name (CN); empty if it has none.
    public var issuer: String
    /// SHA-256 of the certificate (DER), as upper-case hex pairs joined by colons
    /// (`3A:F0:…`), the form of Postfix's `ccert_fingerprint`.
    public var fingerprint: String
    /// SHA-256 of the certificate's public key (DER SubjectPublicKeyInfo), in the same
    /// form (Postfix's `ccert_pubkey_fingerprint`).
    public var publicKeyFingerprint: String

    public init(subject: String, issuer: String, fingerprint: String, publicKeyFingerprint: String) {
        self.subject = subject
        self.issuer = issuer
        self.fingerprint = fingerprint
        self.publicKeyFingerprint = publicKeyFingerprint
    }
}
