import LDAPDirectory
import TollgatePolicy

/// Turns a user's directory entry into session facts: pure, so the department
/// rules are tested without a directory.
enum LDAPUserFacts {
    /// The attributes to ask the directory for.
    static func attributes(settings: LDAPStageSettings, departments: [DepartmentInfo]) -> [String] {
        var names = settings.mailAttributes + [settings.groupAttribute, settings.userAttribute]
        if let attribute = settings.departmentAttribute { names.append(attribute) }
        if settings.accountChecks { names += LDAPAccountState.attributes }
        for department in departments { names += department.ldapAttributes.keys }
        var seen = Set<String>()
        return names.filter { seen.insert($0.lowercased()).inserted }
    }

    /// The facts for `entry`: the canonical user name (`user_attribute`, else the
    /// login name as typed), lower-cased addresses (the primary first, then those
    /// `delegated` by shared mailboxes), groups (direct, then `nestedGroups`),
    /// department, and the DN as tag `ldap.dn` (`ldap.login`: the name as typed).
    static func facts(
        user: String,
        entry: LDAPEntry,
        settings: LDAPStageSettings,
        departments: [DepartmentInfo],
        nestedGroups: [String] = [],
        delegated: [String] = []
    ) -> SessionFacts {
        var senders = addresses(of: entry, attributes: settings.mailAttributes)
        for address in delegated where !senders.contains(address) { senders.append(address) }
        var groups = entry.values(settings.groupAttribute)
        var seen = Set(groups.map(LDAPEscaping.normalizedDN))
        for group in nestedGroups where seen.insert(LDAPEscaping.normalizedDN(group)).inserted { groups.append(group) }
        let canonical = entry.values(settings.userAttribute).map(\.trimmingSpaces).first { !$0.isEmpty } ?? user
        var tags = ["ldap.dn": entry.dn]
        if canonical != user { tags["ldap.login"] = user }
        return SessionFacts(
            user: canonical,
            department: department(entry: entry, groups: groups, settings: settings, departments: departments),
            allowedSenders: senders,
            groups: groups,
            tags: tags
        )
    }

    /// The mail addresses in `attributes` of `entry`, lower-cased, without
    /// duplicates, the primary first. A value with an address-type prefix is an
    /// Exchange `proxyAddresses` value: `SMTP:` is the primary, `smtp:` an alias
    /// (the prefix compared case-insensitively), and other types (`X400:`, `SIP:`,
    /// `X500:` …) are not mail addresses and are ignored.
    static func addresses(of entry: LDAPEntry, attributes: [String]) -> [String] {
        var primary: [String] = []
        var others: [String] = []
        for attribute in attributes {
            for value in entry.values(attribute) {
                var text = value.trimmingSpaces
                var isPrimary = false
                if let colon = text.firstIndex(of: ":"), !text[..<colon].contains("@") {
                    let type = text[..<colon]
                    guard type.lowercased() == "smtp" else { continue }
                    isPrimary = type == "SMTP"
                    text = String(text[text.index(after: colon)...]).trimmingSpaces
                }
                let address = text.lowercased()
                guard !address.isEmpty, address.contains("@") || !value.contains(":") else { continue }
                if isPrimary { primary.append(address) } else { others.append(address) }
            }
        }
        var result: [String] = []
        for address in primary + others where !result.contains(address) { result.append(address) }
        return result
    }

    /// The department: the `department_attribute` value if the entry has one (the
    /// known department's spelling when it names one), otherwise the first
    /// department in `departments` whose `ldap_groups` or `ldap_attributes` match.
    static func department(
        entry: LDAPEntry,
        groups: [String],
        settings: LDAPStageSettings,
        departments: [DepartmentInfo]
    ) -> String? {
        if let attribute = settings.departmentAttribute,
            let value = entry.values(attribute).map(\.trimmingSpaces).first(where: { !$0.isEmpty })
        {
            return departments.first { $0.name.lowercased() == value.lowercased() }?.name ?? value
        }
        let memberOf = Set(groups.map(LDAPEscaping.normalizedDN))
        for department in departments {
            if department.ldapGroups.contains(where: { memberOf.contains(LDAPEscaping.normalizedDN($0)) }) {
                return department.name
            }
            for (attribute, wanted) in department.ldapAttributes {
                let have = Set(entry.values(attribute).map { $0.trimmingSpaces.lowercased() })
                if wanted.contains(where: { have.contains($0.trimmingSpaces.lowercased()) }) {
                    return department.name
                }
            }
        }
        return nil
    }

    /// Whether `groups` contains `group` (DNs compared after normalisation).
    static func isMember(of group: String, groups: [String]) -> Bool {
        let wanted = LDAPEscaping.normalizedDN(group)
        return groups.contains { LDAPEscaping.normalizedDN($0) == wanted }
    }
}
