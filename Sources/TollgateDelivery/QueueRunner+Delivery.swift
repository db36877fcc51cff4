import Logging
import SMTPCore
import TollgateConfiguration
import TollgateSpool
import TollgateMetrics

extension QueueRunner {
    /// Delivers one claimed message once; never throws: every outcome is recorded,
    /// and recording it releases the claim.
    func deliverClaimed(_ id: String) async {
        var logger = self.logger
        logger[metadataKey: "queue.id"] = .string(id)
        let message: SpoolMessage
        do {
            // `nil`: deleted, or quarantined; the claim went with the entry.
            guard let m = try await spool.load(id) else { return }
            message = m
        } catch {
            logger.error("cannot load message", metadata: ["error.message": "\(ErrorText.describe(error))"])
            try? await spool.releaseClaim(id, owner: settings.owner)
            return
        }
        await deliverClaimed(message, logger: logger)
    }

    /// Delivers a message this runner holds the claim on; ``renewClaims()`` keeps the
    /// claim alive meanwhile.
    func deliverClaimed(_ message: SpoolMessage, logger: Logger) async {
        delivering.withLockedValue { $0[message.id, default: 0] += 1 }
        await deliver(message, logger: logger)
        delivering.withLockedValue { d in
            d[message.id, default: 1] -= 1
            if d[message.id] == 0 { d[message.id] = nil }
        }
        recording.withLockedValue { _ = $0.remove(message.id) }
    }

    /// Renews the claims of every delivery in flight, every ``Settings/renewInterval``
    /// (one task for them all, not one per delivery), until the runner has stopped
    /// and the last delivery has ended.
    func renewClaims() async {
        var lastRenewal = ContinuousClock.now
        while !(signal.isStopped && slots.withLockedValue({ $0.busy }) == 0), !Task.isCancelled {
            // Short sleeps, so that the loop ends soon after the last delivery.
            try? await Task.sleep(for: min(settings.renewEvery, .milliseconds(200)))
            guard ContinuousClock.now >= lastRenewal.advanced(by: settings.renewEvery) else { continue }
            lastRenewal = .now
            // Those whose result is being recorded too: a record that waits (a busy
            // database, a batch of results before it) must not outlive its claim. Once
            // recorded, the claim is gone and the renewal finds nothing, which is no loss.
            for id in delivering.withLockedValue({ Array($0.keys) }) {
                do {
                    // A delivery that ended meanwhile released its claim by recording: no loss.
                    if try await !spool.renewClaim(id, owner: settings.owner, now: now(), lease: settings.lease),
                        !recording.withLockedValue({ $0.contains(id) }), delivering.withLockedValue({ $0[id] != nil })
                    {
                        logger.warning("delivery claim lost; another runner may deliver the message too", metadata: ["queue.id": "\(id)"])
                    }
                } catch {
                    logger.warning("cannot renew the delivery claim", metadata: ["queue.id": "\(id)", "error.message": "\(ErrorText.describe(error))"])
                }
            }
        }
    }

    private func deliver(_ message: SpoolMessage, logger: Logger) async {
        let upstream = message.upstream ?? settings.defaultUpstream ?? ""
        var logger = logger
        logger[metadataKey: "upstream.name"] = .string(upstream)
        let pending = message.recipients.indices.filter { message.recipients[$0].state == .pending }
        let started = now()
        let outcome: DeliveryOutcome
        // The upstream the attempt's record names: none when no upstream was tried.
        var tried: String? = upstream.isEmpty ? nil : upstream
        if let decided = folder.decidedWithoutAttempt(message, now: started) {
            outcome = decided
            tried = nil
        } else if let transport = transports[upstream] {
            outcome = await transport.deliver(message, to: pending)
            countAttempt(outcome, of: message, upstream: upstream)
        } else {
            outcome = .all(pending, SMTPReply(451, "4.3.5", "upstream '\(upstream)' is not configured"))
        }
        let attempt = DeliveryAttempt(at: started, upstream: tried, host: outcome.remoteMTA, owner: settings.owner, recipients: [])
        await record(
            message, folder.fold(message, outcome, now: now()), attempt: attempt, upstream: upstream.isEmpty ? "-" : upstream,
            remoteMTA: outcome.remoteMTA, logger: logger
        )
    }

    /// `tollgate_delivery_attempts_total{upstream,host,result}` and the octets sent.
    private func countAttempt(_ outcome: DeliveryOutcome, of message: SpoolMessage, upstream: String) {
        guard let metrics else { return }
        let replies = outcome.replies.values
        let result = replies.contains { $0.isTransient } || replies.isEmpty ? "deferred" : (replies.contains { $0.isPermanent } ? "bounced" : "sent")
        let delivered = replies.contains { $0.isPositive }
        metrics.deliveryAttempted(upstream: upstream, host: outcome.remoteMTA ?? "-", result: result, bytesSent: delivered ? message.size : 0)
    }

