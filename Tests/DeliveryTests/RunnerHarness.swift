import Logging
import SpoolTestSupport
import TollgateConfiguration
import TollgateDelivery
import TollgateSpool

/// A queue runner on an in-memory spool with a fake transport and a manual clock.
struct RunnerHarness {
    let spool: InMemorySpool
    let clock: ManualClock
    let transport: FakeTransport
    let runner: QueueRunner

    init(
        spool: InMemorySpool = InMemorySpool(),
        clock: ManualClock = ManualClock(),
        transport: FakeTransport = FakeTransport(),
        owner: String = "runner-a",
        concurrency: Int = 8,
        lease: Double = 60,
        renewInterval: Duration? = nil,
        pollInterval: Duration = .milliseconds(20),
        logger: Logger = SpoolFixtures.quietLogger
    ) {
        self.spool = spool
        self.clock = clock
        self.transport = transport
        var settings = QueueRunner.Settings(owner: owner, schedule: RetrySchedule(intervals: [60, 300], maxLifetime: 86400), hostname: "relay.example.test")
        settings.concurrency = concurrency
        settings.lease = lease
        settings.renewInterval = renewInterval
        settings.pollInterval = pollInterval
        settings.defaultUpstream = "fake"
        runner = QueueRunner(spool: spool, transports: ["fake": transport], settings: settings, logger: logger, now: clock.function)
    }

    /// Inserts a message due now and wakes the runner, as a session does.
    @discardableResult
    func enqueue(from sender: String = "alice@example.com", to recipients: [String] = ["bob@example.net"], createdAt: Double? = nil) async throws -> String {
        let m = SpoolFixtures.message(id: spool.makeQueueID(), from: sender, to: recipients, now: createdAt ?? clock.now, header: "Received: by test\r\n")
        try await spool.insert(m)
        runner.wake()
        return m.id
    }

    /// Runs the runner during `body`, then stops it and waits for it to finish.
    func running(_ body: () async throws -> Void) async throws {
        let runner = self.runner
        let task = Task { try await runner.run() }
        do {
            try await body()
        } catch {
            runner.stop()
            _ = await task.result
            throw error
        }
        runner.stop()
        try await task.value
    }
}
