import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SMTPClient
import SMTPCore

/// The queue runner: finds due messages in the spool, delivers them to their
/// upstream, records per-recipient results (2xx done, 4xx retry, 5xx bounce), and
/// sends RFC 3464 bounces. Wakes when a message is stored, and at least once a second
/// so that `tollgate queue retry` from another process takes effect.
public final class DeliveryScheduler: Sendable {
    struct State {
        var inFlight: Set<String> = []
        var wakeup: CheckedContinuation<Void, Never>?
        var wakePending = false
        var stopping = false
    }

    private let spool: SQLiteSpool
    private let configuration: TollgateConfiguration
    private let pools: [String: UpstreamPool]
    private let schedule: RetrySchedule
    private let bounces: BounceBuilder
    private let logger: Logger
    private let now: @Sendable () -> Double
    private let metrics: RelayMetrics?
    private let state = NIOLockedValueBox(State())

    public init(
        spool: SQLiteSpool,
        configuration: TollgateConfiguration,
        group: any EventLoopGroup,
        logger: Logger,
        metrics: RelayMetrics? = nil,
        now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }
    ) throws {
        self.spool = spool
        self.metrics = metrics
        self.configuration = configuration
        self.logger = logger
        self.now = now
        self.schedule = RetrySchedule(intervals: configuration.delivery.retry, maxLifetime: configuration.delivery.maxLifetime)
        self.bounces = BounceBuilder(hostname: configuration.hostname)
        var pools: [String: UpstreamPool] = [:]
        for upstream in configuration.upstreams {
            guard case .smtp(let hosts) = upstream.kind else { continue }
            var password: String?
            if let file = upstream.passwordFile {
                guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                    throw StartupError("cannot read the password file \(file)")
                }
                password = text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            let client = SMTPClientConfiguration(
                tls: upstream.tls,
                verifyCertificate: upstream.verifyCertificate,
                caFile: upstream.caFile,
                username: upstream.username,
                password: password,
                heloName: configuration.hostname,
                connectTimeout: .seconds(30),
                commandTimeout: .minutes(5),
                dataTimeout: .minutes(10)
            )
            pools[upstream.name] = UpstreamPool(
                name: upstream.name,
                hosts: hosts.map { .init(host: $0.host, port: $0.port) },
                configuration: client,
                maxConnections: upstream.maxConnections,
                group: group,
                logger: logger
            )
        }
        self.pools = pools
    }

    /// Something was queued or changed: look at the queue now.
    public func wake() {
        let continuation: CheckedContinuation<Void, Never>? = state.withLockedValue { s in
            if let c = s.wakeup {
                s.wakeup = nil
                return c
            }
            s.wakePending = true
            return nil
        }
        continuation?.resume()
    }

    public func stop() {
        state.withLockedValue { $0.stopping = true }
        wake()
    }

    /// Runs until ``stop()``; deliveries in flight are finished before it returns.
    public func run() async {
        logger.info("queue runner started", metadata: ["queue.size": "\(spool.count)"])
        await withTaskGroup(of: Void.self) { group in
            while !state.withLockedValue({ $0.stopping }) {
                let capacity = configuration.delivery.concurrency - state.withLockedValue { $0.inFlight.count }
                var started = 0
                if capacity > 0 {
                    let ids: [String]
                    do {
                        ids = try await spool.due(now: now(), limit: capacity + state.withLockedValue { $0.inFlight.count })
                    } catch {
                        logger.error("cannot read the queue", metadata: ["error": "\(error)"])
                        ids = []
                    }
                    for id in ids {
                        let claimed = state.withLockedValue { s -> Bool in
                            guard s.inFlight.count < configuration.delivery.concurrency, !s.inFlight.contains(id) else { return false }
                            s.inFlight.insert(id)
                            return true
                        }
                        guard claimed else { continue }
                        started += 1
                        group.addTask {
                            await self.deliver(id)
                            self.state.withLockedValue { _ = $0.inFlight.remove(id) }
                            self.wake()
                        }
                    }
                }
                if started == 0 { await sleep(upTo: 1.0) }
            }
            await group.waitForAll()
        }
        for pool in pools.values { await pool.closeAll() }
        logger.info("queue runner stopped")
    }

    private func sleep(upTo seconds: Double) async {
        let pending = state.withLockedValue { s -> Bool in
            if s.wakePending || s.stopping {
                s.wakePending = false
                return true
            }
            return false
        }
        if pending { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let resumeNow = self.state.withLockedValue { s -> Bool in
                        if s.wakePending || s.stopping {
                            s.wakePending = false
                            return true
                        }
                        s.wakeup = c
                        return false
                    }
                    if resumeNow { c.resume() }
                }
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(seconds))
                self.wake()
            }
            await group.next()
            group.cancelAll()
            await group.waitForAll()
        }
        state.withLockedValue { $0.wakePending = false }
    }

    // MARK: - One message

    /// Delivers one message once; never throws: every outcome is recorded.
    func deliver(_ id: String) async {
        var logger = self.logger
        logger[metadataKey: "queue.id"] = .string(id)
        let message: SpoolMessage
        do {
            guard let m = try await spool.load(id) else { return }
            message = m
        } catch {
            logger.error("cannot load message", metadata: ["error": "\(error)"])
            return
        }
        let current = now()
        if message.bounceRequested {
            await finish(message, results: [:], failAllPending: SMTPReply(554, "5.0.0", "bounced by the administrator"), remoteMTA: nil, logger: logger)
            return
        }
        if schedule.expired(createdAt: message.createdAt, now: current) {
            let last = message.lastError ?? "no delivery attempt succeeded"
            await finish(message, results: [:], failAllPending: SMTPReply(554, "5.4.7", "delivery time expired: \(last)"), remoteMTA: nil, logger: logger)
            return
        }
        let upstreamName = message.upstream ?? configuration.delivery.defaultUpstream ?? ""
        guard let upstream = configuration.upstream(named: upstreamName) else {
            await finish(message, results: [:], deferAllPending: SMTPReply(451, "4.3.5", "upstream '\(upstreamName)' is not configured"), logger: logger)
            return
        }
        let pending = message.recipients.indices.filter { message.recipients[$0].state == .pending }
        switch upstream.kind {
        case .directory(let directory):
            do {
                try OutboxWriter(directory: directory).write(id: id, sender: message.sender, recipients: pending.map { message.recipients[$0].address }, content: message.content)
                var results: [Int: SMTPReply] = [:]
                for i in pending { results[i] = SMTPReply(250, "2.0.0", "written to \(directory)") }
                await finish(message, results: results, remoteMTA: nil, logger: logger)
            } catch {
                await finish(message, results: [:], deferAllPending: SMTPReply(451, "4.3.0", "\(error)"), logger: logger)
            }
        case .smtp:
            guard let pool = pools[upstream.name] else { return }
            await deliverSMTP(message, pending: pending, pool: pool, logger: logger)
        }
    }

    private func deliverSMTP(_ message: SpoolMessage, pending: [Int], pool: UpstreamPool, logger: Logger) async {
        let connection: SMTPClientConnection
        let host: String
        do {
            (connection, host) = try await pool.acquire()
        } catch {
            // Connection trouble on every host is always temporary (the client says
            // so: even a 5xx greeting means "try another host").
            let reply = (error as? SMTPClientError)?.reply ?? SMTPReply(451, "4.4.1", "\(error)")
            await finish(message, results: [:], deferAllPending: reply.isTransient ? reply : SMTPReply(451, "4.4.1", reply.text), logger: logger)
            return
        }
        let recipients = pending.map { message.recipients[$0] }
        let envelope = OutboundEnvelope(
            sender: message.sender,
            recipients: recipients.map(\.address),
            size: message.content.count,
            eightBit: message.envelope.eightBit,
            smtpUTF8: message.envelope.smtpUTF8 || message.sender.utf8.contains { $0 >= 0x80 } || recipients.contains { $0.address.utf8.contains { $0 >= 0x80 } },
            ret: message.envelope.ret,
            envelopeID: message.envelope.envelopeID,
            notify: recipients.map(\.notify),
            orcpt: recipients.map(\.originalRecipient)
        )
        var buffer = ByteBuffer()
        buffer.writeBytes(message.content)
        do {
            let report = try await connection.send(envelope, content: buffer)
            await pool.release(connection, host: host, reusable: true)
            var results: [Int: SMTPReply] = [:]
            for (k, index) in pending.enumerated() {
                results[index] = report.outcome(forRecipientAt: k)
            }
            await finish(message, results: results, remoteMTA: host, logger: logger)
        } catch {
            await pool.release(connection, host: host, reusable: false)
            let clientError = error as? SMTPClientError
            let reply = clientError?.reply ?? SMTPReply(451, "4.4.2", "\(error)")
            if clientError?.isPermanent == true {
                await finish(message, results: [:], failAllPending: reply, remoteMTA: host, logger: logger)
            } else {
                await finish(message, results: [:], deferAllPending: reply, logger: logger)
            }
        }
    }

    /// Applies per-recipient results, sends a bounce for failures, and records the
    /// attempt. The bounce is queued before the attempt is recorded, so a crash in
    /// between can duplicate a bounce but never lose one.
    private func finish(
        _ message: SpoolMessage,
        results: [Int: SMTPReply],
        failAllPending: SMTPReply? = nil,
        deferAllPending: SMTPReply? = nil,
        remoteMTA: String? = nil,
        logger: Logger
    ) async {
        var updated = message.recipients
        let upstreamName = message.upstream ?? configuration.delivery.defaultUpstream ?? "-"
        var failures: [BounceBuilder.Failure] = []
        var lastError: String?
        for i in updated.indices where updated[i].state == .pending {
            let reply = results[i] ?? failAllPending ?? deferAllPending ?? SMTPReply(451, "4.3.0", "not attempted")
            updated[i].attempts += 1
            updated[i].lastReply = reply.description
            if reply.isPositive {
                updated[i].state = .delivered
                metrics?.recipientDelivered(upstream: upstreamName, result: "delivered")
                logger.info("delivered", metadata: ["smtp.rcpt": "\(updated[i].address)", "upstream.reply": "\(reply)", "upstream.host": "\(remoteMTA ?? "-")"])
            } else if reply.isPermanent {
                updated[i].state = .failed
                metrics?.recipientDelivered(upstream: upstreamName, result: "bounced")
                failures.append(.init(recipient: updated[i], diagnostic: reply.description, remoteMTA: remoteMTA))
                logger.notice("delivery failed permanently", metadata: ["smtp.rcpt": "\(updated[i].address)", "upstream.reply": "\(reply)"])
            } else {
                lastError = reply.description
                metrics?.recipientDelivered(upstream: upstreamName, result: "deferred")
                logger.info("delivery deferred", metadata: ["smtp.rcpt": "\(updated[i].address)", "upstream.reply": "\(reply)"])
            }
        }
        let stillPending = updated.contains { $0.state == .pending }
        // Bounce first.
        let reportable = failures.filter { BounceBuilder.wantsFailureReport($0.recipient) }
        if !reportable.isEmpty {
            if BounceBuilder.mayBounce(message) {
                let bounce = bounces.build(for: message, failures: reportable, id: spool.ids.next(), now: now())
                do {
                    try await spool.insert(bounce)
                    logger.info("bounce queued", metadata: ["bounce.id": "\(bounce.id)", "smtp.mail.from": "<\(message.sender)>"])
                } catch {
                    // Keep the message: without its bounce it must not be forgotten.
                    logger.error("cannot queue bounce; will try again", metadata: ["error": "\(error)"])
                    try? await spool.recordAttempt(id: message.id, recipients: message.recipients, nextAttempt: now() + schedule.delay(afterAttempt: 1), lastError: "cannot queue bounce")
                    return
                }
            } else {
                logger.notice("not bouncing a message with a null sender or a bounce", metadata: ["smtp.mail.from": "<\(message.sender)>"])
            }
        }
        let next: Double? = stillPending ? now() + schedule.delay(afterAttempt: message.attempts + 1) : nil
        do {
            try await spool.recordAttempt(id: message.id, recipients: updated, nextAttempt: next, lastError: lastError ?? failAllPending?.description)
        } catch {
            logger.error("cannot record delivery attempt", metadata: ["error": "\(error)"])
        }
        if !failures.isEmpty || !stillPending { wake() }
    }
}
