import LDAPDirectory

/// Nested group membership for `nested_groups: true`: the groups a user is in
/// through other groups (`finance-payroll ⊂ finance` makes a payroll member a
/// finance member).
///
/// Active Directory answers in one search with the in-chain matching rule
/// (LDAP_MATCHING_RULE_IN_CHAIN, `1.2.840.113556.1.4.1941`, [MS-ADTS]
/// §3.1.1.3.4.4.3): `(member:1.2.840.113556.1.4.1941:=<user DN>)`. A directory
/// without the rule (OpenLDAP) matches nothing or refuses the filter; then, and
/// for every later login, the groups are walked upwards instead, one
/// `(member=<group DN>)` search per group, at most ``maxDepth`` levels and
/// ``maxGroups`` groups (a cycle or a huge tree cannot make a login unbounded).
final class LDAPGroupResolver: Sendable {
    static let inChainRule = "1.2.840.113556.1.4.1941"
    static let maxDepth = 8
    static let maxGroups = 256

    private let directory: LDAPClient
    private let base: String
    private let memberAttribute: String
    /// `nil` until known; `false` once the directory has shown it lacks the rule.
    private let inChainWorks = LDAPLocked<Bool?>(nil)

    init(directory: LDAPClient, base: String, memberAttribute: String) {
        self.directory = directory
        self.base = base
        self.memberAttribute = memberAttribute
    }

    /// Every group `dn` is a member of, directly (`direct`, from the entry) or
    /// through nesting, as DNs; `direct` first.
    func groups(of dn: String, direct: [String]) async -> Result<[String], LDAPError> {
        if inChainWorks.withLock({ $0 }) != false {
            let filter = "(\(memberAttribute):\(Self.inChainRule):=\(LDAPEscaping.filterValue(dn)))"
            switch await directory.search(base: base, filter: filter, attributes: [], sizeLimit: Int32(Self.maxGroups)) {
            case .success(let entries) where !entries.isEmpty || direct.isEmpty:
                if !entries.isEmpty { inChainWorks.withLock { $0 = true } }
                return .success(merged(direct, entries.map(\.dn)))
            case .success:
                inChainWorks.withLock { $0 = false }  // direct groups but no chain: the rule is unknown
            case .failure(let error) where error.isServerFailure || error.isTimeout:
                return .failure(error)
            case .failure:
                inChainWorks.withLock { $0 = false }  // e.g. inappropriateMatching (18)
            }
        }
        return await walk(from: direct)
    }

    /// Breadth-first upwards from `direct`, bounded.
    private func walk(from direct: [String]) async -> Result<[String], LDAPError> {
        var all = direct
        var seen = Set(direct.map(LDAPEscaping.normalizedDN))
        var frontier = direct
        var depth = 0
        while !frontier.isEmpty, depth < Self.maxDepth, all.count < Self.maxGroups {
            depth += 1
            var next: [String] = []
            for group in frontier {
                let filter = "(\(memberAttribute)=\(LDAPEscaping.filterValue(group)))"
                switch await directory.search(base: base, filter: filter, attributes: [], sizeLimit: Int32(Self.maxGroups)) {
                case .success(let parents):
                    for parent in parents.map(\.dn) where seen.insert(LDAPEscaping.normalizedDN(parent)).inserted {
                        guard all.count < Self.maxGroups else { break }
                        all.append(parent)
                        next.append(parent)
                    }
                case .failure(let error):
                    return .failure(error)
                }
            }
            frontier = next
        }
        return .success(all)
    }

    private func merged(_ first: [String], _ second: [String]) -> [String] {
        var all = first
        var seen = Set(first.map(LDAPEscaping.normalizedDN))
        for dn in second where seen.insert(LDAPEscaping.normalizedDN(dn)).inserted { all.append(dn) }
        return all
    }
}
