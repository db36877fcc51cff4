/// An RFC 5321 mailbox: `local-part@domain` (RFC 5321 §4.1.2), with SMTPUTF8 allowed
/// where RFC 6531 allows it.
public struct Mailbox: Sendable, Hashable, CustomStringConvertible {
    /// The local part, unquoted (the quotes and backslashes of a quoted string removed).
    public var localPart: String
    /// The domain, or an address literal including its brackets (`[192.0.2.1]`).
    public var domain: String
    /// Whether the local part was written as a quoted string.
    public var wasQuoted: Bool

    public init(localPart: String, domain: String, wasQuoted: Bool = false) {
        self.localPart = localPart
        self.domain = domain
        self.wasQuoted = wasQuoted
    }

    public var isAddressLiteral: Bool { domain.hasPrefix("[") }

    /// Whether any part needs SMTPUTF8 (RFC 6531 §3.3).
    public var needsSMTPUTF8: Bool {
        localPart.utf8.contains { $0 >= 0x80 } || domain.utf8.contains { $0 >= 0x80 }
    }

    /// The local part as it must be written on the wire: a dot-string when it is one,
    /// otherwise a quoted string.
    public var wireLocalPart: String {
        if Mailbox.isDotString(localPart) { return localPart }
        var quoted = "\""
        for scalar in localPart.unicodeScalars {
            if scalar == "\"" || scalar == "\\" { quoted.append("\\") }
            quoted.unicodeScalars.append(scalar)
        }
        quoted.append("\"")
        return quoted
    }

    /// `local@domain`, quoted where needed: what goes between `<` and `>`.
    public var description: String { "\(wireLocalPart)@\(domain)" }

    /// The form used for policy comparisons: the local part as written, the domain
    /// lower-cased (domains are case-insensitive, local parts are not, RFC 5321 §2.4).
    public var normalized: String { "\(localPart)@\(domain.lowercased())" }

    /// Whether the local part contains the characters of sender-specified routing
    /// (`user%host@relay`, `host!user@relay`, `"user@host"@relay`), which Tollgate
    /// refuses in recipients like Postfix's `allow_untrusted_routing = no`.
    public var hasRoutingCharacters: Bool {
        localPart.contains("@") || localPart.contains("%") || localPart.contains("!")
    }

    static func isDotString(_ s: String) -> Bool {
        guard !s.isEmpty else { return false }
        var previousDot = true
        for byte in s.utf8 {
            if byte == UInt8(ascii: ".") {
                if previousDot { return false }
                previousDot = true
            } else if SMTPGrammar.isAtext(byte) || byte >= 0x80 {
                previousDot = false
            } else {
                return false
            }
        }
        return !previousDot
    }
}

/// A reverse-path (`MAIL FROM`): a mailbox or the null sender `<>`.
public enum ReversePath: Sendable, Hashable, CustomStringConvertible {
    case null
    case mailbox(Mailbox)

    public var mailbox: Mailbox? {
        if case .mailbox(let m) = self { return m }
        return nil
    }

    /// `<>` or `<local@domain>`.
    public var description: String {
        switch self {
        case .null: return "<>"
        case .mailbox(let m): return "<\(m)>"
        }
    }

    /// The address without brackets; `""` for the null sender.
    public var address: String {
        switch self {
        case .null: return ""
        case .mailbox(let m): return m.description
        }
    }
}

/// Character classes of RFC 5321 §4.1.2 and RFC 5322 §3.2.3.
enum SMTPGrammar {
    /// atext = ALPHA / DIGIT / "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "/" /
    ///         "=" / "?" / "^" / "_" / "`" / "{" / "|" / "}" / "~"
    static func isAtext(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
            UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "/"),
            UInt8(ascii: "="), UInt8(ascii: "?"), UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"),
            UInt8(ascii: "{"), UInt8(ascii: "|"), UInt8(ascii: "}"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    static func isLetDig(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
            || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
    }
}
