import SMTPCore

/// The service extensions an upstream announced in its EHLO reply (RFC 5321 §4.1.1.1).
///
///     ehlo-ok-rsp = ( "250" SP Domain [ SP ehlo-greet ] CRLF )
///                 / ( "250-" Domain [ SP ehlo-greet ] CRLF
///                     *( "250-" ehlo-line CRLF ) "250" SP ehlo-line CRLF )
///     ehlo-line   = ehlo-keyword *( SP ehlo-param )
public struct ServerCapabilities: Sendable, Hashable {
    /// Upper-case keywords (`PIPELINING`, `8BITMIME`, `SIZE`, `AUTH`, …).
    public var keywords: Set<String>
    /// The `SIZE` limit (RFC 1870); `nil` when absent or `0` (no limit announced).
    public var maxSize: Int?
    /// Upper-case SASL mechanisms of `AUTH` (and the old `AUTH=` form).
    public var authMechanisms: Set<String>

    public init(keywords: Set<String> = [], maxSize: Int? = nil, authMechanisms: Set<String> = []) {
        self.keywords = keywords
        self.maxSize = maxSize
        self.authMechanisms = authMechanisms
    }

    /// A server greeted with HELO: no extensions.
    public static let none = ServerCapabilities()

    /// Reads the lines after the first (which carries the server's name).
    public init(ehloReply: SMTPReply) {
        self.init()
        for line in ehloReply.lines.dropFirst() {
            let words = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let first = words.first else { continue }
            var keyword = first.uppercased()
            var params = words.dropFirst().map { $0.uppercased() }
            // Pre-RFC 4954 servers write `AUTH=LOGIN PLAIN`.
            if keyword.hasPrefix("AUTH=") {
                params.insert(String(keyword.dropFirst(5)), at: 0)
                keyword = "AUTH"
            }
            keywords.insert(keyword)
            switch keyword {
            case "SIZE":
                if let value = params.first.flatMap({ Int($0) }), value > 0 { maxSize = value }
            case "AUTH":
                authMechanisms.formUnion(params.filter { !$0.isEmpty })
            default:
                break
            }
        }
    }

    public var pipelining: Bool { keywords.contains("PIPELINING") }
    public var eightBitMIME: Bool { keywords.contains("8BITMIME") }
    public var smtpUTF8: Bool { keywords.contains("SMTPUTF8") }
    public var dsn: Bool { keywords.contains("DSN") }
    public var startTLS: Bool { keywords.contains("STARTTLS") }
    public var size: Bool { keywords.contains("SIZE") }
}
