import Foundation
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import TollgateConfiguration
import TollgateSpool
import TollgateMetrics

/// The queue runner: claims due messages through the ``Spool`` (its claims, not this
/// process, decide who delivers what), delivers each through its upstream's
/// ``Transport`` while renewing the claim, and records what the ``OutcomeFolder``
/// makes of the replies.
///
/// Wakes when a message is stored (``wake()``), and polls at least once a second so
/// that `tollgate queue retry` from another process takes effect. On graceful
/// shutdown it claims nothing more and finishes the deliveries in flight.
public final class QueueRunner: Service, Sendable {
    /// How long a claim lasts unless renewed (SPEC §6 `spool.lease`).
    public static let defaultLease: Double = 60

    /// How the runner claims and delivers.
    public struct Settings: Sendable {
        /// The claim owner: unique to this process (``NodeIdentity/claimOwner``).
        public var owner: String
        public var lease: Double = QueueRunner.defaultLease
        /// How often a running delivery renews its claim; a third of the lease by default.
        public var renewInterval: Duration?
        /// The longest sleep between looks at the queue.
        public var pollInterval: Duration = .seconds(1)
        /// Deliveries at once (`delivery.concurrency`).
        public var concurrency = 64
        /// The upstream of messages that name none (`delivery.default_upstream`).
        public var defaultUpstream: String?
        public var schedule: RetrySchedule
        /// The name in bounces (`hostname`).
        public var hostname: String

        public init(owner: String, schedule: RetrySchedule, hostname: String) {
            self.owner = owner
            self.schedule = schedule
            self.hostname = hostname
        }

        /// The settings `configuration` gives, for claims made as `owner`.
        public init(_ configuration: TollgateConfiguration, owner: String) {
            self.init(
                owner: owner,
                schedule: RetrySchedule(intervals: configuration.delivery.retry, maxLifetime: configuration.delivery.maxLifetime),
                hostname: configuration.hostname
            )
            concurrency = configuration.delivery.concurrency
            defaultUpstream = configuration.delivery.defaultUpstream
            lease = configuration.spool.lease
        }

        var renewEvery: Duration { renewInterval ?? .milliseconds(Int64(lease * 1000 / 3)) }
    }

    let spool: any Spool
    /// The upstreams by name; a reload replaces them (``replaceTransports(_:)``).
    private let transportTable: NIOLockedValueBox<[String: any Transport]>
    var transports: [String: any Transport] { transportTable.withLockedValue { $0 } }
    let settings: Settings
    let folder: OutcomeFolder
    let bounces: BounceBuilder
    let logger: Logger
    let metrics: RelayMetrics?
    let now: @Sendable () -> Double
    let signal = WakeSignal()
    /// Deliveries in flight, and whether the runner has closed for good (then no slot
    /// is handed out, so no delivery can start after the transports shut down).
    let slots = NIOLockedValueBox((busy: 0, closed: false))
    /// Whether the loop's last look at the queue found every slot busy: only then is a
    /// slot given back a reason to look again at once (otherwise nothing more was due,
    /// and a look per finished delivery would be a statement per message for nothing).
    let starved = NIOLockedValueBox(false)
    /// The messages being delivered now, whose claims ``renewClaims()`` keeps alive.
    let delivering = NIOLockedValueBox([String: Int]())
    /// Deliveries whose result is being recorded: recording releases the claim, so a
    /// renewal that finds it gone then is no loss (and says nothing).
    let recording = NIOLockedValueBox(Set<String>())

