import PolicyTestSupport
import Testing

@testable import DKIMStage

/// docs/configuration.md names every key of the dkim stage's settings.
@Test func everyDKIMSettingIsDocumented() {
    #expect(ConfigurationReference.undocumented(DKIMSettings.keys, prefix: "dkim.") == [])
}
