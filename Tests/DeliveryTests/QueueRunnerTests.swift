import SMTPCore
import SpoolTestSupport
import TestSupport
import Testing
import TollgateConfiguration
import TollgateDelivery
import TollgateSpool

/// The queue runner against an in-memory spool, a scripted transport and a clock the
/// test moves. Waits are bounded; each asserts a state the runner must reach.
@Suite(.timeLimit(.minutes(1))) struct QueueRunnerTests {
    let unknownUser = SMTPReply(550, "5.1.1", "no such user")

    @Test func deliversAndRemovesTheMessage() async throws {
        let h = RunnerHarness()
        try await h.running {
            let id = try await h.enqueue(to: ["b@example.net", "c@example.net"])
            #expect(await waitUntil(timeout: 10) { h.spool.messages.isEmpty })
            let delivered = try #require(h.transport.deliveries.first)
            #expect(h.transport.deliveries.count == 1)
            #expect(delivered.id == id && delivered.recipients == ["b@example.net", "c@example.net"])
            #expect(delivered.data.hasPrefix("Received: by test\r\nSubject: test\r\n"))
        }
        #expect(h.transport.wasShutDown)
    }

    @Test func defersThenDeliversAfterTheRetryInterval() async throws {
        let attempts = ManualCounter()
        let h = RunnerHarness(transport: FakeTransport { _, recipients in
            .all(recipients, attempts.increment() == 1 ? SMTPReply(451, "4.4.1", "try later") : SMTPReply(250, "2.0.0", "ok"))
        })
        let t0 = h.clock.now
        try await h.running {
            let id = try await h.enqueue()
            #expect(await waitUntil(timeout: 10) { h.spool.stored(id)?.state == .deferred })
            let deferred = try #require(h.spool.stored(id))
            #expect(deferred.nextAttempt == t0 + 60 && deferred.attempts == 1 && deferred.lastError == "451 4.4.1 try later")
            #expect(deferred.recipients[0].state == .pending && deferred.claimedBy == nil)

            // One second early: the runner looks at the queue and leaves it.
            h.clock.advance(by: 59)
            let looks = h.spool.claimTimes.count
            #expect(await waitUntil(timeout: 10) { h.spool.claimTimes.dropFirst(looks).contains(t0 + 59) })
            #expect(h.transport.deliveries.count == 1)

            h.clock.advance(by: 1)
            #expect(await waitUntil(timeout: 10) { h.spool.messages.isEmpty })
            #expect(h.transport.deliveries.count == 2)
        }
    }

    @Test func bouncesAPermanentFailureToTheSender() async throws {
        let reply = unknownUser
        let h = RunnerHarness(transport: FakeTransport { message, recipients in
            DeliveryOutcome(replies: Dictionary(uniqueKeysWithValues: recipients.map { i in
                (i, message.recipients[i].address.hasPrefix("nobody") ? reply : SMTPReply(250, "2.0.0", "ok"))
            }), remoteMTA: "fake:25")
        })
        try await h.running {
            let id = try await h.enqueue(to: ["nobody@example.net", "bob@example.net"])
            // The original, then its bounce, both delivered; nothing left.
            #expect(await waitUntil(timeout: 10) { h.transport.deliveries.count == 2 && h.spool.messages.isEmpty })
            let dsn = h.transport.deliveries[1]
            #expect(dsn.sender == "" && dsn.recipients == ["alice@example.com"])
            #expect(dsn.data.contains("X-Tollgate-Queue-ID: \(id)"))
            #expect(dsn.data.contains("Final-Recipient: rfc822; nobody@example.net\r\nAction: failed\r\nStatus: 5.1.1"))
            #expect(!dsn.data.contains("Final-Recipient: rfc822; bob@example.net"))
        }
    }

    @Test func aBounceThatFailsIsNotBouncedAgain() async throws {
        let reply = unknownUser
        let h = RunnerHarness(transport: FakeTransport { _, recipients in .all(recipients, reply) })
        try await h.running {
            try await h.enqueue()
            #expect(await waitUntil(timeout: 10) { h.transport.deliveries.count == 2 && h.spool.messages.isEmpty })
            #expect(h.transport.deliveries.map(\.sender) == ["alice@example.com", ""])
        }
    }

    @Test func anExpiredMessageIsBouncedWithoutAnAttempt() async throws {
        let h = RunnerHarness()
        try await h.running {
            let id = try await h.enqueue(createdAt: h.clock.now - 86400)
            #expect(await waitUntil(timeout: 10) { h.transport.deliveries.count == 1 && h.spool.messages.isEmpty })
            let dsn = h.transport.deliveries[0]
            #expect(dsn.sender == "" && dsn.id != id)
            #expect(dsn.data.contains("Status: 5.4.7"))
        }
    }

    @Test func anAdministratorsBounceSendsTheDSNAndNotTheMessage() async throws {
        let h = RunnerHarness()
        let id = try await h.enqueue()
        #expect(try await h.spool.requestBounce([id]) == [id])
        try await h.running {
            #expect(await waitUntil(timeout: 10) { h.transport.deliveries.count == 1 && h.spool.messages.isEmpty })
            #expect(h.transport.deliveries[0].sender == "")
            #expect(h.transport.deliveries[0].data.contains("bounced by the administrator"))
        }
    }

    @Test func aRetryFromAnotherProcessIsPickedUpWithoutAWake() async throws {
        let attempts = ManualCounter()
        let h = RunnerHarness(transport: FakeTransport { _, recipients in
            .all(recipients, attempts.increment() == 1 ? SMTPReply(451, "4.4.1", "try later") : SMTPReply(250, "2.0.0", "ok"))
        })
        try await h.running {
            let id = try await h.enqueue()
            #expect(await waitUntil(timeout: 10) { h.spool.stored(id)?.state == .deferred })
            // `tollgate queue retry` writes the spool; nobody calls wake().
            #expect(try await h.spool.retry([id], now: h.clock.now) == [id])
            #expect(await waitUntil(timeout: 10) { h.spool.messages.isEmpty })
        }
    }

    @Test func respectsTheConcurrencyLimit() async throws {
        let gate = Gate()
        let h = RunnerHarness(transport: FakeTransport { _, recipients in
            await gate.wait()
            return .all(recipients, SMTPReply(250, "2.0.0", "ok"))
        }, concurrency: 3)
        try await h.running {
            for _ in 0..<10 { try await h.enqueue() }
            #expect(await waitUntil(timeout: 10) { h.transport.running == 3 })
            // Claims follow capacity: three busy deliveries, three claims, the rest waiting.
            #expect(h.spool.liveClaims(at: h.clock.now) == 3)
            gate.open()
            #expect(await waitUntil(timeout: 10) { h.spool.messages.isEmpty })
        }
        #expect(h.transport.deliveries.count == 10)
        #expect(h.transport.maxConcurrent == 3)
    }

    @Test func renewsTheLeaseOfALongDelivery() async throws {
        let gate = Gate()
        let h = RunnerHarness(transport: FakeTransport { _, recipients in
            await gate.wait()
            return .all(recipients, SMTPReply(250, "2.0.0", "ok"))
        }, lease: 10, renewInterval: .milliseconds(20))
        let t0 = h.clock.now
        try await h.running {
            let id = try await h.enqueue()
            #expect(await waitUntil(timeout: 10) { h.transport.running == 1 })
            #expect(h.spool.claimExpiry(id) == t0 + 10)
            // The delivery outlasts its first lease; the runner keeps extending it.
            h.clock.advance(by: 9)
            #expect(await waitUntil(timeout: 10) { h.spool.claimExpiry(id) == t0 + 19 })
            h.clock.advance(by: 6)
            #expect(try await h.spool.claimDue(owner: "runner-b", now: h.clock.now, lease: 10, limit: 10).isEmpty)
            gate.open()
            #expect(await waitUntil(timeout: 10) { h.spool.messages.isEmpty })
        }
        #expect(h.transport.deliveries.count == 1)
    }

    /// Recording the result releases the claim; a renewal that comes while the
    /// delivery is being recorded must not call that a lost claim (it did, dozens of
    /// times while a 20,000-message backlog drained).
    @Test func aRenewalDuringRecordingIsNoLostClaim() async throws {
        let gate = Gate()
        let log = LogRecording()
        let h = RunnerHarness(transport: FakeTransport { _, recipients in
            .all(recipients, SMTPReply(451, "4.3.0", "later"))
        }, lease: 10, renewInterval: .milliseconds(10), logger: log.logger)
        h.spool.afterRecording.withLockedValue { $0 = { await gate.wait() } }
        try await h.running {
            let id = try await h.enqueue()
            #expect(await waitUntil(timeout: 10) { h.spool.messages.first { $0.id == id }?.claimedBy == nil && h.transport.deliveries.count == 1 })
            // Several renewal rounds while the recorded delivery has not yet returned.
            try await Task.sleep(for: .milliseconds(100))
            gate.open()
        }
        #expect(log.warnings.isEmpty, "\(log.warnings)")
    }

    /// A result that waits to be written (a busy database, a batch of results before
    /// it) keeps its claim alive meanwhile: the runner renews it until the record is
    /// made, so no other runner can take the message over and deliver it again.
    @Test func aClaimIsRenewedWhileItsResultWaitsToBeRecorded() async throws {
        let gate = Gate()
        let log = LogRecording()
        let h = RunnerHarness(lease: 10, renewInterval: .milliseconds(20), logger: log.logger)
        h.spool.beforeRecording.withLockedValue { $0 = { await gate.wait() } }
        let t0 = h.clock.now
        try await h.running {
            let id = try await h.enqueue()
            #expect(await waitUntil(timeout: 10) { h.transport.deliveries.count == 1 })
            // Delivered; its result has not been written. The lease would end at t0 + 10.
            h.clock.advance(by: 9)
            #expect(await waitUntil(timeout: 10) { h.spool.claimExpiry(id) == t0 + 19 }, "\(String(describing: h.spool.claimExpiry(id)))")
            h.clock.advance(by: 6)
            #expect(try await h.spool.claimDue(owner: "runner-b", now: h.clock.now, lease: 10, limit: 10).isEmpty)
            gate.open()
            #expect(await waitUntil(timeout: 10) { h.spool.messages.isEmpty })
        }
        #expect(h.transport.deliveries.count == 1)
        #expect(log.warnings.isEmpty, "\(log.warnings)")
    }

    /// A finished delivery looks at the queue again only when the last look found no
    /// free slot: twenty messages that all found a slot cost one look, not one each
    /// (a statement per message with the PostgreSQL store); a backlog larger than the
    /// slots is still drained at once, each freed slot taking the next message. The
    /// poll interval is a minute here, so only wakes can explain a prompt look.
    @Test func aFinishedDeliveryLooksAgainOnlyWhenSlotsRanOut() async throws {
        let roomy = RunnerHarness(concurrency: 30, pollInterval: .seconds(60))
        try await roomy.running {
            #expect(await waitUntil(timeout: 10) { roomy.spool.claimTimes.count == 1 })
            for _ in 0..<20 {
                try await roomy.spool.insert(SpoolFixtures.message(id: roomy.spool.makeQueueID(), now: roomy.clock.now, header: "Received: by test\r\n"))
            }
            roomy.runner.wake()
            #expect(await waitUntil(timeout: 10) { roomy.spool.messages.isEmpty && roomy.transport.deliveries.count == 20 })
            try await Task.sleep(for: .milliseconds(200))
            #expect(roomy.spool.claimTimes.count == 2, "\(roomy.spool.claimTimes.count) looks at the queue for one batch")
        }
        let busy = RunnerHarness(concurrency: 3, pollInterval: .seconds(60))
        try await busy.running {
            for _ in 0..<10 { try await busy.enqueue() }
            #expect(await waitUntil(timeout: 10) { busy.spool.messages.isEmpty }, "a backlog waited for the poll interval")
        }
        #expect(busy.transport.deliveries.count == 10 && busy.transport.maxConcurrent <= 3)
    }

    @Test func twoRunnersOnOneSpoolNeverDeliverOneMessageAtOnce() async throws {
        let spool = InMemorySpool()
        let clock = ManualClock()
        let transport = FakeTransport { _, recipients in
            try? await Task.sleep(for: .milliseconds(Int.random(in: 1...5)))
            return .all(recipients, SMTPReply(250, "2.0.0", "ok"))
        }
        let a = RunnerHarness(spool: spool, clock: clock, transport: transport, owner: "runner-a", concurrency: 4)
        let b = RunnerHarness(spool: spool, clock: clock, transport: transport, owner: "runner-b", concurrency: 4)
        var ids: [String] = []
        try await a.running {
            try await b.running {
                for _ in 0..<40 {
                    ids.append(try await a.enqueue())
                    b.runner.wake()
                }
                #expect(await waitUntil(timeout: 20) { spool.messages.isEmpty })
            }
        }
        #expect(transport.overlapping.isEmpty)
        // Each message delivered exactly once, by one runner or the other.
        #expect(transport.deliveries.map(\.id).sorted() == ids.sorted())
    }

    @Test func stoppingFinishesTheDeliveriesInFlight() async throws {
        let gate = Gate()
        let h = RunnerHarness(transport: FakeTransport { _, recipients in
            await gate.wait()
            return .all(recipients, SMTPReply(250, "2.0.0", "ok"))
        })
        let task = Task { [runner = h.runner] in try await runner.run() }
        let id = try await h.enqueue()
        #expect(await waitUntil(timeout: 10) { h.transport.running == 1 })
        h.runner.stop()
        gate.open()
        // run() returns only after the delivery in flight was recorded.
        try await task.value
        #expect(h.spool.stored(id) == nil)
        #expect(h.transport.deliveries.map(\.id) == [id])
    }
}

