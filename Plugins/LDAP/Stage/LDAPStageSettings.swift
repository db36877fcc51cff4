import LDAPDirectory
import TollgatePolicy

/// The `ldap` stage's settings, validated.
///
/// ```yaml
/// - use: ldap
///   settings:
///     uri: ldap://127.0.0.1:3389          # or ldaps://…; several, space-separated, are tried in order
///     starttls: true                      # StartTLS on ldap:// (default false)
///     ca_file: certs/ldap-ca.pem          # CA for the directory's certificate (TLS only)
///     bind_dn: cn=relay,ou=services,dc=example,dc=com
///     bind_password_file: secrets/ldap.pw # or bind_password: "…"
///     base: ou=people,dc=example,dc=com
///     user_filter: (&(objectClass=inetOrgPerson)(uid=%u))
///     mail_attributes: [mail]             # addresses the user may send as
///     department_attribute: departmentNumber   # optional
///     group_attribute: memberOf
///     required_group: cn=relay-users,ou=groups,dc=example,dc=com   # optional
///     pool_size: 4
///     timeout: 5s
///     cache_ttl: 5m                       # 0 turns the cache off
///     negative_cache_ttl: 30s
///     max_failures_per_user: 5            # 0 turns throttling off
///     failure_window: 5m
/// ```
struct LDAPStageSettings: Sendable, Hashable {
    var uri: String
    var startTLS: Bool
    var caFile: String?
    var bindDN: String?
    var bindPassword: String?
    var bindPasswordFile: String?
    var base: String
    var userFilter: String
    var mailAttributes: [String]
    var departmentAttribute: String?
    var groupAttribute: String
    var requiredGroup: String?
    var poolSize: Int
    var timeout: Double
    var cacheTTL: Double
    var negativeCacheTTL: Double
    var maxFailuresPerUser: Int
    var failureWindow: Double

    static let defaultUserFilter = "(&(objectClass=inetOrgPerson)(uid=%u))"

    static let keys: Set<String> = [
        "uri", "starttls", "ca_file", "bind_dn", "bind_password", "bind_password_file", "base", "user_filter",
        "mail_attributes", "department_attribute", "group_attribute", "required_group", "pool_size", "timeout",
        "cache_ttl", "negative_cache_ttl", "max_failures_per_user", "failure_window",
    ]

