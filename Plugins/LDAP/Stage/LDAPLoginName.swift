import LDAPDirectory

/// A login name as a mail program sends it, in one of the three forms Active
/// Directory users know: `alice` (sAMAccountName), `EXAMPLE\alice` (down-level
/// logon name) or `alice@example.com` (userPrincipalName, or a mail address).
struct LDAPLoginName: Sendable, Hashable {
    enum Form: Sendable, Hashable {
        case plain, downLevel, address
    }

    /// The name as typed.
    var text: String
    var form: Form
    /// `%s`: the name without its domain (`alice` in all three forms).
    var name: String
    /// `%d`: the domain (`EXAMPLE`, `example.com`), empty for a plain name.
    var domain: String

    init(_ text: String) {
        self.text = text
        if let slash = text.firstIndex(of: "\\") {
            form = .downLevel
            domain = String(text[..<slash])
            name = String(text[text.index(after: slash)...])
        } else if let at = text.lastIndex(of: "@") {
            form = .address
            name = String(text[..<at])
            domain = String(text[text.index(after: at)...])
        } else {
            form = .plain
            name = text
            domain = ""
        }
    }

    /// `template` with `%u` (the whole name), `%s` and `%d` replaced, each escaped
    /// per RFC 4515.
    func filter(template: String) -> String {
        var out = ""
        var chars = template.makeIterator()
        while let ch = chars.next() {
            guard ch == "%" else {
                out.append(ch)
                continue
            }
            switch chars.next() {
            case "u": out += LDAPEscaping.filterValue(text)
            case "s": out += LDAPEscaping.filterValue(name)
            case "d": out += LDAPEscaping.filterValue(domain)
            case let other?: out += "%" + String(other)
            case nil: out += "%"
            }
        }
        return out
    }
}

/// The `login_forms` an Active Directory login may take.
enum LDAPLoginForm: String, Sendable, Hashable, CaseIterable {
    /// `alice`: `(sAMAccountName=alice)`.
    case sam
    /// `alice@example.com`: `(userPrincipalName=alice@example.com)`.
    case upn
    /// `EXAMPLE\alice`: `(sAMAccountName=alice)`, when `EXAMPLE` is `netbios_domain`
    /// (any domain when that is not set).
    case downlevel
    /// `alice@example.com`: `(mail=alice@example.com)` or `(proxyAddresses=smtp:…)`.
    case mail

    /// The filter for `login` under `forms` (ANDed with `restriction`), or `nil`
    /// when no accepted form fits the name.
    static func filter(
        for login: LDAPLoginName,
        forms: [LDAPLoginForm],
        netbiosDomain: String?,
        restriction: String
    ) -> String? {
        var clauses: [String] = []
        let name = LDAPEscaping.filterValue(login.name)
        let whole = LDAPEscaping.filterValue(login.text)
        switch login.form {
        case .plain:
            if forms.contains(.sam) { clauses.append("(sAMAccountName=\(name))") }
        case .downLevel:
            let domainMatches = netbiosDomain.map { $0.lowercased() == login.domain.lowercased() } ?? true
            if forms.contains(.downlevel), domainMatches, !login.name.isEmpty {
                clauses.append("(sAMAccountName=\(name))")
            }
        case .address:
            guard !login.name.isEmpty, !login.domain.isEmpty else { break }
            if forms.contains(.upn) { clauses.append("(userPrincipalName=\(whole))") }
            if forms.contains(.mail) { clauses += ["(mail=\(whole))", "(proxyAddresses=smtp:\(whole))"] }
        }
        guard !clauses.isEmpty else { return nil }
        let any = clauses.count == 1 ? clauses[0] : "(|" + clauses.joined() + ")"
        return "(&" + restriction + any + ")"
    }
}
