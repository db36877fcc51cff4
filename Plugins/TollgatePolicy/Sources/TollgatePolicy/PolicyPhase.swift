/// The SMTP phases at which the pipeline is consulted, in the order a session meets them.
///
/// The names are the ones used in configuration and logs.
public enum PolicyPhase: String, Sendable, CaseIterable, Hashable {
    /// A client connected; nothing has been said yet.
    case connect
    /// `HELO` or `EHLO` with the client's name.
    case helo
    /// `STARTTLS` completed; the session is now encrypted.
    case starttls
    /// `AUTH` succeeded; ``PolicyContext/authenticatedUser`` is set.
    case auth
    /// `MAIL FROM`.
    case mail
    /// One `RCPT TO`; ``PolicyContext/recipient`` is the address in question.
    case rcpt
    /// The whole message has been received; headers and size are known.
    case data
}
