import CLDAP

/// A failed libldap call: the result code and what libldap and the server said.
public struct LDAPError: Error, Sendable, CustomStringConvertible {
    /// The LDAP result code (RFC 4511 §4.1.9) or a negative libldap API code.
    public var code: Int32
    /// Where it happened (`connect`, `starttls`, `service bind`, `search`, `user bind`).
    public var operation: String
    /// `ldap_err2string` plus the server's diagnostic message, if any.
    public var message: String

    public init(code: Int32, operation: String, message: String) {
        self.code = code
        self.operation = operation
        self.message = message
    }

    /// `invalidCredentials` (49): wrong password, or no such DN for the bind.
    public var isInvalidCredentials: Bool { code == LDAP_INVALID_CREDENTIALS }

    /// A client-side failure (server down, timeout, connect error, TLS): the
    /// connection must be discarded.
    public var isConnectionFailure: Bool { code < 0 }

    /// Whether it was a time limit.
    public var isTimeout: Bool { code == LDAP_TIMEOUT || code == LDAP_TIMELIMIT_EXCEEDED }

    public var description: String { "\(operation): \(message) (\(code))" }
}
