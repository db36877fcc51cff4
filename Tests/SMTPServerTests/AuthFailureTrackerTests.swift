import NIOConcurrencyHelpers
import NIOCore
import SMTPCore
import Testing

@testable import SMTPServer

/// Failed logins counted per client across sessions (RELIABILITY C11).
@Suite struct AuthFailureTrackerTests {
    final class Clock: Sendable {
        let time = NIOLockedValueBox(NIODeadline.uptimeNanoseconds(1_000_000_000))
        func advance(_ amount: TimeAmount) { time.withLockedValue { $0 = $0 + amount } }
        var now: @Sendable () -> NIODeadline { { [time] in time.withLockedValue { $0 } } }
    }

    @Test func blocksAfterTheLimitWithinTheWindowAndForgetsAfterIt() {
        let clock = Clock()
        let tracker = AuthFailureTracker(.init(maxFailures: 3, window: .minutes(10)), now: clock.now)
        for _ in 0..<2 { tracker.recordFailure("192.0.2.1") }
        #expect(!tracker.isBlocked("192.0.2.1"))
        tracker.recordFailure("192.0.2.1")
        #expect(tracker.isBlocked("192.0.2.1"))
        #expect(!tracker.isBlocked("192.0.2.2"), "per client")
        clock.advance(.minutes(9))
        #expect(tracker.isBlocked("192.0.2.1"))
        clock.advance(.minutes(2))
        #expect(!tracker.isBlocked("192.0.2.1"), "failures age out")
        tracker.update(.init(maxFailures: 0, window: .minutes(10)))
        for _ in 0..<5 { tracker.recordFailure("192.0.2.3") }
        #expect(!tracker.isBlocked("192.0.2.3"), "0 turns it off")
    }

    @Test func tracksAtMostMaxClientsAddresses() {
        let clock = Clock()
        let tracker = AuthFailureTracker(.init(maxFailures: 1, window: .hours(1)), now: clock.now)
        tracker.recordFailure("first")
        clock.advance(.seconds(1))
        for i in 0..<AuthFailureTracker.maxClients { tracker.recordFailure("10.\(i / 65536).\(i / 256 % 256).\(i % 256)") }
        #expect(!tracker.isBlocked("first"), "the client seen longest ago went first")
        #expect(tracker.isBlocked("10.0.0.7"))
    }

    /// Two sessions from one address share the count; the verifier is not asked once
    /// the client is blocked, and the session closes with 421.
    @Test func sessionsFromOneClientShareTheCount() async throws {
        let tracker = AuthFailureTracker(.init(maxFailures: 4, window: .minutes(15)))
        let delegate = FakeDelegate(phases: [])
        let configuration = SMTPSessionConfiguration(hostname: "relay.test", tls: .starttls, auth: .optional)
        let first = try await HandlerHarness(delegate: delegate, configuration: configuration, implicitTLS: true, authFailures: tracker)
        _ = try await first.reply()
        try await first.send("EHLO c\r\n")
        _ = try await first.reply()
        let wrong = "AUTH PLAIN " + Base64.encode("\u{0}alice\u{0}guess") + "\r\n"
        for _ in 0..<2 {
            try await first.send(wrong)
            #expect(try await first.reply().hasPrefix("535 5.7.8"))
        }
        try await first.send(wrong)
        #expect(try await first.reply().hasPrefix("421 4.7.0 Error: too many failed authentication attempts"), "the per-session limit")

        let second = try await HandlerHarness(delegate: delegate, configuration: configuration, implicitTLS: true, authFailures: tracker)
        _ = try await second.reply()
        try await second.send("EHLO c\r\n")
        _ = try await second.reply()
        try await second.send(wrong)
        #expect(try await second.reply().hasPrefix("535 5.7.8"), "fourth failure")
        #expect(delegate.logins == 4)
        // Even the right password is not checked now: no oracle, no load on the directory.
        try await second.send("AUTH PLAIN " + Base64.encode("\u{0}alice\u{0}secret") + "\r\n")
        let reply = try await second.reply()
        #expect(reply.hasPrefix("421 4.7.0") && reply.contains("from your address"), "\(reply)")
        #expect(delegate.logins == 4)
    }
}
