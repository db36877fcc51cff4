import Logging
import NIOCore
import SMTPCore
import SMTPServer
import TollgatePolicy

/// Connects sessions to the rest of the relay: the policy pipeline, the spool and
/// the queue runner.
public final class RelaySessionDelegate: SMTPSessionDelegate {
    public let policy: RelayPolicyEvaluator
    let spool: any Spool
    let runner: QueueRunner?
    let metrics: RelayMetrics?

    public init(policy: RelayPolicyEvaluator, spool: any Spool, runner: QueueRunner?, metrics: RelayMetrics?) {
        self.policy = policy
        self.spool = spool
        self.runner = runner
        self.metrics = metrics
    }

    public func needsEvaluation(_ phase: PolicyPhase) -> Bool { policy.needsEvaluation(phase) }

    public func evaluate(_ context: PolicyContext) async -> PolicyOutcome {
        await policy.evaluate(context)
    }

    public func authenticate(_ credentials: AuthCredentials, context: PolicyContext) async -> (AuthOutcome, [PolicyTraceEntry]) {
        await policy.authenticate(credentials, context: context)
    }

    public func makeQueueID() -> String { spool.makeQueueID() }

    public func store(_ message: ReceivedMessage) async throws {
        let tx = message.transaction
        var envelope = SpoolEnvelope()
        envelope.eightBit = tx.parameters.body == .eightBitMIME || message.content.readableBytesView.contains { $0 >= 0x80 }
        envelope.smtpUTF8 = tx.parameters.smtpUTF8
        envelope.ret = tx.parameters.ret
        envelope.envelopeID = tx.parameters.envelopeID
        envelope.listener = message.listener
        envelope.clientAddress = message.clientAddress
        envelope.helo = message.helo
        envelope.tls = message.tls
        envelope.authenticatedUser = message.authenticatedUser
        envelope.user = message.facts.user ?? message.authenticatedUser
        envelope.department = message.facts.department
        envelope.tags = message.facts.tags
        envelope.trace = message.trace
        let recipients = tx.recipients.map {
            SpoolRecipient(address: $0.mailbox.description, notify: $0.parameters.notify, originalRecipient: $0.parameters.originalRecipient)
        }
        let spoolMessage = SpoolMessage(
            id: message.queueID,
            createdAt: message.receivedAt,
            sender: tx.sender.address,
            recipients: recipients,
            envelope: envelope,
            content: message.content,
            upstream: message.facts.tags["route.upstream"].flatMap { $0.isEmpty ? nil : $0 }
        )
        do {
            try await spool.insert(spoolMessage)
        } catch {
            metrics?.storeFailed()
            throw error
        }
        metrics?.messageAccepted()
        runner?.wake()
    }

    public func messageAccepted(_ message: ReceivedMessage, context: PolicyContext) async {
        guard !policy.setup.pipeline.isEmpty else { return }
        await policy.setup.pipeline.messageAccepted(AcceptedMessage(queueID: message.queueID, context: context))
    }
}
