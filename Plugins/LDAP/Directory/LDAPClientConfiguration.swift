/// How to reach and use the directory.
public struct LDAPClientConfiguration: Sendable, Hashable {
    /// One or more space-separated `ldap://` or `ldaps://` URIs, tried in order
    /// with per-server health (``LDAPServerHealth``).
    public var uri: String
    /// Run StartTLS (RFC 4511 §4.14) on `ldap://` connections; a failure is an error.
    public var startTLS: Bool
    /// CA certificates (PEM) that the directory's certificate must chain to; the
    /// system's (libldap's `TLS_CACERT`) when `nil`.
    public var caFile: String?
    /// The service account that searches for users; anonymous when `nil`.
    public var bindDN: String?
    public var bindPassword: String?
    /// Seconds allowed for connecting and for each operation.
    public var timeout: Double
    /// Worker threads, each with one service (search) and one user-bind connection.
    public var poolSize: Int
    /// Requests waiting for a worker beyond this many are refused at once.
    public var maxQueuedRequests: Int
    /// Seconds a server that failed is tried only after the others.
    public var serverRetry: Double

    /// The URIs of ``uri``, in order.
    public var servers: [String] { uri.split(separator: " ").map(String.init) }

    public init(
        uri: String,
        startTLS: Bool = false,
        caFile: String? = nil,
        bindDN: String? = nil,
        bindPassword: String? = nil,
        timeout: Double = 5,
        poolSize: Int = 4,
        maxQueuedRequests: Int = 256,
        serverRetry: Double = 30
    ) {
        self.uri = uri
        self.startTLS = startTLS
        self.caFile = caFile
        self.bindDN = bindDN
        self.bindPassword = bindPassword
        self.timeout = timeout
        self.poolSize = poolSize
        self.maxQueuedRequests = maxQueuedRequests
        self.serverRetry = serverRetry
    }
}

/// A directory entry: its DN and the requested attributes, keyed by the
/// attribute name as requested, lower-cased.
public struct LDAPEntry: Sendable, Hashable {
    public var dn: String
    public var attributes: [String: [String]]

    public init(dn: String, attributes: [String: [String]]) {
        self.dn = dn
        self.attributes = attributes
    }

    /// The values of `attribute` (case-insensitive name).
    public func values(_ attribute: String) -> [String] {
        attributes[attribute.lowercased()] ?? []
    }
}

/// The answer of ``LDAPClient/login(base:filter:attributes:password:)``.
public enum LDAPLoginResult: Sendable {
    /// The user was found and the bind as that DN succeeded.
    case authenticated(LDAPEntry)
    /// The user was found but the directory refused the password (invalidCredentials);
    /// `accountProblem` is what Active Directory said about the account, if anything
    /// (see ``LDAPError/accountProblem``).
    case invalidCredentials(dn: String, accountProblem: String?)
    /// The user was found, but the caller's check refused the entry before any bind.
    case refused(LDAPEntry, reason: String)
    /// The filter matched no entry.
    case noSuchUser
    /// The filter matched more than one entry: nobody is let in.
    case ambiguous
    /// The directory could not answer: unreachable, slow, or another error.
    case unavailable(LDAPError)
}
