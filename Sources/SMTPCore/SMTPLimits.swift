/// Protocol limits, each a named constant with the RFC that sets its floor.
public enum SMTPLimits {
    /// Longest command line accepted, CRLF included. RFC 5321 §4.5.3.1.4 requires at
    /// least 512; extensions (SIZE, DSN's ORCPT, SMTPUTF8) need more. Postfix uses 2048.
    public static let maxCommandLine = 2048
    /// Longest text line sent upstream, CRLF excluded (RFC 5321 §4.5.3.1.6).
    public static let maxOutboundLine = 998
    /// Longest local part / domain / path (RFC 5321 §4.5.3.1.1–3).
    public static let maxLocalPart = 64
    public static let maxDomain = 255
    public static let maxPath = 256
    /// Longest AUTH exchange line (RFC 4954 §4: at least 12288 for the initial response).
    public static let maxAuthLine = 12_288
    /// Header block examined for the `data` policy phase (Postfix `header_size_limit`).
    public static let maxHeaderBlock = 102_400
    /// Smallest `max_message_size` the relay allows (RFC 5321 §4.5.3.1.7).
    public static let minMessageSize = 65_536
    /// Fewest recipients per transaction the relay allows (RFC 5321 §4.5.3.1.8).
    public static let minRecipients = 100
}
