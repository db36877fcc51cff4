import SMTPCore
import SpoolTestSupport
import Testing
import TollgateConfiguration
import TollgateDelivery
import TollgateSpool

/// The pure fold of replies into recipient states, the next attempt and bounces.
@Suite struct OutcomeFolderTests {
    let folder = OutcomeFolder(schedule: RetrySchedule(intervals: [60, 300], maxLifetime: 3600))
    let t0 = 1_700_000_000.0
    let ok = SMTPReply(250, "2.0.0", "ok")
    let later = SMTPReply(451, "4.4.1", "try later")
    let unknown = SMTPReply(550, "5.1.1", "no such user")

    func message(_ recipients: [String] = ["a@x.test", "b@x.test", "c@x.test"], from sender: String = "s@example.com", notify: [String]? = nil) -> SpoolMessage {
        SpoolFixtures.message(id: "M1", from: sender, to: recipients, notify: notify, now: t0)
    }

    @Test func aMixOfRepliesSplitsTheRecipients() {
        var m = message()
        m.attempts = 1
        let update = folder.fold(m, DeliveryOutcome(replies: [0: ok, 1: later, 2: unknown], remoteMTA: "mx:25"), now: t0 + 10)
        #expect(update.recipients.map(\.state) == [.delivered, .pending, .failed])
        #expect(update.recipients.map(\.attempts) == [1, 1, 1])
        #expect(update.recipients[1].lastReply == later.description)
        #expect(update.results.map(\.disposition) == [.sent, .deferred, .bounced])
        // Second attempt: the second interval.
        #expect(update.nextAttempt == t0 + 10 + 300)
        #expect(update.lastError == later.description)
        #expect(update.bounce == [BounceBuilder.Failure(recipient: update.recipients[2], diagnostic: unknown.description, remoteMTA: "mx:25")])
        #expect(!update.bounceSuppressed)
    }

    @Test func allDeliveredIsDone() {
        let update = folder.fold(message(), .all([0, 1, 2], ok), now: t0)
        #expect(update.nextAttempt == nil)
        #expect(update.bounce.isEmpty && update.lastError == nil)
    }

    @Test func allFailedIsDoneWithABounceForEach() {
        let update = folder.fold(message(), .all([0, 1, 2], unknown), now: t0)
        #expect(update.nextAttempt == nil)
        #expect(update.bounce.map(\.recipient.address) == ["a@x.test", "b@x.test", "c@x.test"])
        #expect(update.lastError == unknown.description)
    }

    @Test func onlyPendingRecipientsAreTouchedAndMissingRepliesAreRetried() {
        var m = message()
        m.recipients[0].state = .delivered
        m.recipients[0].attempts = 1
        let update = folder.fold(m, DeliveryOutcome(replies: [1: ok]), now: t0)
        #expect(update.recipients[0].attempts == 1)
        #expect(update.recipients.map(\.state) == [.delivered, .delivered, .pending])
        #expect(update.recipients[2].lastReply?.hasPrefix("451 4.3.0") == true)
        #expect(update.nextAttempt == t0 + 60)
    }

    @Test func notifyDecidesWhetherAFailureIsReported() {
        let never = folder.fold(message(["a@x.test"], notify: ["NEVER"]), .all([0], unknown), now: t0)
        #expect(never.bounce.isEmpty && !never.bounceSuppressed && never.nextAttempt == nil)
        let success = folder.fold(message(["a@x.test"], notify: ["SUCCESS", "DELAY"]), .all([0], unknown), now: t0)
        #expect(success.bounce.isEmpty)
        let failure = folder.fold(message(["a@x.test"], notify: ["FAILURE"]), .all([0], unknown), now: t0)
        #expect(failure.bounce.count == 1)
    }

    @Test func theNullSenderAndBouncesAreNeverBounced() {
        let null = folder.fold(message(["a@x.test"], from: ""), .all([0], unknown), now: t0)
        #expect(null.bounce.isEmpty && null.bounceSuppressed)
        var dsn = message(["a@x.test"])
        dsn.envelope.isBounce = true
        let bounce = folder.fold(dsn, .all([0], unknown), now: t0)
        #expect(bounce.bounce.isEmpty && bounce.bounceSuppressed)
    }

    @Test func anExpiredMessageFailsWithoutAnAttempt() throws {
        var m = message()
        m.lastError = "451 4.4.1 try later"
        m.recipients[0].state = .delivered
        #expect(folder.decidedWithoutAttempt(m, now: t0 + 3599) == nil)
        let outcome = try #require(folder.decidedWithoutAttempt(m, now: t0 + 3600))
        #expect(outcome.replies.keys.sorted() == [1, 2])
        #expect(outcome.replies[1]?.enhancedCode == "5.4.7")
        #expect(outcome.replies[1]?.text.contains("451 4.4.1 try later") == true)
        let update = folder.fold(m, outcome, now: t0 + 3600)
        #expect(update.nextAttempt == nil && update.bounce.count == 2)
    }

    @Test func anAdministratorsBounceFailsEveryPendingRecipient() throws {
        var m = message()
        m.bounceRequested = true
        let outcome = try #require(folder.decidedWithoutAttempt(m, now: t0))
        #expect(outcome.replies.count == 3 && outcome.replies.values.allSatisfy { $0.code == 554 && $0.enhancedCode == "5.0.0" })
        #expect(folder.fold(m, outcome, now: t0).bounce.count == 3)
    }
}
