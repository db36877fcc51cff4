/// A client command (RFC 5321 §4.1.1 and the extensions Tollgate offers).
public enum SMTPCommand: Sendable, Hashable {
    case helo(String)
    case ehlo(String)
    case mail(ReversePath, MailParameters)
    case rcpt(Mailbox, RecipientParameters, hadSourceRoute: Bool)
    case data
    /// `BDAT size [LAST]` (RFC 3030).
    case bdat(size: Int, last: Bool)
    case rset
    case noop
    case quit
    case vrfy(String)
    case expn(String)
    case help
    case startTLS
    /// `AUTH mechanism [initial-response]` (RFC 4954).
    case auth(mechanism: String, initialResponse: String?)

    /// The verb as sent, upper-case, for logs and metrics.
    public var verb: String {
        switch self {
        case .helo: return "HELO"
        case .ehlo: return "EHLO"
        case .mail: return "MAIL"
        case .rcpt: return "RCPT"
        case .data: return "DATA"
        case .bdat: return "BDAT"
        case .rset: return "RSET"
        case .noop: return "NOOP"
        case .quit: return "QUIT"
        case .vrfy: return "VRFY"
        case .expn: return "EXPN"
        case .help: return "HELP"
        case .startTLS: return "STARTTLS"
        case .auth: return "AUTH"
        }
    }

    /// RFC 2920 §3.1: EHLO, HELO, DATA, VRFY, EXPN, TURN and NOOP end a pipelined group.
    /// Asked of the raw verb, so that a command Tollgate does not implement (TURN) is
    /// judged too. STARTTLS is not here: bytes after it are discarded instead
    /// (RFC 3207 §4.2, CVE-2011-0411).
    public static func mustEndPipelineGroup(verb: some StringProtocol) -> Bool {
        switch verb.uppercased() {
        case "EHLO", "HELO", "DATA", "VRFY", "EXPN", "TURN", "NOOP": return true
        default: return false
        }
    }
}

/// `BODY=` values (RFC 6152, RFC 3030).
public enum BodyType: String, Sendable, Hashable {
    case sevenBit = "7BIT"
    case eightBitMIME = "8BITMIME"
}

/// Parameters of `MAIL FROM` (RFC 1870 SIZE, RFC 6152 BODY, RFC 6531 SMTPUTF8, RFC 3461 RET/ENVID).
public struct MailParameters: Sendable, Hashable {
    public var size: Int?
    public var body: BodyType?
    public var smtpUTF8: Bool
    /// `RET=FULL` or `RET=HDRS`.
    public var ret: String?
    /// `ENVID=` in xtext form, as received.
    public var envelopeID: String?
    /// `AUTH=` (RFC 4954 §5), as received; informational only.
    public var auth: String?

    public init(size: Int? = nil, body: BodyType? = nil, smtpUTF8: Bool = false, ret: String? = nil, envelopeID: String? = nil, auth: String? = nil) {
        self.size = size
        self.body = body
        self.smtpUTF8 = smtpUTF8
        self.ret = ret
        self.envelopeID = envelopeID
        self.auth = auth
    }
}

/// Parameters of `RCPT TO` (RFC 3461 NOTIFY/ORCPT).
public struct RecipientParameters: Sendable, Hashable {
    /// `NOTIFY=` values, upper-case (`NEVER`, or some of `SUCCESS`, `FAILURE`, `DELAY`).
    public var notify: [String]?
    /// `ORCPT=` as received (`rfc822;user@example.com` in xtext).
    public var originalRecipient: String?

    public init(notify: [String]? = nil, originalRecipient: String? = nil) {
        self.notify = notify
        self.originalRecipient = originalRecipient
    }
}
