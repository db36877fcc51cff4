import TollgatePolicy

/// Makes ``LDAPAuthStage``s: the object the plugin's `tollgate_plugin_create`
/// entry point hands to the relay.
public final class LDAPStageFactory: PolicyStageFactory {
    public let name = "ldap"

    public init() {}

    public func validate(settings: PolicySettings, host: any PolicyHost) -> [PolicyDiagnostic] {
        var diagnostics = LDAPStageSettings.parse(settings).1
        for department in host.departments() {
            if let section = host.departmentSettings(department.name) {
                diagnostics.append(
                    PolicyDiagnostic(
                        section.location,
                        "the ldap stage has no per-department settings (department '\(department.name)'); "
                            + "departments are assigned through 'members: ldap_groups / ldap_attributes'"
                    )
                )
            }
        }
        return diagnostics
    }

    public func makeStage(settings: PolicySettings, host: any PolicyHost) async throws -> any PolicyStage {
        let (parsed, diagnostics) = LDAPStageSettings.parse(settings)
        guard let parsed else {
            throw diagnostics.first ?? PolicyDiagnostic(settings.location, "invalid ldap settings")
        }
        let password = try parsed.readBindPassword()
        return LDAPAuthStage(settings: parsed, bindPassword: password, host: host)
    }
}
