import PolicyTestSupport
import Testing
import TollgateConfiguration
import TollgatePipeline

/// docs/configuration.md names every key the loader accepts (its own tables,
/// `ConfigurationKeys`) and every key of a department policy file.
@Suite struct ConfigurationReferenceTests {
    @Test func everyKeyOfTheLoaderIsDocumented() {
        #expect(!ConfigurationReference.text.isEmpty, "docs/configuration.md is missing")
        let keys = ConfigurationKeys.dotted
        #expect(keys.count > 70, "\(keys.count) keys")
        #expect(keys.contains("spool.postgres.url") && keys.contains("listeners[].auth") && keys.contains("upstreams[].auth.username") && keys.contains("stages[].mode"))
        #expect(ConfigurationReference.undocumented(keys) == [])
    }

    @Test func everyKeyOfADepartmentPolicyFileIsDocumented() {
        let prefix = "department-policy."
        #expect(ConfigurationReference.undocumented(DepartmentPolicies.fileKeys, prefix: prefix) == [])
        #expect(ConfigurationReference.undocumented(DepartmentPolicies.memberKeys, prefix: prefix + "members.") == [])
        #expect(ConfigurationReference.undocumented(DepartmentPolicies.routeKeys, prefix: prefix + "route.") == [])
    }

    /// The tables are what the loader reads with: a key outside them is refused, located.
    @Test func aKeyOutsideTheTablesIsRefusedWithItsLocation() {
        let text = "listeners:\n  - name: a\n    address: 127.0.0.1:2525\n    colour: red\nupstreams:\n  - name: o\n    directory: /tmp\n"
        let (_, diagnostics) = ConfigurationLoader.parseCollecting(text, file: "t.yaml")
        #expect(diagnostics.count == 1, "\(diagnostics)")
        #expect(diagnostics.first?.description.hasPrefix("t.yaml:4:5: unknown key 'colour' in a listener") == true, "\(diagnostics)")
    }
}
