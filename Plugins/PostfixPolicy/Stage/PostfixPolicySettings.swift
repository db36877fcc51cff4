import TollgatePolicy

/// Where the policy server listens: `host:port` (TCP) or `unix:/path`.
public enum PolicyServerAddress: Sendable, Hashable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unix(path: String)

    /// Parses `host:port`, `[v6]:port` or `unix:/path`; `nil` when malformed.
    public static func parse(_ text: String) -> PolicyServerAddress? {
        let t = text.trimmingSpaces
        if t.hasPrefix("unix:") {
            let path = String(t.dropFirst(5))
            return path.hasPrefix("/") && path.utf8.count < 108 ? .unix(path: path) : nil
        }
        var host: Substring
        var portText: Substring
        if t.hasPrefix("[") {
            guard let close = t.firstIndex(of: "]"), t[t.index(after: close)...].hasPrefix(":") else { return nil }
            host = t[t.index(after: t.startIndex)..<close]
            portText = t[t.index(close, offsetBy: 2)...]
        } else {
            guard let colon = t.lastIndex(of: ":"), !t[..<colon].contains(":") else { return nil }
            host = t[..<colon]
            portText = t[t.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText), (1...65535).contains(port) else { return nil }
        return .tcp(host: String(host), port: port)
    }

    public var description: String {
        switch self {
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): return "unix:\(path)"
        }
    }
}

/// The stage's settings (SPEC §7).
public struct PostfixPolicySettings: Sendable, Hashable {
    public var server: PolicyServerAddress
    /// The phases a request is sent at (`data` is sent as `END-OF-MESSAGE`).
    public var phases: Set<PolicyPhase>
    /// Per request: connecting, writing and reading the answer.
    public var timeout: Double
    /// How long an identical request's answer is reused; 0 (the default) is no cache.
    public var cacheTTL: Double
    /// Connections kept open to the server (one request at a time on each).
    public var connections: Int
    /// Sent as `policy_context` (Postfix's `smtpd_policy_service_policy_context`).
    public var policyContext: String

    public static let allowedKeys: Set<String> = ["server", "phases", "timeout", "cache", "connections", "policy_context"]
    public static let allowedPhases: [PolicyPhase] = [.connect, .helo, .mail, .rcpt, .data]

    public static func parse(_ settings: PolicySettings) -> (PostfixPolicySettings?, [PolicyDiagnostic]) {
        var reader = PolicySettingsReader(settings)
        var server: PolicyServerAddress?
        if let text = reader.requiredString("server") {
            server = PolicyServerAddress.parse(text)
            if server == nil {
                reader.fail(reader.location("server"), "'server' must be host:port or unix:/absolute/path, not '\(text)'")
            }
        }
        var phases: Set<PolicyPhase> = [.rcpt]
        if let listed = reader.locatedStrings("phases") {
            phases = []
            for item in listed {
                if let phase = PolicyPhase(rawValue: item.text.trimmingSpaces.lowercased()), allowedPhases.contains(phase) {
                    phases.insert(phase)
                } else {
                    reader.fail(item.location, "unknown phase '\(item.text)' for postfix-policy (expected any of: connect, helo, mail, rcpt, data)")
                }
            }
            if listed.isEmpty { reader.fail(reader.location("phases"), "'phases' must list at least one phase") }
        }
        let timeout = reader.duration("timeout", default: 10, range: 0.01...600)
        var cacheTTL = 0.0
        if let node = settings["cache"], let text = node.string, ["off", "false", "no"].contains(text.trimmingSpaces.lowercased()) {
            cacheTTL = 0
        } else {
            cacheTTL = reader.duration("cache", default: 0, range: 0...86400)
        }
        let connections = reader.int("connections", default: 4, range: 1...64)
        let policyContext = reader.string("policy_context") ?? ""
        let diagnostics = reader.diagnostics + settings.unknownKeys(allowed: allowedKeys)
        guard diagnostics.isEmpty, let server else { return (nil, diagnostics) }
        return (PostfixPolicySettings(server: server, phases: phases, timeout: timeout, cacheTTL: cacheTTL, connections: connections, policyContext: policyContext), diagnostics)
    }
}

/// Makes ``PostfixPolicyStage``s: the object the plugin's `tollgate_plugin_create`
/// entry point hands to the relay.
public final class PostfixPolicyFactory: PolicyStageFactory {
    public let name = "postfix-policy"

    public init() {}

    public func validate(settings: PolicySettings, host: any PolicyHost) -> [PolicyDiagnostic] {
        PostfixPolicySettings.parse(settings).1
    }

    public func makeStage(settings: PolicySettings, host: any PolicyHost) async throws -> any PolicyStage {
        let (parsed, diagnostics) = PostfixPolicySettings.parse(settings)
        if let first = diagnostics.first { throw first }
        guard let parsed else { throw PolicyDiagnostic(settings.location, "invalid postfix-policy settings") }
        return PostfixPolicyStage(settings: parsed, host: host)
    }
}
