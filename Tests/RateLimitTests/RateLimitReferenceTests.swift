import PolicyTestSupport
import Testing

@testable import RateLimitStage

/// docs/configuration.md names every key of the rate-limit stage's settings and rules.
@Test func everyRateLimitSettingIsDocumented() {
    #expect(ConfigurationReference.undocumented(RateLimitSettings.keys, prefix: "rate-limit.") == [])
    #expect(ConfigurationReference.undocumented(RateLimitRules.ruleKeys, prefix: "rate-limit.limits[].") == [])
}
