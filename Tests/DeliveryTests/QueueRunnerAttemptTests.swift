import SMTPCore
import SpoolTestSupport
import TestSupport
import Testing
import TollgateConfiguration
import TollgateDelivery
import TollgateSpool

/// What the queue runner writes in the record of attempts: one per attempt, with the
/// upstream, the host that answered (none when no host could be reached), the runner
/// that made it, and each recipient's reply and state.
@Suite(.timeLimit(.minutes(1))) struct QueueRunnerAttemptTests {
    @Test func aDeferralThenADeliveryAreTwoAttempts() async throws {
        let attempts = ManualCounter()
        let h = RunnerHarness(transport: FakeTransport { message, recipients in
            if attempts.increment() == 1 {
                // As SMTPTransport answers when every host refused the connection.
                return .all(recipients, SMTPReply(451, "4.4.1", "cannot connect to upstream: connection refused by mx1.example:25"))
            }
            return DeliveryOutcome(replies: Dictionary(uniqueKeysWithValues: recipients.map { i in
                (i, message.recipients[i].address.hasPrefix("nobody") ? SMTPReply(550, "5.1.1", "no such user") : SMTPReply(250, "2.0.0", "ok: queued as 4F"))
            }), remoteMTA: "mx2.example:25")
        })
        let t0 = h.clock.now
        try await h.running {
            let id = try await h.enqueue(to: ["bob@example.net", "nobody@example.net"])
            #expect(await waitUntil(timeout: 10) { h.spool.stored(id)?.state == .deferred })
            let first = try #require(try await h.spool.attempts(id).first)
            #expect(first.number == 1 && first.at == t0 && first.upstream == "fake" && first.host == nil && first.owner == "runner-a")
            #expect(first.recipients == [
                .init(address: "bob@example.net", code: 451, enhancedStatus: "4.4.1", text: "cannot connect to upstream: connection refused by mx1.example:25", state: .deferred),
                .init(address: "nobody@example.net", code: 451, enhancedStatus: "4.4.1", text: "cannot connect to upstream: connection refused by mx1.example:25", state: .deferred),
            ])

            h.clock.advance(by: 60)
            // Done: the message and its bounce leave the queue; the attempts stay with its history.
            #expect(await waitUntil(timeout: 10) { h.transport.deliveries.count == 3 && h.spool.messages.isEmpty })
            let recorded = try await h.spool.attempts(id)
            #expect(recorded.count == 2 && recorded.first == first)
            let second = try #require(recorded.last)
            #expect(second.number == 2 && second.at == t0 + 60 && second.upstream == "fake" && second.host == "mx2.example:25")
            #expect(second.recipients.map(\.reply) == ["250 2.0.0 ok: queued as 4F", "550 5.1.1 no such user"])
            #expect(second.recipients.map(\.state) == [.delivered, .failed])
            #expect(try await h.spool.history(id)?.attempts == 2)
        }
    }

    /// A message past `delivery.max_lifetime` is bounced without trying an upstream:
    /// its last attempt names none, and says why.
    @Test func anExpiryIsAnAttemptWithoutAnUpstream() async throws {
        let h = RunnerHarness()
        try await h.running {
            let id = try await h.enqueue(createdAt: h.clock.now - 86400)
            #expect(await waitUntil(timeout: 10) { h.transport.deliveries.count == 1 && h.spool.messages.isEmpty })
            let attempt = try #require(try await h.spool.attempts(id).first)
            #expect(attempt.upstream == nil && attempt.host == nil)
            #expect(attempt.recipients.map(\.state) == [.failed])
            #expect(attempt.recipients.first?.reply.hasPrefix("554 5.4.7 delivery time expired") == true)
        }
    }
}
