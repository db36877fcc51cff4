import PolicyTestSupport
import Testing

@testable import SenderAllowlistStage

/// docs/configuration.md names every key of the sender-allowlist stage's settings and
/// of its department section.
@Test func everySenderAllowlistSettingIsDocumented() {
    #expect(ConfigurationReference.undocumented(SenderAllowlistSettings.keys, prefix: "sender-allowlist.") == [])
    #expect(ConfigurationReference.undocumented(DepartmentSenderPolicy.keys, prefix: "sender-allowlist.") == [])
}
