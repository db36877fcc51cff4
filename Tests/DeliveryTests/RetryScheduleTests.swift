import Testing
import TollgateConfiguration
import TollgateDelivery
import TollgateSpool

@Suite struct RetryScheduleTests {
    let schedule = RetrySchedule(intervals: [60, 300, 900], maxLifetime: 86400)

    @Test func theIntervalsApplyInOrderAndTheLastRepeats() {
        #expect((1...6).map { schedule.delay(afterAttempt: $0) } == [60, 300, 900, 900, 900, 900])
        #expect(schedule.delay(afterAttempt: 0) == 60)
    }

    @Test func aMessageExpiresAtItsMaximumLifetime() {
        #expect(!schedule.expired(createdAt: 1000, now: 1000 + 86399))
        #expect(schedule.expired(createdAt: 1000, now: 1000 + 86400))
    }

    @Test func anEmptyListFallsBackToFiveMinutes() {
        #expect(RetrySchedule(intervals: [], maxLifetime: 10).delay(afterAttempt: 3) == 300)
    }
}
