/// Parses RFC 5321 paths and mailboxes. All-or-nothing: a failure says why and
/// returns nothing.
public struct AddressParser: Sendable {
    /// Whether UTF-8 is allowed in local parts and domains (the SMTPUTF8 parameter, RFC 6531).
    public var allowUTF8: Bool

    public init(allowUTF8: Bool = true) {
        self.allowUTF8 = allowUTF8
    }

    public struct Failure: Error, Sendable, Hashable, CustomStringConvertible {
        public var reason: String
        public var description: String { reason }
    }

    /// The result of parsing a path, with whether it carried a source route
    /// (`<@a,@b:user@c>`), which RFC 5321 §4.1.2 says to accept and ignore.
    public struct ParsedPath: Sendable, Hashable {
        public var mailbox: Mailbox?
        public var hadSourceRoute: Bool
    }

    // Path = "<" [ A-d-l ":" ] Mailbox ">"
    // Reverse-path = Path / "<>"
    /// Parses `<...>` at the start of `bytes`; returns the path and the number of bytes consumed.
    public func parsePath(_ bytes: ArraySlice<UInt8>) throws(Failure) -> (ParsedPath, Int) {
        var i = bytes.startIndex
        guard i < bytes.endIndex, bytes[i] == UInt8(ascii: "<") else { throw Failure(reason: "address must be enclosed in <>") }
        i += 1
        if i < bytes.endIndex, bytes[i] == UInt8(ascii: ">") {
            return (ParsedPath(mailbox: nil, hadSourceRoute: false), i + 1 - bytes.startIndex)
        }
        var hadRoute = false
        // A-d-l = At-domain *( "," At-domain ); At-domain = "@" Domain
        if i < bytes.endIndex, bytes[i] == UInt8(ascii: "@") {
            hadRoute = true
            while true {
                guard i < bytes.endIndex, bytes[i] == UInt8(ascii: "@") else { throw Failure(reason: "malformed source route") }
                i += 1
                let end = try parseDomain(bytes, from: i)
                i = end
                guard i < bytes.endIndex else { throw Failure(reason: "malformed source route") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: ":") { i += 1; break }
                throw Failure(reason: "malformed source route")
            }
        }
        let (mailbox, end) = try parseMailbox(bytes[i...])
        i = end
        guard i < bytes.endIndex, bytes[i] == UInt8(ascii: ">") else { throw Failure(reason: "address must be enclosed in <>") }
        i += 1
        guard i - bytes.startIndex <= SMTPLimits.maxPath + 2 || hadRoute else { throw Failure(reason: "address too long") }
        return (ParsedPath(mailbox: mailbox, hadSourceRoute: hadRoute), i - bytes.startIndex)
    }

    /// Parses a whole string as a bare mailbox (`local@domain`, no brackets).
    public func parseMailbox(_ text: String) throws(Failure) -> Mailbox {
        let bytes = Array(text.utf8)
        let (mailbox, end) = try parseMailbox(bytes[...])
        guard end == bytes.endIndex else { throw Failure(reason: "unexpected characters after address") }
        return mailbox
    }

    // Mailbox = Local-part "@" ( Domain / address-literal )
    // Local-part = Dot-string / Quoted-string
    func parseMailbox(_ bytes: ArraySlice<UInt8>) throws(Failure) -> (Mailbox, Int) {
        var i = bytes.startIndex
        var local: [UInt8] = []
        var quoted = false
        if i < bytes.endIndex, bytes[i] == UInt8(ascii: "\"") {
            // Quoted-string = DQUOTE *QcontentSMTP DQUOTE
            quoted = true
            i += 1
            var closed = false
            while i < bytes.endIndex {
                let b = bytes[i]
                if b == UInt8(ascii: "\"") { closed = true; i += 1; break }
                if b == UInt8(ascii: "\\") {
                    // quoted-pairSMTP = %d92 %d32-126
                    i += 1
                    guard i < bytes.endIndex, bytes[i] >= 32, bytes[i] <= 126 else { throw Failure(reason: "bad quoted pair in local part") }
                    local.append(bytes[i])
                } else if (b >= 32 && b <= 126) || (b >= 0x80 && allowUTF8) {
                    // qtextSMTP = %d32-33 / %d35-91 / %d93-126 (backslash and quote handled above)
                    local.append(b)
                } else {
                    throw Failure(reason: "invalid character in quoted local part")
                }
                i += 1
            }
            guard closed else { throw Failure(reason: "unterminated quoted local part") }
        } else {
            // Dot-string = Atom *("." Atom)
            var previousDot = true
            while i < bytes.endIndex {
                let b = bytes[i]
                if b == UInt8(ascii: "@") || b == UInt8(ascii: ">") { break }
                if b == UInt8(ascii: ".") {
                    guard !previousDot else { throw Failure(reason: "empty atom in local part") }
                    previousDot = true
                } else if SMTPGrammar.isAtext(b) || (b >= 0x80 && allowUTF8) {
                    previousDot = false
                } else if b >= 0x80 {
                    throw Failure(reason: "8-bit characters in address require SMTPUTF8")
                } else {
                    throw Failure(reason: "invalid character in local part")
                }
                local.append(b)
                i += 1
            }
            guard !local.isEmpty, !previousDot else { throw Failure(reason: "empty or malformed local part") }
        }
        guard local.count <= SMTPLimits.maxLocalPart else { throw Failure(reason: "local part too long") }
        guard i < bytes.endIndex, bytes[i] == UInt8(ascii: "@") else { throw Failure(reason: "address needs a domain") }
        i += 1
        let domainStart = i
        let end: Int
        if i < bytes.endIndex, bytes[i] == UInt8(ascii: "[") {
            end = try parseAddressLiteral(bytes, from: i)
        } else {
            end = try parseDomain(bytes, from: i)
        }
        guard let localString = String(validating: local, as: UTF8.self),
            let domainString = String(validating: bytes[domainStart..<end], as: UTF8.self)
        else { throw Failure(reason: "address is not valid UTF-8") }
        return (Mailbox(localPart: localString, domain: domainString, wasQuoted: quoted), end)
    }

