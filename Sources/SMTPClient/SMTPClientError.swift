import SMTPCore

/// Why a connection or a transaction failed before the upstream gave per-recipient answers.
/// ``reply`` says what to record against the message: 4xx retry, 5xx bounce.
public enum SMTPClientError: Error, Sendable, Hashable, CustomStringConvertible {
    case connectFailed(String)
    /// The server refused the session: a non-220 greeting, or a failed EHLO and HELO.
    case greeting(SMTPReply)
    /// TLS was required (mode `required`, or credentials are configured) but the server
    /// does not offer STARTTLS or refused it (RELIABILITY F7).
    case tlsRequiredButUnavailable
    case tlsHandshake(String)
    case authFailed(SMTPReply)
    case protocolError(String)
    case timeout(String)
    /// The connection closed before the expected reply (RFC 5321 §3.8: treat as 451).
    case connectionClosed
    /// 8-bit content that cannot be converted to 7-bit (8-bit header fields) and the
    /// server lacks 8BITMIME (RELIABILITY C16).
    case eightBitNotSupported
    /// The envelope needs SMTPUTF8 and the server lacks it (RELIABILITY C17).
    case smtputf8NotSupported
    /// The message is larger than the server's SIZE (RFC 1870, RELIABILITY F8).
    case messageTooLarge(limit: Int)
    /// A command argument would be unsafe or malformed on the wire (RELIABILITY C18).
    case invalidArgument(String)

    /// Whether the message should bounce rather than be retried. Connection, TLS, AUTH and
    /// protocol faults are temporary: another host or a later attempt may succeed.
    public var isPermanent: Bool {
        switch self {
        case .eightBitNotSupported, .smtputf8NotSupported, .messageTooLarge, .invalidArgument:
            return true
        case .connectFailed, .greeting, .tlsRequiredButUnavailable, .tlsHandshake, .authFailed,
            .protocolError, .timeout, .connectionClosed:
            return false
        }
    }

    /// The reply to record for every recipient of the affected message.
    public var reply: SMTPReply? {
        switch self {
        case .connectFailed(let reason):
            return SMTPReply(451, "4.4.1", "cannot connect to upstream: \(reason)")
        case .greeting(let reply):
            return reply.isTransient
                ? reply : SMTPReply(451, "4.3.0", "upstream refused the session: \(reply)")
        case .tlsRequiredButUnavailable:
            return SMTPReply(451, "4.7.5", "upstream does not offer TLS, which is required")
        case .tlsHandshake(let reason):
            return SMTPReply(451, "4.7.5", "TLS handshake with upstream failed: \(reason)")
        case .authFailed(let reply):
            return SMTPReply(451, "4.7.0", "authentication to upstream failed: \(reply)")
        case .protocolError(let reason):
            return SMTPReply(451, "4.5.0", "upstream protocol error: \(reason)")
        case .timeout(let what):
            return SMTPReply(451, "4.4.2", "timeout waiting for upstream: \(what)")
        case .connectionClosed:
            return SMTPReply(451, "4.4.2", "upstream closed the connection")
        case .eightBitNotSupported:
            return SMTPReply(554, "5.6.3", "upstream does not support 8BITMIME, and the message has 8-bit header fields, which cannot be converted to 7-bit")
        case .smtputf8NotSupported:
            return SMTPReply(554, "5.6.7", "upstream does not support SMTPUTF8, which the message needs")
        case .messageTooLarge(let limit):
            return SMTPReply(552, "5.3.4", "message exceeds upstream size limit of \(limit) bytes")
        case .invalidArgument(let what):
            return SMTPReply(501, "5.5.4", "refusing to send invalid \(what)")
        }
    }

    public var description: String {
        switch self {
        case .connectFailed(let reason): return "connect failed: \(reason)"
        case .greeting(let reply): return "session refused: \(reply)"
        case .tlsRequiredButUnavailable: return "TLS required but not available"
        case .tlsHandshake(let reason): return "TLS handshake failed: \(reason)"
        case .authFailed(let reply): return "authentication failed: \(reply)"
        case .protocolError(let reason): return "protocol error: \(reason)"
        case .timeout(let what): return "timeout: \(what)"
        case .connectionClosed: return "connection closed"
        case .eightBitNotSupported: return "8BITMIME not supported and 8-bit header fields"
        case .smtputf8NotSupported: return "SMTPUTF8 not supported"
        case .messageTooLarge(let limit): return "message too large (limit \(limit))"
        case .invalidArgument(let what): return "invalid argument: \(what)"
        }
    }
}
