/// One allowed-sender pattern: `*` (any address), `*@domain` (any address in the
/// domain, not its subdomains) or `local@domain` (exactly that address).
///
/// Matching ignores case in the domain (DNS names are case-insensitive) **and in the
/// local part**: RFC 5321 lets a server treat local parts case-sensitively, but
/// directories (LDAP `mail` is a case-ignoring attribute) and practically every mail
/// system do not, and the addresses a user may send as arrive lower-cased. The null
/// sender `<>` never matches a pattern; it is governed by `allow_null_sender`.
public struct SenderPattern: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        case any
        case domain(String)
        case address(String)
    }

    public let kind: Kind
    /// The pattern as written, for reasons and logs.
    public let text: String

    /// Parses a pattern, or explains why it is not one.
    public static func parse(_ raw: String) -> Result<SenderPattern, PatternError> {
        let text = raw.trimmingSpaces
        let lower = text.lowercased()
        if lower == "*" { return .success(SenderPattern(kind: .any, text: text)) }
        guard let at = lower.lastIndex(of: "@") else {
            return .failure(PatternError("'\(text)' is not a sender pattern (expected *, *@domain or local@domain)"))
        }
        let local = lower[..<at]
        let domain = lower[lower.index(after: at)...]
        guard !domain.isEmpty, !domain.contains("*"), !domain.contains(" "), !domain.hasPrefix("."), !domain.hasSuffix(".") else {
            return .failure(PatternError("'\(text)' has no valid domain (expected *, *@domain or local@domain)"))
        }
        if local == "*" { return .success(SenderPattern(kind: .domain(String(domain)), text: text)) }
        guard !local.isEmpty else {
            return .failure(PatternError("'\(text)' has an empty local part; write *@\(domain) for the whole domain"))
        }
        guard !local.contains("*") else {
            return .failure(PatternError("'\(text)': '*' may only stand for the whole local part (*@domain) or everything (*)"))
        }
        return .success(SenderPattern(kind: .address(String(lower)), text: text))
    }

    /// Whether `address` (any case) matches. `""` (the null sender) never does.
    public func matches(_ address: String) -> Bool {
        let lower = address.lowercased()
        guard !lower.isEmpty else { return false }
        switch kind {
        case .any:
            return true
        case .domain(let domain):
            guard let at = lower.lastIndex(of: "@") else { return false }
            var candidate = lower[lower.index(after: at)...]
            if candidate.hasSuffix(".") { candidate = candidate.dropLast() }
            return candidate == domain
        case .address(let exact):
            return lower == exact
        }
    }

    public var description: String { text }
}

public struct PatternError: Error, Sendable, Hashable {
    public let message: String
    init(_ message: String) { self.message = message }
}
