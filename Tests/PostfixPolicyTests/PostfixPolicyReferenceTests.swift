import PolicyTestSupport
import Testing

@testable import PostfixPolicyStage

/// docs/configuration.md names every key of the postfix-policy stage's settings.
@Test func everyPostfixPolicySettingIsDocumented() {
    #expect(ConfigurationReference.undocumented(PostfixPolicySettings.allowedKeys, prefix: "postfix-policy.") == [])
}
