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

    /// A failure that says nothing about the request, only about the server
    /// (connection-level, `busy` 51, `unavailable` 52): try another server.
    public var isServerFailure: Bool { isConnectionFailure || code == 51 || code == 52 }

    /// What Active Directory says about the account in a failed bind
    /// (`AcceptSecurityContext error, data 533`): disabled, locked, expired,
    /// must change its password; `nil` for a plain wrong password (`52e`) or
    /// another server.
    public var accountProblem: String? {
        guard isInvalidCredentials else { return nil }
        let marker = Array(", data ".utf8)
        let bytes = Array(message.utf8)
        guard bytes.count > marker.count,
            let start = (0...(bytes.count - marker.count)).first(where: { bytes[$0..<($0 + marker.count)].elementsEqual(marker) })
        else { return nil }
        let code = String(decoding: bytes[(start + marker.count)...].prefix { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0 | 0x20) }, as: UTF8.self).lowercased()
        switch code {
        case "530": return "logon not permitted at this time"
        case "531": return "logon not permitted from this workstation"
        case "532": return "password expired"
        case "533": return "account disabled"
        case "701": return "account expired"
        case "773": return "password must be changed"
        case "775": return "account locked"
        default: return nil
        }
    }

    /// Whether it was a time limit.
    public var isTimeout: Bool { code == LDAP_TIMEOUT || code == LDAP_TIMELIMIT_EXCEEDED }

    public var description: String { "\(operation): \(message) (\(code))" }
}
