/// What the server knows of a connection beyond the client's address, for the
/// application to hand to its stages: the socket's ports and local address, the
/// reverse-DNS names, and the TLS session.
public struct ConnectionFacts: Sendable, Hashable {
    public var clientPort: Int?
    public var serverAddress: String?
    public var serverPort: Int?
    /// The client's forward-confirmed name (``ReverseDNS/Answer/name``).
    public var clientName: String?
    /// The PTR name of the client's address, confirmed or not (``ReverseDNS/Answer/ptr``).
    public var clientPTR: String?

    public init(clientPort: Int? = nil, serverAddress: String? = nil, serverPort: Int? = nil, clientName: String? = nil, clientPTR: String? = nil) {
        self.clientPort = clientPort
        self.serverAddress = serverAddress
        self.serverPort = serverPort
        self.clientName = clientName
        self.clientPTR = clientPTR
    }
}

/// A negotiated TLS session (``TLSSessionFacts/read(from:)``).
public struct TLSSessionFacts: Sendable, Hashable {
    /// `TLSv1.2`, `TLSv1.3`.
    public var protocolVersion: String
    /// The suite's OpenSSL name; empty if it could not be read.
    public var cipher: String
    public var cipherBits: Int?
    public var peerCertificate: PeerCertificateFacts?

    public init(protocolVersion: String, cipher: String, cipherBits: Int?, peerCertificate: PeerCertificateFacts?) {
        self.protocolVersion = protocolVersion
        self.cipher = cipher
        self.cipherBits = cipherBits
        self.peerCertificate = peerCertificate
    }
}

/// The client's certificate, verified by the TLS layer against the configured CAs.
public struct PeerCertificateFacts: Sendable, Hashable {
    /// Common names of the subject and the issuer; empty if none.
    public var subject: String
    public var issuer: String
    /// SHA-256 of the DER certificate and of its SubjectPublicKeyInfo, as `AB:CD:…`.
    public var fingerprint: String
    public var publicKeyFingerprint: String

    public init(subject: String, issuer: String, fingerprint: String, publicKeyFingerprint: String) {
        self.subject = subject
        self.issuer = issuer
        self.fingerprint = fingerprint
        self.publicKeyFingerprint = publicKeyFingerprint
    }
}
