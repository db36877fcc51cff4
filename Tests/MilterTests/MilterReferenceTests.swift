import PolicyTestSupport
import Testing

@testable import MilterStage

/// docs/configuration.md names every key of the milter stage's settings.
@Test func everyMilterSettingIsDocumented() {
    #expect(ConfigurationReference.undocumented(MilterSettings.keys, prefix: "milter.") == [])
}
