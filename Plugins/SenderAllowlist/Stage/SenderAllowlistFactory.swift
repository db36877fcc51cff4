import TollgatePolicy

/// Makes ``SenderAllowlistStage``s: the object the plugin's `tollgate_plugin_create`
/// entry point hands to the relay.
public final class SenderAllowlistFactory: PolicyStageFactory {
    public let name = "sender-allowlist"

    public init() {}

    /// The stage's settings and every department's `sender-allowlist:` section.
    public func validate(settings: PolicySettings, host: any PolicyHost) -> [PolicyDiagnostic] {
        var diagnostics = SenderAllowlistSettings.parse(settings).1
        for department in host.departments() {
            guard let section = host.departmentSettings(department.name) else { continue }
            diagnostics += DepartmentSenderPolicy.parse(section, department: department.name).1
        }
        return diagnostics
    }

    public func makeStage(settings: PolicySettings, host: any PolicyHost) async throws -> any PolicyStage {
        let (parsed, _) = SenderAllowlistSettings.parse(settings)
        if let first = validate(settings: settings, host: host).first { throw first }
        guard let parsed else { throw PolicyDiagnostic(settings.location, "invalid sender-allowlist settings") }
        return SenderAllowlistStage(settings: parsed, host: host)
    }
}
