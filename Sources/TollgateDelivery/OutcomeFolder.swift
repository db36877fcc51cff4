import SMTPCore
import TollgateConfiguration
import TollgateSpool
import TollgateMetrics

/// Folds one delivery attempt into the message's new state: which recipients are done,
/// when to try again (`delivery.retry`), and which failures a DSN reports. Pure: the
/// clock is an argument, and nothing here touches the spool or the network.
public struct OutcomeFolder: Sendable {
    public var schedule: RetrySchedule

    public init(schedule: RetrySchedule) {
        self.schedule = schedule
    }

    /// The outcome of a message that is not tried at all: every pending recipient
    /// fails when an administrator bounced it (`tollgate queue bounce`) or when it has
    /// outlived `delivery.max_lifetime`. `nil` means: try the upstream.
    public func decidedWithoutAttempt(_ message: SpoolMessage, now: Double) -> DeliveryOutcome? {
        let pending = message.recipients.indices.filter { message.recipients[$0].state == .pending }
        if message.bounceRequested {
            return .all(pending, SMTPReply(554, "5.0.0", "bounced by the administrator"))
        }
        if schedule.expired(createdAt: message.createdAt, now: now) {
            let last = message.lastError ?? "no delivery attempt succeeded"
            return .all(pending, SMTPReply(554, "5.4.7", "delivery time expired: \(last)"))
        }
        return nil
    }

    /// Applies `outcome` to `message`'s pending recipients (2xx delivered, 5xx failed,
    /// 4xx or no reply still pending) and plans what follows.
    public func fold(_ message: SpoolMessage, _ outcome: DeliveryOutcome, now: Double) -> DeliveryUpdate {
        var update = DeliveryUpdate(recipients: message.recipients)
        var failures: [BounceBuilder.Failure] = []
        var lastFailure: String?
        for i in update.recipients.indices where update.recipients[i].state == .pending {
            let reply = outcome.replies[i] ?? SMTPReply(451, "4.3.0", "not attempted")
            update.recipients[i].attempts += 1
            update.recipients[i].lastReply = reply.description
            let disposition: DeliveryUpdate.Disposition
            if reply.isPositive {
                update.recipients[i].state = .delivered
                disposition = .sent
            } else if reply.isPermanent {
                update.recipients[i].state = .failed
                failures.append(.init(recipient: update.recipients[i], diagnostic: reply.description, remoteMTA: outcome.remoteMTA))
                lastFailure = reply.description
                disposition = .bounced
            } else {
                update.lastError = reply.description
                disposition = .deferred
            }
            update.results.append(.init(index: i, address: update.recipients[i].address, reply: reply, disposition: disposition))
        }
        if update.lastError == nil { update.lastError = lastFailure }
        if update.recipients.contains(where: { $0.state == .pending }) {
            update.nextAttempt = now + schedule.delay(afterAttempt: message.attempts + 1)
        }
        let reportable = failures.filter { BounceBuilder.wantsFailureReport($0.recipient) }
        if BounceBuilder.mayBounce(message) {
            update.bounce = reportable
        } else {
            update.bounceSuppressed = !reportable.isEmpty
        }
        return update
    }

    /// When to try again after the bounce for a folded attempt could not be queued:
    /// the attempt is not recorded, so the failures are reported next time.
    public func retryAfterBounceFailure(now: Double) -> Double {
        now + schedule.delay(afterAttempt: 1)
    }
}
