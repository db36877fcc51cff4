import NIOCore
import SMTPCore

/// How the client protects the connection to an upstream (`upstreams[].tls`, SPEC §3).
public enum UpstreamTLSMode: String, Sendable, Hashable, CaseIterable {
    /// Plaintext only; STARTTLS is never attempted.
    case none
    /// STARTTLS when offered; plaintext when the server does not offer it or answers
    /// STARTTLS with an error. A failed handshake is an error, never a plaintext retry.
    case opportunistic
    /// STARTTLS is mandatory (RFC 3207); without it nothing is sent (RELIABILITY F7).
    case required
    /// TLS from the first byte (RFC 8314 §3.3), before the greeting.
    case implicit
}

/// Settings for one upstream connection. Defaults follow RFC 5321 §4.5.3.2.
public struct SMTPClientConfiguration: Sendable {
    public var tls: UpstreamTLSMode
    /// Verify the server certificate chain and name. Off only for tests and pilots.
    public var verifyCertificate: Bool
    /// A PEM file of trusted roots; the system roots otherwise.
    public var caFile: String?
    /// The TLS versions and TLS 1.2 suites offered (`tls_min_version`, `tls_ciphers`).
    public var tlsPolicy: TLSPolicy
    /// Credentials for AUTH PLAIN (preferred) or LOGIN (RFC 4954). They are only ever
    /// sent over TLS: without TLS the connection fails with
    /// ``SMTPClientError/tlsRequiredButUnavailable``.
    public var username: String?
    public var password: String?
    /// The name sent in EHLO / HELO.
    public var heloName: String
    /// The TCP connect; also added to ``commandTimeout`` for STARTTLS and its handshake.
    /// An implicit-TLS handshake counts against the wait for the greeting.
    public var connectTimeout: TimeAmount
    /// Every reply except the one to the final dot: greeting, EHLO, MAIL, RCPT, DATA.
    public var commandTimeout: TimeAmount
    /// Sending the content and waiting for the reply to the final dot
    /// (RFC 5321 §4.5.3.2.6, "DATA termination: 10 minutes").
    public var dataTimeout: TimeAmount

    public init(
        tls: UpstreamTLSMode = .required,
        verifyCertificate: Bool = true,
        caFile: String? = nil,
        tlsPolicy: TLSPolicy = .intermediate,
        username: String? = nil,
        password: String? = nil,
        heloName: String,
        connectTimeout: TimeAmount = .seconds(30),
        commandTimeout: TimeAmount = .minutes(5),
        dataTimeout: TimeAmount = .minutes(10)
    ) {
        self.tls = tls
        self.verifyCertificate = verifyCertificate
        self.caFile = caFile
        self.tlsPolicy = tlsPolicy
        self.username = username
        self.password = password
        self.heloName = heloName
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.dataTimeout = dataTimeout
    }

}
