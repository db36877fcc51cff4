import LDAPDirectory
import TollgatePolicy

/// Turns a user's directory entry into session facts: pure, so the department
/// rules are tested without a directory.
enum LDAPUserFacts {
    /// The attributes to ask the directory for.
    static func attributes(settings: LDAPStageSettings, departments: [DepartmentInfo]) -> [String] {
        var names = settings.mailAttributes + [settings.groupAttribute]
        if let attribute = settings.departmentAttribute { names.append(attribute) }
        for department in departments { names += department.ldapAttributes.keys }
        var seen = Set<String>()
        return names.filter { seen.insert($0.lowercased()).inserted }
    }

    /// The facts for `entry`: user, lower-cased addresses, groups, department, and
    /// the DN as tag `ldap.dn`.
    static func facts(
        user: String,
        entry: LDAPEntry,
        settings: LDAPStageSettings,
        departments: [DepartmentInfo]
    ) -> SessionFacts {
        var senders: [String] = []
        for attribute in settings.mailAttributes {
            for value in entry.values(attribute) {
                let address = value.trimmingSpaces.lowercased()
                if !address.isEmpty, !senders.contains(address) { senders.append(address) }
            }
        }
        let groups = entry.values(settings.groupAttribute)
        return SessionFacts(
            user: user,
            department: department(entry: entry, groups: groups, settings: settings, departments: departments),
            allowedSenders: senders,
            groups: groups,
            tags: ["ldap.dn": entry.dn]
        )
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
