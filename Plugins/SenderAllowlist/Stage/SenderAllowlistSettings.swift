import TollgatePolicy

/// The `sender-allowlist` stage's own settings (under `settings:` of its stage), validated.
///
/// ```yaml
/// - use: sender-allowlist
///   settings:
///     senders: ["postmaster@example.com"]       # patterns every authenticated user may use, besides their own addresses
///     networks: [10.0.0.0/8, "2001:db8:10::/48"] # where unauthenticated clients may relay from
///     unauthenticated_senders: ["*@devices.example.com"]   # and with which envelope senders
///     require_auth_outside_networks: true       # 530 5.7.0 instead of 553 5.7.1 for unauthenticated clients elsewhere
///     allow_null_sender: false                  # MAIL FROM:<> (bounces); departments may allow it for themselves
///     check_header_from: true                   # the From: header's addresses must pass the same rule
/// ```
///
/// Every key is optional; without settings only users' own addresses (and their
/// departments' patterns) are allowed and unauthenticated clients may not relay.
public struct SenderAllowlistSettings: Sendable, Hashable {
    public var senders: [SenderPattern] = []
    public var networks: [CIDRNetwork] = []
    public var unauthenticatedSenders: [SenderPattern] = []
    public var requireAuthOutsideNetworks = false
    public var allowNullSender = false
    public var checkHeaderFrom = false

    public init() {}

    static let keys: Set<String> = [
        "senders", "networks", "unauthenticated_senders", "require_auth_outside_networks", "allow_null_sender",
        "check_header_from",
    ]

    /// Parses `settings` (a map; null counts as empty). The settings are `nil`
    /// whenever there is a diagnostic.
    public static func parse(_ settings: PolicySettings) -> (SenderAllowlistSettings?, [PolicyDiagnostic]) {
        if settings.isNull { return (SenderAllowlistSettings(), []) }
        guard case .map = settings.value else {
            return (nil, [PolicyDiagnostic(settings.location, "the sender-allowlist stage's settings must be a map")])
        }
        var reader = SettingsReader(settings)
        for diagnostic in settings.unknownKeys(allowed: keys) { reader.fail(diagnostic.location, diagnostic.message) }
        var parsed = SenderAllowlistSettings()
        parsed.senders = patterns("senders", &reader)
        parsed.networks = networks("networks", &reader)
        parsed.unauthenticatedSenders = patterns("unauthenticated_senders", &reader)
        parsed.requireAuthOutsideNetworks = reader.bool("require_auth_outside_networks") ?? false
        parsed.allowNullSender = reader.bool("allow_null_sender") ?? false
        parsed.checkHeaderFrom = reader.bool("check_header_from") ?? false
        if !parsed.unauthenticatedSenders.isEmpty && parsed.networks.isEmpty, let node = settings["unauthenticated_senders"] {
            reader.fail(node.location, "'unauthenticated_senders' has no effect without 'networks'")
        }
        return (reader.diagnostics.isEmpty ? parsed : nil, reader.diagnostics)
    }

    static func patterns(_ key: String, _ reader: inout SettingsReader) -> [SenderPattern] {
        var result: [SenderPattern] = []
        for item in reader.locatedStrings(key) ?? [] {
            switch SenderPattern.parse(item.text) {
            case .success(let pattern): result.append(pattern)
            case .failure(let error): reader.fail(item.location, "'\(key)': \(error.message)")
            }
        }
        return result
    }

    static func networks(_ key: String, _ reader: inout SettingsReader) -> [CIDRNetwork] {
        var result: [CIDRNetwork] = []
        for item in reader.locatedStrings(key) ?? [] {
            switch CIDRNetwork.parse(item.text) {
            case .success(let network): result.append(network)
            case .failure(let error): reader.fail(item.location, "'\(key)': \(error.message)")
            }
        }
        return result
    }
}

/// A department's `sender-allowlist:` section in its policy file, validated.
///
/// ```yaml
/// department: finance
/// sender-allowlist:
///   senders: ["*@finance.example.com", "payroll@example.com"]   # members may also send as these
///   allow_null_sender: true                   # members (and the department's unauthenticated networks) may send <>
///   networks: [10.20.30.0/24]                 # unauthenticated relay for sessions of this department from here …
///   unauthenticated_senders: ["scanner@finance.example.com"]   # … with these senders
/// ```
///
/// Department patterns add to the stage's; `allow_null_sender` is allowed when
/// either the stage or the department allows it.
public struct DepartmentSenderPolicy: Sendable, Hashable {
    public var senders: [SenderPattern] = []
    public var networks: [CIDRNetwork] = []
    public var unauthenticatedSenders: [SenderPattern] = []
    public var allowNullSender: Bool?

    public init() {}

    static let keys: Set<String> = ["senders", "networks", "unauthenticated_senders", "allow_null_sender"]

    /// Parses a department's section; `department` names it in messages. What could
    /// be read is returned even when there are diagnostics (invalid entries left out).
    public static func parse(_ section: PolicySettings, department: String) -> (DepartmentSenderPolicy, [PolicyDiagnostic]) {
        if section.isNull { return (DepartmentSenderPolicy(), []) }
        // A bare list is shorthand for `senders:`.
        if case .list = section.value {
            var reader = SettingsReader(PolicySettings(.map([("senders", section.location, section)]), at: section.location))
            var policy = DepartmentSenderPolicy()
            policy.senders = SenderAllowlistSettings.patterns("senders", &reader)
            return (policy, reader.diagnostics)
        }
        guard case .map = section.value else {
            return (
                DepartmentSenderPolicy(),
                [PolicyDiagnostic(section.location, "department '\(department)': the sender-allowlist section must be a map")]
            )
        }
        var reader = SettingsReader(section)
        for diagnostic in section.unknownKeys(allowed: keys) {
            reader.fail(diagnostic.location, "department '\(department)': \(diagnostic.message)")
        }
        var policy = DepartmentSenderPolicy()
        policy.senders = SenderAllowlistSettings.patterns("senders", &reader)
        policy.networks = SenderAllowlistSettings.networks("networks", &reader)
        policy.unauthenticatedSenders = SenderAllowlistSettings.patterns("unauthenticated_senders", &reader)
        policy.allowNullSender = reader.bool("allow_null_sender")
        return (policy, reader.diagnostics)
    }
}
