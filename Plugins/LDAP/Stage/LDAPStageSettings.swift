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
///     user_filter: (&(objectClass=inetOrgPerson)(|(uid=%u)(mail=%u)))   # %u, %s, %d
///     login_forms: [sam, upn, downlevel]  # Active Directory; instead of a %u filter
///     netbios_domain: EXAMPLE             # the EXAMPLE of EXAMPLE\alice
///     user_attribute: uid                 # the canonical user name (sAMAccountName with login_forms)
///     mail_attributes: [mail]             # addresses the user may send as (proxyAddresses: smtp: values)
///     delegate_attribute: publicDelegates # entries listing the user's DN here lend their addresses
///     delegate_base: ou=shared,dc=example,dc=com
///     nested_groups: false                # in-chain rule, or a bounded walk
///     group_member_attribute: member
///     account_checks: true                # AD disabled/locked/expired/must-change
///     server_retry: 30s                   # a failed server is tried last for this long
///     stale_ttl: 0s                       # serve expired cache entries during an outage
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
    var loginForms: [LDAPLoginForm] = []
    var netbiosDomain: String?
    var userAttribute: String = "uid"
    var delegateAttribute: String?
    var delegateBase: String?
    var nestedGroups = false
    var groupMemberAttribute = "member"
    var accountChecks = true
    var serverRetry: Double = 30
    var staleTTL: Double = 0

    /// Accepts the uid and the full address: mail programs log in with either.
    static let defaultUserFilter = "(&(objectClass=inetOrgPerson)(|(uid=%u)(mail=%u)))"
    /// The restriction ANDed to the `login_forms` filter: people, not computers or contacts.
    static let defaultADRestriction = "(&(objectCategory=person)(objectClass=user))"

    static let keys: Set<String> = [
        "uri", "starttls", "ca_file", "bind_dn", "bind_password", "bind_password_file", "base", "user_filter",
        "mail_attributes", "department_attribute", "group_attribute", "required_group", "pool_size", "timeout",
        "cache_ttl", "negative_cache_ttl", "max_failures_per_user", "failure_window", "login_forms", "netbios_domain",
        "user_attribute", "delegate_attribute", "delegate_base", "nested_groups", "group_member_attribute",
        "account_checks", "server_retry", "stale_ttl",
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
            } else if let why = PolicySettingsReader.whyUnreadable(resolved) {
                reader.fail(reader.location("ca_file"), "cannot read CA file '\(resolved)': \(why)")
            }
        }

        let bindDN = reader.string("bind_dn")
        let bindPassword = reader.string("bind_password")
        var bindPasswordFile = reader.string("bind_password_file")
        if let path = bindPasswordFile {
            let resolved = reader.resolvedPath(path, at: reader.location("bind_password_file"))
            bindPasswordFile = resolved
            if let why = PolicySettingsReader.whyUnreadable(resolved) {
                reader.fail(reader.location("bind_password_file"), "cannot read password file '\(resolved)': \(why)")
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
        var loginForms: [LDAPLoginForm] = []
        let formNames = reader.stringList("login_forms")
        for name in formNames ?? [] {
            if let form = LDAPLoginForm(rawValue: name.lowercased()) {
                if !loginForms.contains(form) { loginForms.append(form) }
            } else {
                reader.fail(reader.location("login_forms"), "unknown login form '\(name)'; use sam, upn, downlevel or mail")
            }
        }
        if formNames?.isEmpty == true {
            reader.fail(reader.location("login_forms"), "'login_forms' must name at least one of sam, upn, downlevel, mail")
        }
        let usesForms = settings["login_forms"] != nil
        let userFilter = reader.string("user_filter") ?? (usesForms ? defaultADRestriction : defaultUserFilter)
        if let problem = filterTemplateProblem(userFilter, needsName: !usesForms) {
            reader.fail(reader.location("user_filter"), problem)
        }
        let netbiosDomain = reader.string("netbios_domain")?.trimmingSpaces
        if let netbiosDomain, netbiosDomain.isEmpty || netbiosDomain.contains(where: { "\\/@ ".contains($0) }) {
            reader.fail(reader.location("netbios_domain"), "'netbios_domain' must be a NetBIOS domain name such as EXAMPLE")
        } else if netbiosDomain != nil && !loginForms.contains(.downlevel) {
            reader.fail(reader.location("netbios_domain"), "'netbios_domain' needs 'downlevel' in 'login_forms'")
        }
        let userAttribute = reader.string("user_attribute") ?? (usesForms ? "sAMAccountName" : "uid")
        if !isAttributeName(userAttribute) {
            reader.fail(reader.location("user_attribute"), "'\(userAttribute)' is not an attribute name")
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
        let delegateAttribute = reader.string("delegate_attribute")
        if let delegateAttribute, !isAttributeName(delegateAttribute) {
            reader.fail(reader.location("delegate_attribute"), "'\(delegateAttribute)' is not an attribute name")
        }
        let delegateBase = reader.string("delegate_base")
        if let delegateBase {
            if !delegateBase.contains("=") {
                reader.fail(reader.location("delegate_base"), "'delegate_base' must be a DN such as ou=shared,dc=example,dc=com")
            } else if delegateAttribute == nil {
                reader.fail(reader.location("delegate_base"), "'delegate_base' needs 'delegate_attribute'")
            }
        }
        let nestedGroups = reader.bool("nested_groups", default: false)
        let groupMemberAttribute = reader.string("group_member_attribute") ?? "member"
        if !isAttributeName(groupMemberAttribute) {
            reader.fail(reader.location("group_member_attribute"), "'\(groupMemberAttribute)' is not an attribute name")
        }
        let accountChecks = reader.bool("account_checks", default: true)
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
        let serverRetry = reader.duration("server_retry", default: 30, range: 0...86400)
        let staleTTL = reader.duration("stale_ttl", default: 0, range: 0...7 * 86400)
        if staleTTL > 0 && cacheTTL == 0 {
            reader.fail(reader.location("stale_ttl"), "'stale_ttl' serves expired cache entries and needs 'cache_ttl' above 0")
        }

        guard reader.diagnostics.isEmpty, let uri, let base else { return (nil, reader.diagnostics) }
        var parsed = LDAPStageSettings(
            uri: uri, startTLS: startTLS, caFile: caFile, bindDN: bindDN, bindPassword: bindPassword,
            bindPasswordFile: bindPasswordFile, base: base, userFilter: userFilter, mailAttributes: mailAttributes,
            departmentAttribute: departmentAttribute, groupAttribute: groupAttribute, requiredGroup: requiredGroup,
            poolSize: poolSize, timeout: timeout, cacheTTL: cacheTTL, negativeCacheTTL: negativeCacheTTL,
            maxFailuresPerUser: maxFailures, failureWindow: failureWindow
        )
        parsed.loginForms = loginForms
        parsed.netbiosDomain = netbiosDomain
        parsed.userAttribute = userAttribute
        parsed.delegateAttribute = delegateAttribute
        parsed.delegateBase = delegateBase
        parsed.nestedGroups = nestedGroups
        parsed.groupMemberAttribute = groupMemberAttribute
        parsed.accountChecks = accountChecks
        parsed.serverRetry = serverRetry
        parsed.staleTTL = staleTTL
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
            timeout: timeout, poolSize: poolSize, maxQueuedRequests: max(64, poolSize * 32), serverRetry: serverRetry
        )
    }

    /// The search filter for `login`, or `nil` when `login_forms` accept no form of it.
    func filter(for login: LDAPLoginName) -> String? {
        if loginForms.isEmpty { return login.filter(template: userFilter) }
        return LDAPLoginForm.filter(
            for: login, forms: loginForms, netbiosDomain: netbiosDomain, restriction: login.filter(template: userFilter)
        )
    }

    /// Why `template` is not a usable filter template, or `nil` when it is.
    static func filterTemplateProblem(_ template: String, needsName: Bool = true) -> String? {
        if needsName, !template.contains("%u"), !template.contains("%s") {
            return "'user_filter' must contain %u (or %s) where the user name goes"
        }
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