    // Domain = sub-domain *("." sub-domain)
    // sub-domain = Let-dig [Ldh-str]   (U-labels allowed under SMTPUTF8, RFC 6531 §3.3)
    func parseDomain(_ bytes: ArraySlice<UInt8>, from start: Int) throws(Failure) -> Int {
        var i = start
        var labelLength = 0
        var lastWasHyphen = false
        while i < bytes.endIndex {
            let b = bytes[i]
            if b == UInt8(ascii: ".") {
                guard labelLength > 0, !lastWasHyphen else { throw Failure(reason: "malformed domain") }
                labelLength = 0
            } else if SMTPGrammar.isLetDig(b) || (b >= 0x80 && allowUTF8) {
                labelLength += 1
                lastWasHyphen = false
            } else if b == UInt8(ascii: "-") {
                guard labelLength > 0 else { throw Failure(reason: "malformed domain") }
                labelLength += 1
                lastWasHyphen = true
            } else if b >= 0x80 {
                throw Failure(reason: "8-bit characters in address require SMTPUTF8")
            } else {
                break
            }
            guard labelLength <= 63 else { throw Failure(reason: "domain label too long") }
            i += 1
        }
        guard labelLength > 0, !lastWasHyphen else { throw Failure(reason: "malformed domain") }
        guard i - start <= SMTPLimits.maxDomain else { throw Failure(reason: "domain too long") }
        return i
    }

    // address-literal = "[" ( IPv4-address-literal / IPv6-address-literal / General-address-literal ) "]"
    func parseAddressLiteral(_ bytes: ArraySlice<UInt8>, from start: Int) throws(Failure) -> Int {
        var i = start + 1
        while i < bytes.endIndex, bytes[i] != UInt8(ascii: "]") {
            let b = bytes[i]
            // dcontent = %d33-90 / %d94-126
            guard (b >= 33 && b <= 90) || (b >= 94 && b <= 126) else { throw Failure(reason: "invalid address literal") }
            i += 1
        }
        guard i < bytes.endIndex, i > start + 1 else { throw Failure(reason: "invalid address literal") }
        let content = String(decoding: bytes[(start + 1)..<i], as: UTF8.self)
        if content.lowercased().hasPrefix("ipv6:") {
            guard IPAddressText.isIPv6(String(content.dropFirst(5))) else { throw Failure(reason: "invalid IPv6 address literal") }
        } else if content.contains(":") {
            // General-address-literal = Standardized-tag ":" 1*dcontent: none are registered.
            throw Failure(reason: "unsupported address literal")
        } else {
            guard IPAddressText.isIPv4(content) else { throw Failure(reason: "invalid IPv4 address literal") }
        }
        return i + 1
    }
}

/// Syntax checks for textual IP addresses.
public enum IPAddressText {
    public static func isIPv4(_ s: String) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return false }
        return parts.allSatisfy { part in
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCIIDigit), let v = Int(part) else { return false }
            return v <= 255
        }
    }

    public static func isIPv6(_ s: String) -> Bool {
        guard !s.isEmpty, s.count <= 45 else { return false }
        var text = Substring(s)
        var groupsNeeded = 8
        if let lastColon = text.lastIndex(of: ":"), text[text.index(after: lastColon)...].contains(".") {
            guard isIPv4(String(text[text.index(after: lastColon)...])) else { return false }
            text = text[...lastColon]
            if text.hasSuffix(":") && !text.hasSuffix("::") { text = text.dropLast() }
            groupsNeeded = 6
        }
        let doubleColons = String(text).split(separator: "::", omittingEmptySubsequences: false).count - 1
        guard doubleColons <= 1 else { return false }
        let groups = text.split(separator: ":", omittingEmptySubsequences: true)
        for g in groups {
            guard g.count <= 4, g.allSatisfy(\.isHexDigit) else { return false }
        }
        if doubleColons == 1 { return groups.count < groupsNeeded }
        return groups.count == groupsNeeded
    }
}

extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