    /// Logs and counts each recipient's result, queues the bounce, then records the
    /// attempt (`attempt`, with each recipient's reply and state filled in here). The
    /// bounce is queued first, so a crash in between can duplicate a bounce but never
    /// lose one.
    private func record(_ message: SpoolMessage, _ update: DeliveryUpdate, attempt: DeliveryAttempt, upstream: String, remoteMTA: String?, logger: Logger) async {
        recording.withLockedValue { _ = $0.insert(message.id) }
        let tenths = Int(max(0, now() - message.createdAt) * 10)
        for result in update.results {
            // One `event=delivery` line per recipient and attempt (SPEC §8).
            var metadata: Logger.Metadata = [
                "event": "delivery", "smtp.rcpt.to": "\(result.address)", "upstream.reply": "\(result.reply)", "upstream.host": "\(remoteMTA ?? "-")",
                "delivery.delay": "\(tenths / 10).\(tenths % 10)s", "delivery.attempt": "\(message.attempts + 1)",
            ]
            switch result.disposition {
            case .sent:
                metadata["delivery.result"] = "sent"
                metrics?.recipientDelivered(upstream: upstream, result: "delivered")
                logger.info("delivered", metadata: metadata)
            case .bounced:
                metadata["delivery.result"] = "bounced"
                metrics?.recipientDelivered(upstream: upstream, result: "bounced")
                logger.notice("delivery failed permanently", metadata: metadata)
            case .deferred:
                metadata["delivery.result"] = "deferred"
                metrics?.recipientDelivered(upstream: upstream, result: "deferred")
                logger.info("delivery deferred", metadata: metadata)
            }
        }
        if !update.bounce.isEmpty {
            let bounce = bounces.build(for: message, failures: update.bounce, id: spool.makeQueueID(), now: now())
            do {
                try await spool.insert(bounce)
                logger.info("bounce queued", metadata: ["bounce.id": "\(bounce.id)", "smtp.mail.from": "<\(message.sender)>"])
                wake()
            } catch {
                // Keep the message: without its bounce it must not be forgotten.
                logger.error("cannot queue bounce; will try again", metadata: ["error.message": "\(ErrorText.describe(error))"])
                // Recipients delivered in this attempt stay delivered; those that
                // failed stay pending, so the failure (and its bounce) comes again.
                var recipients = update.recipients
                for i in recipients.indices where recipients[i].state == .failed && message.recipients[i].state == .pending {
                    recipients[i].state = .pending
                }
                _ = try? await spool.recordAttempt(
                    message.id, owner: settings.owner, recipients: recipients,
                    nextAttempt: folder.retryAfterBounceFailure(now: now()), lastError: "cannot queue bounce",
                    attempt: Self.filled(attempt, update.results, recipients)
                )
                return
            }
        } else if update.bounceSuppressed {
            logger.notice("not bouncing a message with a null sender or a bounce", metadata: ["smtp.mail.from": "<\(message.sender)>"])
        }
        do {
            let recorded = try await spool.recordAttempt(
                message.id, owner: settings.owner, recipients: update.recipients, nextAttempt: update.nextAttempt, lastError: update.lastError,
                attempt: Self.filled(attempt, update.results, update.recipients)
            )
            if !recorded {
                logger.warning("delivery claim lost before the attempt was recorded; the message may be delivered again")
            }
        } catch {
            logger.error("cannot record delivery attempt", metadata: ["error.message": "\(ErrorText.describe(error))"])
        }
    }

    /// `attempt` with the reply each recipient tried got, and the state it is recorded
    /// in (`recipients`: a failure whose bounce could not be queued stays pending).
    static func filled(_ attempt: DeliveryAttempt, _ results: [DeliveryUpdate.Result], _ recipients: [SpoolRecipient]) -> DeliveryAttempt {
        var attempt = attempt
        attempt.recipients = results.map { result in
            let state: DeliveryAttempt.State = switch recipients[result.index].state {
            case .delivered: .delivered
            case .failed: .failed
            case .pending: .deferred
            }
            let reply = result.reply
            return DeliveryAttempt.Recipient(
                address: result.address, code: reply.code, enhancedStatus: reply.enhancedCode, text: reply.lines.joined(separator: " / "), state: state
            )
        }
        return attempt
    }
}
