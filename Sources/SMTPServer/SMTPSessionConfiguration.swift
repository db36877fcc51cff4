import SMTPCore

/// How a listener handles TLS (`listeners[].tls`).
public enum ListenerTLSMode: String, Sendable, Hashable {
    case none, starttls, implicit
}

/// Whether a listener offers or requires AUTH (`listeners[].auth`). AUTH is only ever
/// offered after TLS.
public enum ListenerAuthMode: String, Sendable, Hashable {
    case none, optional, required
}

/// Everything one session needs to know about its listener and the limits.
public struct SMTPSessionConfiguration: Sendable {
    public var hostname: String
    public var listenerName: String
    public var tls: ListenerTLSMode
    public var auth: ListenerAuthMode
    public var maxMessageSize: Int
    public var maxRecipients: Int
    public var bareNewline: BareNewlinePolicy
    /// Whether recipients may be address literals (`x@[10.0.0.5]`); refused by default
    /// (`limits.address_literals`, RELIABILITY B4), as they bypass domain policies and
    /// reach internal hosts through the smarthost.
    public var acceptsAddressLiteralRecipients: Bool
    /// Protocol errors (5xx to syntax or sequence) before the session is closed with 421
    /// (Postfix `smtpd_hard_error_limit`).
    public var maxErrors: Int
    /// NOOP/RSET/VRFY/HELP before the session is closed (Postfix `smtpd_junk_command_limit`).
    public var maxJunkCommands: Int
    /// Failed AUTH attempts in one session before it is closed with 421.
    public var maxAuthFailures: Int
    /// Whether AUTH is accepted after HELO as after EHLO (`listeners[].auth_after_helo`,
    /// as Postfix does; printers and scanners say HELO and then AUTH).
    public var authAfterHelo: Bool
    /// Whether MAIL FROM and RCPT TO need their angle brackets (`listeners[].strict_envelopes`,
    /// Postfix `strict_rfc821_envelopes`); when false `MAIL FROM:a@b` is accepted.
    public var strictEnvelopes: Bool

    public init(
        hostname: String,
        listenerName: String = "relay",
        tls: ListenerTLSMode = .none,
        auth: ListenerAuthMode = .none,
        maxMessageSize: Int = 25 * 1024 * 1024,
        maxRecipients: Int = 100,
        bareNewline: BareNewlinePolicy = .normalize,
        acceptsAddressLiteralRecipients: Bool = false,
        maxErrors: Int = 20,
        maxJunkCommands: Int = 100,
        maxAuthFailures: Int = 3,
        authAfterHelo: Bool = true,
        strictEnvelopes: Bool = false
    ) {
        self.hostname = hostname
        self.listenerName = listenerName
        self.tls = tls
        self.auth = auth
        self.maxMessageSize = maxMessageSize
        self.maxRecipients = maxRecipients
        self.bareNewline = bareNewline
        self.acceptsAddressLiteralRecipients = acceptsAddressLiteralRecipients
        self.maxErrors = maxErrors
        self.maxJunkCommands = maxJunkCommands
        self.maxAuthFailures = maxAuthFailures
        self.authAfterHelo = authAfterHelo
        self.strictEnvelopes = strictEnvelopes
    }
}
