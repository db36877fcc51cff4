/// Facts that stages attach to a session: who the user is, their department, the
/// addresses they may send as, and free-form tags. Later stages, routing, logs,
/// metrics and the queue see them.
public struct SessionFacts: Sendable, Hashable {
    /// The authenticated user's canonical name, as the authenticating stage found it.
    public var user: String?
    /// The department the session belongs to (a policy file's `department:`).
    public var department: String?
    /// Envelope sender addresses the user may use (lower-cased), e.g. from LDAP `mail`.
    public var allowedSenders: [String]
    /// Groups the user is a member of (DNs or names), as the authenticating stage found them.
    public var groups: [String]
    /// Any other facts, by name. Later values replace earlier ones.
    public var tags: [String: String]

    public init(
        user: String? = nil,
        department: String? = nil,
        allowedSenders: [String] = [],
        groups: [String] = [],
        tags: [String: String] = [:]
    ) {
        self.user = user
        self.department = department
        self.allowedSenders = allowedSenders
        self.groups = groups
        self.tags = tags
    }

    /// Merges `other` into `self`: set scalars replace, lists are appended without duplicates.
    public mutating func merge(_ other: SessionFacts) {
        if let u = other.user { user = u }
        if let d = other.department { department = d }
        for s in other.allowedSenders where !allowedSenders.contains(s) { allowedSenders.append(s) }
        for g in other.groups where !groups.contains(g) { groups.append(g) }
        for (k, v) in other.tags { tags[k] = v }
    }

    public var isEmpty: Bool {
        user == nil && department == nil && allowedSenders.isEmpty && groups.isEmpty && tags.isEmpty
    }
}
