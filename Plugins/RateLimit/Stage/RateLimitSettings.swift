import TollgatePolicy

/// The `rate-limit` stage's own settings (under `settings:` of its stage), validated.
///
/// ```yaml
/// - use: rate-limit
///   settings:
///     limits:
///       - { key: user, messages: 200, per: 1h }
///       - { key: client, messages: 1000, recipients: 5000, per: 1h }
///       - { key: sender, bytes: 2GB, per: 1d }
///     max_keys: 100000          # counters kept at most (default 100000); idle ones expire first
/// ```
///
/// Rules: `key` is `user`, `sender`, `client` or `department`; at least one of
/// `messages`, `recipients` (whole numbers ≥ 1), `bytes` (size, `KB`/`MB`/`GB` = powers of
/// 1024); `per` is a duration (`s`, `m`, `h`, `d`; 1s…31d).
public struct RateLimitSettings: Sendable, Hashable {
    public var limits: [RateLimit] = []
    public var maxKeys = 100_000

    public init(limits: [RateLimit] = [], maxKeys: Int = 100_000) {
        self.limits = limits
        self.maxKeys = maxKeys
    }

    static let keys: Set<String> = ["limits", "max_keys"]

    /// Parses `settings` (a map; null counts as empty). `nil` whenever there is a diagnostic.
    public static func parse(_ settings: PolicySettings) -> (RateLimitSettings?, [PolicyDiagnostic]) {
        if settings.isNull { return (RateLimitSettings(), []) }
        guard case .map = settings.value else {
            return (nil, [PolicyDiagnostic(settings.location, "the rate-limit stage's settings must be a map with 'limits'")])
        }
        var diagnostics = settings.unknownKeys(allowed: keys)
        var parsed = RateLimitSettings()
        if let node = settings["limits"] {
            let (limits, problems) = RateLimitRules.parse(node, key: "limits", origin: "settings", prefix: "")
            parsed.limits = limits
            diagnostics += problems
        }
        if let node = settings["max_keys"] {
            if let text = node.string, let value = Int(text.trimmingSpaces), (100...100_000_000).contains(value) {
                parsed.maxKeys = value
            } else {
                diagnostics.append(PolicyDiagnostic(node.location, "'max_keys' must be a whole number from 100 to 100000000"))
            }
        }
        return (diagnostics.isEmpty ? parsed : nil, diagnostics)
    }
}

/// A department's `rate-limit:` section in its policy file: a list of rules, or a map
/// with `limits:` (the same rules as the stage's).
///
/// ```yaml
/// department: finance
/// rate-limit:
///   - { key: user, messages: 200, per: 1h }
///   - { key: department, recipients: 5000, per: 1d }
/// ```
///
/// For sessions of the department, a department rule **replaces** the stage's rules of
/// the same key and measure (so a department may have a higher or a lower limit than
/// the default); the stage's other rules still apply.
public enum DepartmentRateLimits {
    /// What could be read is returned even when there are diagnostics (invalid rules left out).
    public static func parse(_ section: PolicySettings, department: String) -> ([RateLimit], [PolicyDiagnostic]) {
        let prefix = "department '\(department)': "
        let origin = "department \(department)"
        switch section.value {
        case .null:
            return ([], [])
        case .list:
            return RateLimitRules.parse(section, key: "rate-limit", origin: origin, prefix: prefix)
        case .map:
            var diagnostics = section.unknownKeys(allowed: ["limits"]).map { PolicyDiagnostic($0.location, prefix + $0.message) }
            guard let node = section["limits"] else { return ([], diagnostics) }
            let (limits, problems) = RateLimitRules.parse(node, key: "limits", origin: origin, prefix: prefix)
            diagnostics += problems
            return (limits, diagnostics)
        case .scalar:
            return ([], [PolicyDiagnostic(section.location, "\(prefix)the rate-limit section must be a list of rules such as {key: user, messages: 200, per: 1h}")])
        }
    }
}
