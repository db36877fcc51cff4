import Foundation
import TollgatePolicy

/// The `milter` stage's settings (SPEC §7):
///
/// ```yaml
/// - use: milter
///   on_error: defer              # Postfix's milter_default_action (tempfail)
///   settings:
///     server: inet:127.0.0.1:8891   # or unix:/run/opendkim/opendkim.sock
///     timeout: 10s                  # per milter command (a progress reply restarts it)
///     connect_timeout: 5s
/// ```
public struct MilterSettings: Sendable {
    public var server: MilterAddress
    public var timeout: Double
    public var connectTimeout: Double
    /// The `j` macro: this host's name.
    public var hostname: String

    public init(server: MilterAddress, timeout: Double = 10, connectTimeout: Double = 5, hostname: String = ProcessInfo.processInfo.hostName) {
        self.server = server
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.hostname = hostname
    }

    static let keys: Set<String> = ["server", "timeout", "connect_timeout", "hostname"]

    /// Reads the settings; every problem is located (`file:line:col:`).
    public static func parse(_ settings: PolicySettings) -> (MilterSettings?, [PolicyDiagnostic]) {
        var reader = PolicySettingsReader(settings)
        var diagnostics = settings.unknownKeys(allowed: keys)
        var server: MilterAddress?
        if let text = reader.requiredString("server") {
            server = MilterAddress.parse(text)
            if server == nil {
                reader.fail(reader.location("server"), "server is inet:HOST:PORT (or inet:PORT@HOST) or unix:/PATH, not '\(text)'")
            }
        }
        let timeout = reader.duration("timeout", default: 10, range: 0.01...3600)
        let connectTimeout = reader.duration("connect_timeout", default: 5, range: 0.01...600)
        let hostname = reader.string("hostname") ?? ProcessInfo.processInfo.hostName
        diagnostics += reader.diagnostics
        guard diagnostics.isEmpty, let server else { return (nil, diagnostics) }
        return (MilterSettings(server: server, timeout: timeout, connectTimeout: connectTimeout, hostname: hostname), [])
    }
}
