import TollgatePolicy

/// What a limit counts per: the session's user, the envelope sender, the client's IP
/// address, or the session's department.
public enum RateLimitKey: String, Sendable, Hashable, CaseIterable {
    /// ``SessionFacts/user``, else ``PolicyContext/authenticatedUser`` (lower-cased). Not
    /// applied to unauthenticated sessions.
    case user
    /// The envelope sender (lower-cased). Not applied to the null sender `<>`.
    case sender
    /// The client's IP address.
    case client
    /// ``SessionFacts/department``. Not applied to sessions without a department.
    case department

    /// The value this key has in `context`, or `nil` when the limit does not apply.
    func value(in context: PolicyContext) -> String? {
        let raw: String?
        switch self {
        case .user: raw = context.facts.user ?? context.authenticatedUser
        case .sender: raw = context.sender
        case .client: raw = context.clientAddress
        case .department: raw = context.facts.department
        }
        guard let text = raw?.trimmingSpaces.lowercased(), !text.isEmpty else { return nil }
        return text
    }
}

/// What a limit measures: accepted messages, their recipients, or their size in octets.
public enum RateLimitMeasure: String, Sendable, Hashable, CaseIterable {
    case messages, recipients, bytes
}

/// One limit: at most `limit` of `measure` per `window` seconds for each value of `key`.
/// A rule written with several measures (`{key: user, messages: 100, bytes: 1GB, per: 1h}`)
/// becomes one limit per measure.
public struct RateLimit: Sendable, Hashable, CustomStringConvertible {
    public var key: RateLimitKey
    public var measure: RateLimitMeasure
    public var limit: Int
    /// The window in seconds.
    public var window: Double
    /// Where it was written: the stage settings, or `department NAME`.
    public var origin: String

    public init(key: RateLimitKey, measure: RateLimitMeasure, limit: Int, window: Double, origin: String = "settings") {
        self.key = key
        self.measure = measure
        self.limit = limit
        self.window = window
        self.origin = origin
    }

    /// `200 messages per 1h`
    public var description: String {
        let amount = measure == .bytes ? RateLimitFormat.size(limit) : "\(limit) \(measure.rawValue)"
        return "\(amount) per \(RateLimitFormat.duration(window))"
    }
}

/// Parses rule lists: `[{key: user, messages: 200, per: 1h}, …]`.
enum RateLimitRules {
    static let ruleKeys: Set<String> = ["key", "messages", "recipients", "bytes", "per"]
    /// Longest window: counters of longer windows would be lost to restarts anyway.
    static let maxWindow: Double = 31 * 86400

    /// `prefix` starts every message (e.g. `department 'finance': `).
    static func parse(_ list: PolicySettings, key listKey: String, origin: String, prefix: String) -> ([RateLimit], [PolicyDiagnostic]) {
        var diagnostics: [PolicyDiagnostic] = []
        var limits: [RateLimit] = []
        if list.isNull { return ([], []) }
        guard let items = list.list else {
            return ([], [PolicyDiagnostic(list.location, "\(prefix)'\(listKey)' must be a list of rules such as {key: user, messages: 200, per: 1h}")])
        }
        for item in items {
            guard case .map = item.value else {
                diagnostics.append(PolicyDiagnostic(item.location, "\(prefix)a rate limit must be a map such as {key: user, messages: 200, per: 1h}"))
                continue
            }
            for unknown in item.unknownKeys(allowed: ruleKeys) {
                diagnostics.append(PolicyDiagnostic(unknown.location, prefix + unknown.message))
            }
            var key: RateLimitKey?
            if let node = item["key"], let text = node.string {
                key = RateLimitKey(rawValue: text.trimmingSpaces.lowercased())
                if key == nil {
                    diagnostics.append(PolicyDiagnostic(node.location, "\(prefix)'key' must be one of user, sender, client, department, not '\(text)'"))
                }
            } else {
                diagnostics.append(PolicyDiagnostic(item["key"]?.location ?? item.location, "\(prefix)a rate limit needs 'key' (user, sender, client or department)"))
            }
            var window: Double?
            if let node = item["per"], let text = node.string {
                if let seconds = RateLimitFormat.parseDuration(text), seconds > 0, seconds <= maxWindow {
                    window = seconds
                } else {
                    diagnostics.append(PolicyDiagnostic(node.location, "\(prefix)'per' must be a duration from 1s to 31d such as 30m, 1h or 1d, not '\(text)'"))
                }
            } else {
                diagnostics.append(PolicyDiagnostic(item["per"]?.location ?? item.location, "\(prefix)a rate limit needs 'per' (a duration such as 1h)"))
            }
            var amounts: [(RateLimitMeasure, Int)] = []
            for measure in RateLimitMeasure.allCases {
                guard let node = item[measure.rawValue] else { continue }
                let parsed = node.string.flatMap { measure == .bytes ? RateLimitFormat.parseSize($0) : Int($0.trimmingSpaces) }
                guard let amount = parsed, amount >= 1 else {
                    let expected = measure == .bytes ? "a size such as 500MB (at least 1 byte)" : "a whole number of at least 1"
                    diagnostics.append(PolicyDiagnostic(node.location, "\(prefix)'\(measure.rawValue)' must be \(expected)"))
                    continue
                }
                amounts.append((measure, amount))
            }
            if amounts.isEmpty && !RateLimitMeasure.allCases.contains(where: { item[$0.rawValue] != nil }) {
                diagnostics.append(PolicyDiagnostic(item.location, "\(prefix)a rate limit needs at least one of 'messages', 'recipients', 'bytes'"))
            }
            guard let key, let window else { continue }
            for (measure, amount) in amounts {
                limits.append(RateLimit(key: key, measure: measure, limit: amount, window: window, origin: origin))
            }
        }
        return (limits, diagnostics)
    }
}

/// Durations (`s`, `m`, `h`, `d`) and sizes (`KB`, `MB`, `GB` in powers of 1024, or plain bytes), as in SPEC §3.
enum RateLimitFormat {
    static func parseDuration(_ text: String) -> Double? { PolicyUnits.duration(text) }

    static func parseSize(_ text: String) -> Int? { PolicyUnits.size(text) }

    static func duration(_ seconds: Double) -> String { PolicyUnits.formatDuration(seconds) }

    static func size(_ bytes: Int) -> String {
        for (unit, size) in [("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)] where bytes >= size && bytes % size == 0 {
            return "\(bytes / size)\(unit)"
        }
        return "\(bytes) bytes"
    }
}


