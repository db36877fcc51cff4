import PolicyTestSupport
import Testing

@testable import LDAPStage

/// docs/configuration.md names every key of the ldap stage's settings.
@Test func everyLDAPSettingIsDocumented() {
    #expect(ConfigurationReference.undocumented(LDAPStageSettings.keys, prefix: "ldap.") == [])
}