    public init(
        spool: any Spool,
        transports: [String: any Transport],
        settings: Settings,
        logger: Logger,
        metrics: RelayMetrics? = nil,
        now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }
    ) {
        self.spool = spool
        self.transportTable = NIOLockedValueBox(transports)
        self.settings = settings
        self.folder = OutcomeFolder(schedule: settings.schedule)
        self.bounces = BounceBuilder(hostname: settings.hostname)
        self.logger = logger
        self.metrics = metrics
        self.now = now
    }

    /// Something was queued or changed: look at the queue now.
    public func wake() {
        signal.wake()
    }

    /// Claims nothing more; ``run()`` returns once the deliveries in flight are done.
    public func stop() {
        signal.stop()
    }

    /// Runs until ``stop()`` or graceful shutdown; deliveries in flight are finished
    /// and the transports shut down before it returns.
    public func run() async throws {
        await withGracefulShutdownHandler {
            await self.runUntilStopped()
        } onGracefulShutdown: {
            self.stop()
        }
    }

    private func runUntilStopped() async {
        let queued = (try? await spool.count()) ?? 0
        let node = String(settings.owner.prefix { $0 != "/" })
        do {
            let released = try await spool.releaseStaleClaims(node: node, keeping: settings.owner, isRunning: NodeIdentity.isRunning)
            if released > 0 { logger.notice("released the claims of an earlier process of this node", metadata: ["queue.claims": "\(released)"]) }
        } catch {
            logger.error("cannot release stale claims", metadata: ["error.message": "\(ErrorText.describe(error))"])
        }
        logger.info("queue runner started", metadata: ["queue.size": "\(queued)", "queue.owner": "\(settings.owner)"])
        await withDiscardingTaskGroup { group in
            group.addTask { await self.renewClaims() }
            // A store that is down fails every look at the queue (once a second): one
            // line when that starts and one when it ends, not one a second.
            var failing = false
            while !signal.isStopped, !Task.isCancelled {
                // Set before the slots are counted, so a slot given back in between
                // still wakes the sleep below (a wake before the sleep is kept).
                starved.withLockedValue { $0 = true }
                let capacity = settings.concurrency - slots.withLockedValue { $0.busy }
                if capacity > 0 { starved.withLockedValue { $0 = false } }
                var claimed: [String] = []
                if capacity > 0 {
                    do {
                        claimed = try await spool.claimDue(owner: settings.owner, now: now(), lease: settings.lease, limit: capacity)
                        if failing {
                            failing = false
                            logger.notice("claiming due messages again")
                        }
                    } catch {
                        if !failing { logger.error("cannot claim due messages", metadata: ["error.message": "\(ErrorText.describe(error))"]) }
                        failing = true
                    }
                }
                for id in claimed {
                    slots.withLockedValue { $0.busy += 1 }
                    group.addTask {
                        await self.deliverClaimed(id)
                        self.giveBackSlot()
                    }
                }
                // A full batch may mean more is due: look again at once.
                if claimed.isEmpty || claimed.count < capacity {
                    await signal.sleep(upTo: settings.pollInterval)
                }
            }
        }
        // Deliveries of just-accepted messages run outside the group: wait for them too.
        while !Task.isCancelled {
            let idle = slots.withLockedValue { s -> Bool in
                guard s.busy == 0 else { return false }
                s.closed = true
                return true
            }
            if idle { break }
            try? await Task.sleep(for: .milliseconds(10))
        }
        for transport in transports.values { await transport.shutdown() }
        logger.info("queue runner stopped")
    }

    /// A reload: deliveries from now on use `replacements` for those upstreams and no
    /// longer see the ones in `removed`. The transports replaced or removed are shut
    /// down — their idle connections closed at once, those in use when their delivery
    /// ends — so changed hosts, TLS settings or credentials apply to the next message;
    /// the others keep their pooled connections.
    public func replaceTransports(_ replacements: [String: any Transport], removing removed: [String]) async {
        let retired = transportTable.withLockedValue { table -> [any Transport] in
            var retired: [any Transport] = []
            for name in removed { if let old = table.removeValue(forKey: name) { retired.append(old) } }
            for (name, transport) in replacements {
                if let old = table.updateValue(transport, forKey: name) { retired.append(old) }
            }
            return retired
        }
        for transport in retired { await transport.shutdown() }
    }

    /// Takes a delivery slot if one is free.
    func takeSlot() -> Bool {
        slots.withLockedValue { s in
            guard !s.closed, s.busy < settings.concurrency else { return false }
            s.busy += 1
            return true
        }
    }

    /// A delivery ended: its slot is free, and if the last look found no free slot, the
    /// queue may have more than was claimed.
    func giveBackSlot() {
        slots.withLockedValue { $0.busy -= 1 }
        if starved.withLockedValue({ $0 }) { signal.wake() }
    }
}