/// Messages a session has just stored are delivered from memory by the node that
/// accepted them, under the claim they were stored with.
@Suite struct AcceptedDeliveryTests {
    @Test func aStoredMessageIsDeliveredUnderItsClaimWithoutAnotherClaim() async throws {
        let gate = Gate()
        let h = RunnerHarness(transport: FakeTransport { _, recipients in
            await gate.wait()
            return .all(recipients, SMTPReply(250, "2.0.0", "ok"))
        }, owner: "relay-a/1/x", concurrency: 2)
        let other = RunnerHarness(spool: h.spool, clock: h.clock, transport: h.transport, owner: "relay-b/1/y")
        try await h.running {
            try await other.running {
                let reservation = try #require(h.runner.reserve())
                #expect(reservation.claim.owner == "relay-a/1/x")
                let m = SpoolFixtures.message(id: h.spool.makeQueueID(), now: h.clock.now)
                try await h.spool.insert(m, claim: reservation.claim)
                other.runner.wake()
                h.runner.deliverStored(m, reservation)
                #expect(await waitUntil(timeout: 10) { h.transport.running == 1 })
                // The other node sees the message claimed and leaves it alone.
                #expect(try await h.spool.claimDue(owner: "relay-c/1/z", now: h.clock.now, lease: 60, limit: 10).isEmpty)
                gate.open()
                #expect(await waitUntil(timeout: 10) { h.spool.messages.isEmpty })
            }
        }
        #expect(h.transport.deliveries.count == 1)
    }

    @Test func noSlotWhenTheRunnerIsBusy() async throws {
        let h = RunnerHarness(concurrency: 2)
        let a = try #require(h.runner.reserve())
        let b = try #require(h.runner.reserve())
        #expect(h.runner.reserve() == nil)
        h.runner.cancel(a)
        let c = try #require(h.runner.reserve())
        h.runner.cancel(b)
        h.runner.cancel(c)
    }
}
