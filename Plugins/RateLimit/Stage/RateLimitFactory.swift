import TollgatePolicy

/// Makes ``RateLimitStage``s: the object the plugin's `tollgate_plugin_create` entry
/// point hands to the relay.
public final class RateLimitFactory: PolicyStageFactory {
    public let name = "rate-limit"

    public init() {}

    /// The stage's settings and every department's `rate-limit:` section.
    public func validate(settings: PolicySettings, host: any PolicyHost) -> [PolicyDiagnostic] {
        var diagnostics = RateLimitSettings.parse(settings).1
        for department in host.departments() {
            guard let section = host.departmentSettings(department.name) else { continue }
            diagnostics += DepartmentRateLimits.parse(section, department: department.name).1
        }
        return diagnostics
    }

    public func makeStage(settings: PolicySettings, host: any PolicyHost) async throws -> any PolicyStage {
        if let first = validate(settings: settings, host: host).first { throw first }
        guard let parsed = RateLimitSettings.parse(settings).0 else {
            throw PolicyDiagnostic(settings.location, "invalid rate-limit settings")
        }
        if parsed.maxKeys != RateLimitSettings().maxKeys {
            host.log(.notice, "rate-limit max_keys is no longer used: the relay keeps the counters (at most 100,000 in memory; in the database with PostgreSQL)", metadata: [:])
        }
        return RateLimitStage(settings: parsed, host: host)
    }
}