    /// Parses and checks `settings`; `nil` settings whenever there is a diagnostic.
    /// Files (`ca_file`, `bind_password_file`) are checked for readability here but
    /// read only by ``readBindPassword()``.
    static func parse(_ settings: PolicySettings) -> (LDAPStageSettings?, [PolicyDiagnostic]) {
        guard case .map = settings.value else {
            return (nil, [PolicyDiagnostic(settings.location, "the ldap stage's settings must be a map")])
        }
        var reader = SettingsReader(settings)
        for diagnostic in settings.unknownKeys(allowed: keys) { reader.fail(diagnostic.location, diagnostic.message) }

        let uri = reader.requiredString("uri")?.trimmingSpaces
        var usesLDAPS = false
        if let uri {
            for part in uri.split(separator: " ") {
                let lower = part.lowercased()
                if lower.hasPrefix("ldaps://") {
                    usesLDAPS = true
                } else if !lower.hasPrefix("ldap://") {
                    reader.fail(reader.location("uri"), "'uri' must be ldap://HOST[:PORT] or ldaps://HOST[:PORT], not '\(part)'")
                }
            }
        }
        let startTLS = reader.bool("starttls", default: false)
        if startTLS && usesLDAPS {
            reader.fail(reader.location("starttls"), "'starttls' is for ldap:// URIs; ldaps:// is TLS from the start")
        }

        var caFile = reader.string("ca_file")
        if let path = caFile {
            let resolved = reader.resolvedPath(path, at: reader.location("ca_file"))
            caFile = resolved
            if !startTLS && !usesLDAPS {
                reader.fail(reader.location("ca_file"), "'ca_file' needs an ldaps:// uri or 'starttls: true'")
            } else if !FileAccess.isReadable(resolved) {
                reader.fail(reader.location("ca_file"), "cannot read CA file '\(resolved)'")
            }
        }

        let bindDN = reader.string("bind_dn")
        let bindPassword = reader.string("bind_password")
        var bindPasswordFile = reader.string("bind_password_file")
        if let path = bindPasswordFile {
            let resolved = reader.resolvedPath(path, at: reader.location("bind_password_file"))
            bindPasswordFile = resolved
            if !FileAccess.isReadable(resolved) {
                reader.fail(reader.location("bind_password_file"), "cannot read password file '\(resolved)'")
            }
        }
        if bindPassword != nil && bindPasswordFile != nil {
            reader.fail(reader.location("bind_password_file"), "give 'bind_password' or 'bind_password_file', not both")
        }
        if let bindDN {
            if !bindDN.contains("=") {
                reader.fail(reader.location("bind_dn"), "'bind_dn' must be a DN such as cn=relay,dc=example,dc=com")
            }
            if bindPassword == nil && bindPasswordFile == nil {
                reader.fail(reader.location("bind_dn"), "'bind_dn' needs 'bind_password' or 'bind_password_file'")
            }
            if bindPassword?.isEmpty == true {
                reader.fail(reader.location("bind_password"), "'bind_password' must not be empty (an empty simple bind is anonymous)")
            }
        } else if bindPassword != nil || bindPasswordFile != nil {
            reader.fail(reader.location(bindPassword != nil ? "bind_password" : "bind_password_file"), "a bind password needs 'bind_dn'")
        }

        let base = reader.requiredString("base")
        let userFilter = reader.string("user_filter") ?? defaultUserFilter
        if let problem = filterTemplateProblem(userFilter) {
            reader.fail(reader.location("user_filter"), problem)
        }

        let mailAttributes = reader.stringList("mail_attributes") ?? ["mail"]
        if mailAttributes.isEmpty {
            reader.fail(reader.location("mail_attributes"), "'mail_attributes' must name at least one attribute")
        }
        for attribute in mailAttributes where !isAttributeName(attribute) {
            reader.fail(reader.location("mail_attributes"), "'\(attribute)' is not an attribute name")
        }
        let departmentAttribute = reader.string("department_attribute")
        if let departmentAttribute, !isAttributeName(departmentAttribute) {
            reader.fail(reader.location("department_attribute"), "'\(departmentAttribute)' is not an attribute name")
        }
        let groupAttribute = reader.string("group_attribute") ?? "memberOf"
        if !isAttributeName(groupAttribute) {
            reader.fail(reader.location("group_attribute"), "'\(groupAttribute)' is not an attribute name")
        }
        let requiredGroup = reader.string("required_group")
        if let requiredGroup, !requiredGroup.contains("=") {
            reader.fail(reader.location("required_group"), "'required_group' must be a group DN such as cn=mail,ou=groups,dc=example,dc=com")
        }

        let poolSize = reader.int("pool_size", default: 4, range: 1...64)
        let timeout = reader.duration("timeout", default: 5, range: 0.05...300)
        let cacheTTL = reader.duration("cache_ttl", default: 300, range: 0...86400)
        let negativeCacheTTL = reader.duration("negative_cache_ttl", default: 30, range: 0...86400)
        let maxFailures = reader.int("max_failures_per_user", default: 5, range: 0...1_000_000)
        let failureWindow = reader.duration("failure_window", default: 300, range: 1...86400)

        guard reader.diagnostics.isEmpty, let uri, let base else { return (nil, reader.diagnostics) }
        let parsed = LDAPStageSettings(
            uri: uri, startTLS: startTLS, caFile: caFile, bindDN: bindDN, bindPassword: bindPassword,
            bindPasswordFile: bindPasswordFile, base: base, userFilter: userFilter, mailAttributes: mailAttributes,
            departmentAttribute: departmentAttribute, groupAttribute: groupAttribute, requiredGroup: requiredGroup,
            poolSize: poolSize, timeout: timeout, cacheTTL: cacheTTL, negativeCacheTTL: negativeCacheTTL,
            maxFailuresPerUser: maxFailures, failureWindow: failureWindow
        )
        return (parsed, [])
    }

    /// The service password, from the settings or the first line of its file.
    func readBindPassword() throws(PolicyDiagnostic) -> String? {
        if let bindPassword { return bindPassword }
        guard let path = bindPasswordFile else { return nil }
        guard let text = FileAccess.read(path) else {
            throw PolicyDiagnostic(SourceLocation(file: path, line: 1, column: 1), "cannot read password file")
        }
        let firstLine = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let password = String(firstLine.hasSuffix("\r") ? firstLine.dropLast() : firstLine)
        guard !password.isEmpty else {
            throw PolicyDiagnostic(SourceLocation(file: path, line: 1, column: 1), "password file is empty")
        }
        return password
    }

    /// The client configuration for ``LDAPClient``.
    func clientConfiguration(bindPassword: String?) -> LDAPClientConfiguration {
        LDAPClientConfiguration(
            uri: uri, startTLS: startTLS, caFile: caFile, bindDN: bindDN, bindPassword: bindPassword,
            timeout: timeout, poolSize: poolSize, maxQueuedRequests: max(64, poolSize * 32)
        )
    }

    /// Why `template` is not a usable filter template, or `nil` when it is.
    static func filterTemplateProblem(_ template: String) -> String? {
        guard template.contains("%u") else { return "'user_filter' must contain %u where the user name goes" }
        guard template.hasPrefix("("), template.hasSuffix(")") else {
            return "'user_filter' must be a parenthesized LDAP filter such as (uid=%u)"
        }
        var depth = 0
        var escaped = false
        for ch in template {
            if escaped { escaped = false; continue }
            switch ch {
            case "\\": escaped = true
            case "(": depth += 1
            case ")":
                depth -= 1
                if depth < 0 { return "'user_filter' has unbalanced parentheses" }
            default: break
            }
        }
        return depth == 0 ? nil : "'user_filter' has unbalanced parentheses"
    }

    /// An attribute description: a name (`mail`, `departmentNumber`) or a numeric OID.
    static func isAttributeName(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first else { return false }
        if first.properties.isASCIIHexDigit && ("0"..."9").contains(first) {
            return text.unicodeScalars.allSatisfy { ("0"..."9").contains($0) || $0 == "." }
        }
        return first.isASCII && first.properties.isAlphabetic
            && text.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-") }
    }
}
