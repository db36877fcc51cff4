import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SMTPCore
import SMTPServer
import TollgatePolicy
import TollgateConfiguration
import TollgatePipeline
import TollgateSpool
import TollgateDelivery
import TollgateMetrics

/// Connects sessions to the rest of the relay: it turns the session's requests into
/// policy contexts and the pipeline's verdicts into session decisions, and stores
/// accepted messages in the spool for the queue runner.
public final class RelaySessionDelegate: SMTPSessionDelegate {
    public typealias Annotations = RelayAnnotations

    public let policy: RelayPolicyEvaluator
    let spool: any Spool
    let runner: QueueRunner?
    let metrics: RelayMetrics?
    /// The plugins' counters: a transaction's reservations are committed when its
    /// message is accepted and released when it ends otherwise.
    let counters: (any PolicyCounterStore)?
    let logger: Logger
    /// This relay's name in the `Received:` header.
    let hostname: String
    /// How long a session waits for its message to be stored (`limits.store_timeout`).
    let storeTimeout: TimeAmount
    /// Where the store deadline's timer runs.
    let timers: any EventLoopGroup

    public init(policy: RelayPolicyEvaluator, spool: any Spool, runner: QueueRunner?, metrics: RelayMetrics?, counters: (any PolicyCounterStore)? = nil, hostname: String, storeTimeout: TimeAmount = .seconds(120), timers: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger) {
        self.policy = policy
        self.counters = counters
        self.storeTimeout = storeTimeout
        self.timers = timers
        self.hostname = hostname
        self.spool = spool
        self.runner = runner
        self.metrics = metrics
        self.logger = logger
    }

    public func needsDecision(_ phase: SessionPhase) -> Bool { policy.needsEvaluation(PolicyPhase(phase)) }

    public func decide(_ request: PolicyRequest<RelayAnnotations>) async -> SessionDecision<RelayAnnotations> {
        enter()
        defer { leave() }
        var context = PolicyContext(request)
        // A new transaction: what an earlier one of the session reserved and did not
        // commit (refused, RSET) is let go first.
        if context.phase == .mail, let counters { await counters.release(sessionID: request.session.sessionID) }
        // The transaction's queue id, from its first decision on (kept in its annotations).
        var minted: String?
        if request.envelope != nil, context.queueID == nil {
            minted = spool.makeQueueID()
            context.queueID = minted
        }
        // Changes asked at MAIL/RCPT (a policy server's PREPEND) come first: the
        // data-phase stages, a signer among them, see the message with them.
        var prepared: MessageContent?
        if context.phase == .data, !request.annotations.pendingChanges.isEmpty, let message = context.message {
            do {
                let changed = try message.applying(request.annotations.pendingChanges)
                (context.message, context.headers, context.messageSize) = (changed, changed.unfoldedHeaders, changed.size)
                prepared = changed
            } catch {
                logger.error("cannot apply the message changes stages asked for before DATA", metadata: ["smtp.session.id": "\(request.session.sessionID)", "error.message": "\(ErrorText.describe(error))"])
                return SessionDecision(.refuse(SMTPReply(451, "4.3.0", "Temporary policy failure, try again later")), annotations: RelayAnnotations())
            }
        }
        let outcome = await policy.evaluate(context, applied: request.annotations.department?.info.name)
        var annotations = RelayAnnotations(facts: outcome.facts, trace: outcome.trace, department: outcome.department, message: outcome.message ?? prepared)
        annotations.pendingChanges = outcome.pendingChanges
        annotations.envelopeChanges = outcome.envelopeChanges
        annotations.disposition = outcome.disposition
        annotations.queueID = minted
        return SessionDecision(.init(outcome.verdict), annotations: annotations, limits: annotations.limits)
    }

    /// The sessions that use this delegate (and its pipeline) now, the calls into its
    /// stages still running (a decision a client left during, a store past its
    /// deadline, the end-of-session notices), and who waits for both to end
    /// (``sessionsEnded()``).
    private struct Use {
        var open: Set<String> = []
        var running = 0
        var waiting: [CheckedContinuation<Void, Never>] = []
    }
    private let use = NIOLockedValueBox(Use())

    public func sessionOpened(sessionID: String) {
        _ = use.withLockedValue { $0.open.insert(sessionID) }
    }

    /// Returns once no session uses this delegate and no call into its stages runs:
    /// after a reload, the old pipeline's stages are shut down only then, however long
    /// its last session lasts.
    public func sessionsEnded() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let idle = use.withLockedValue { state -> Bool in
                if state.open.isEmpty, state.running == 0 { return true }
                state.waiting.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
    }

    /// A call into the stages begins; ``leave()`` when it ends.
    func enter() { use.withLockedValue { $0.running += 1 } }

    func leave() {
        let waiting = use.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.running -= 1
            guard state.open.isEmpty, state.running == 0 else { return [] }
            defer { state.waiting = [] }
            return state.waiting
        }
        for continuation in waiting { continuation.resume() }
    }

    public func sessionClosed(sessionID: String) {
        enter()
        _ = use.withLockedValue { $0.open.remove(sessionID) }
        let pipeline = policy.setup.pipeline
        guard !pipeline.isEmpty else {
            leave()
            return
        }
        let counters = self.counters
        Task {
            await counters?.release(sessionID: sessionID)
            await pipeline.sessionClosed(sessionID: sessionID)
            self.leave()
        }
    }

    public func authenticate(_ credentials: SASLCredentials, _ request: PolicyRequest<RelayAnnotations>) async -> AuthResult<RelayAnnotations> {
        enter()
        defer { leave() }
        var logger = self.logger
        logger[metadataKey: "smtp.session.id"] = .string(request.session.sessionID)
        logger[metadataKey: "smtp.auth.user"] = .string(credentials.username)
        let (outcome, trace, department) = await policy.authenticate(
            AuthCredentials(username: credentials.username, password: credentials.password, mechanism: credentials.mechanism),
            context: PolicyContext(request),
            applied: request.annotations.department?.info.name
        )
        metrics?.authenticated(listener: request.session.listener, result: {
            switch outcome {
            case .success: "success"
            case .failure, .notHandled: "failure"
            case .temporaryFailure: "temporary_failure"
            }
        }())
        switch outcome {
        case .success(let facts):
            logger.info("authenticated", metadata: ["policy.user": "\(facts.user ?? credentials.username)"])
            let annotations = RelayAnnotations(facts: facts, trace: trace, department: department)
            return AuthResult(.success(user: facts.user ?? credentials.username), annotations: annotations, limits: annotations.limits)
        case .failure(let reason):
            logger.notice("authentication failed", metadata: ["smtp.auth.reason": "\(reason)"])
            return AuthResult(.failure, annotations: RelayAnnotations(facts: SessionFacts(), trace: trace))
        case .temporaryFailure(let reason):
            logger.warning("authentication unavailable", metadata: ["smtp.auth.reason": "\(reason)"])
            return AuthResult(.temporaryFailure, annotations: RelayAnnotations(facts: SessionFacts(), trace: trace))
        case .notHandled:
            logger.notice("no stage verified the credentials")
            return AuthResult(.failure, annotations: RelayAnnotations(facts: SessionFacts(), trace: trace))
        }
    }

    /// Stores the message; the session gets `250` only once it is committed. A store
    /// slower than ``storeTimeout`` (a disk in trouble) answers `451 4.3.0` instead of
    /// holding the session: the store goes on, and if it commits the message is kept
    /// and delivered — twice, if the client sends it again (a duplicate, never a loss).
    public func store(_ request: StoreRequest<RelayAnnotations>) async throws -> String {
        enter()
        defer { leave() }
        var request = request
        // Changes asked at MAIL/RCPT when no stage decides DATA (so `decide` did not
        // apply them): applied here, before the message is stored.
        if request.annotations.message == nil, !request.annotations.pendingChanges.isEmpty {
            request.annotations.message = try MessageContent(buffer: request.message.content).applying(request.annotations.pendingChanges)
        }
        let queueID = request.annotations.queueID ?? spool.makeQueueID()
        let receivedAt = Date().timeIntervalSince1970
        var message = SpoolMessage(request, id: queueID, receivedAt: receivedAt, hostname: hostname)
        let annotations = request.annotations
        if !annotations.envelopeChanges.isEmpty {
            for address in message.apply(annotations.envelopeChanges) {
                logger.notice("a stage removed a recipient the message does not have", metadata: ["smtp.session.id": "\(request.session.sessionID)", "smtp.rcpt.to": "\(address)"])
            }
        }
        var disposition = annotations.disposition
        if message.recipients.isEmpty, disposition < .discard(reason: "") {
            disposition = .discard(reason: "every recipient was removed by a stage")
        }
        switch disposition {
        case .deliver:
            break
        case .hold:
            // Why is in the decision trace (`queue show`).
            message.state = .held
        case .discard(let reason):
            // Accepted and dropped, as Postfix's DISCARD: the client is told 250.
            logger.notice(
                "discarded",
                metadata: [
                    "smtp.session.id": "\(request.session.sessionID)", "queue.id": "\(queueID)",
                    "smtp.mail.from": "\(request.envelope.sender)", "smtp.rcpt.count": "\(request.envelope.recipients.count)",
                    "message.size": "\(request.message.size)", "policy.reason": "\(reason)",
                    "policy.trace": "\(annotations.trace.map { "\($0.phase)/\($0.stage)=\($0.verdict)" }.joined(separator: " "))",
                ]
            )
            metrics?.messageDiscarded()
            // Accepted all the same: it counts against the sender's limits.
            await counters?.commit(sessionID: request.session.sessionID, now: receivedAt)
            return queueID
        }
        // The store may outlive the session's wait (store_timeout): it counts as a use
        // of the stages (it tells them of the accepted message) until it ends.
        enter()
        let outcome = await Self.first(within: storeTimeout, on: timers.any()) { [self, message, request] in
            defer { self.leave() }
            try await insert(message, request)
        }
        switch outcome {
        case .done: return queueID
        case .failed(let error):
            await counters?.release(sessionID: request.session.sessionID)
            throw error
        case .timedOut:
            logger.warning(
                "the spool did not store the message within limits.store_timeout; answered 451, the store goes on",
                metadata: ["smtp.session.id": "\(request.session.sessionID)", "queue.id": "\(queueID)"]
            )
            throw StoreTimedOut()
        }
    }

    struct StoreTimedOut: Error, CustomStringConvertible {
        var description: String { "the spool did not store the message in time" }
    }

    enum Outcome: Sendable {
        case done, failed(any Error), timedOut
    }

    /// Runs `operation` to its end, but answers after `timeout` at the latest. The
    /// deadline is a timer on `eventLoop`, cancelled when the operation ends: a
    /// cancelled `Task.sleep` keeps its memory (about 700 bytes) until its original
    /// deadline on this platform, which at every message's rate for minutes adds up.
    static func first(within timeout: TimeAmount, on eventLoop: any EventLoop, _ operation: @escaping @Sendable () async throws -> Void) async -> Outcome {
        await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
            let answered = NIOLockedValueBox(false)
            @Sendable func answer(_ outcome: Outcome) {
                let first = answered.withLockedValue { done -> Bool in
                    defer { done = true }
                    return !done
                }
                if first { continuation.resume(returning: outcome) }
            }
            let timer = eventLoop.scheduleTask(in: timeout) { answer(.timedOut) }
            Task {
                do {
                    try await operation()
                    answer(.done)
                } catch {
                    answer(.failed(error))
                }
                timer.cancel()
            }
        }
    }

    /// The store itself and what follows it, whether or not the session still waits.
    private func insert(_ message: SpoolMessage, _ request: StoreRequest<RelayAnnotations>) async throws {
        let queueID = message.id
        // With a free delivery slot, the message is stored claimed and delivered from
        // memory at once; otherwise the runner finds it in the queue.
        let reservation = message.state == .held ? nil : runner?.reserve()
        do {
            try await spool.insert(message, claim: reservation?.claim)
        } catch {
            if let reservation { runner?.cancel(reservation) }
            metrics?.storeFailed()
            throw error
        }
        // Counted once stored, even if the session was answered 451 meanwhile (the
        // message will be delivered).
        await counters?.commit(sessionID: request.session.sessionID, now: message.createdAt)
        metrics?.messageAccepted()
        metrics?.messageReceived(listener: request.session.listener, bytes: message.size)
        if let reservation {
            runner?.deliverStored(message, reservation)
        } else {
            runner?.wake()
        }
        logger.info(
            "message accepted",
            metadata: [
                "event": "accepted",
                "smtp.session.id": "\(request.session.sessionID)",
                "queue.id": "\(queueID)",
                "client.address": "\(request.session.clientAddress)",
                "policy.user": "\(request.annotations.facts.user ?? request.session.authenticatedUser ?? "-")",
                "smtp.mail.from": "\(request.envelope.sender)",
                "smtp.rcpt.count": "\(message.recipients.count)",
                // What is stored and sent upstream: the Received: header added here and the
                // content as the stages left it (as tollgate_smtp_message_bytes_total counts).
                "message.size": "\(message.size)",
                "policy.trace": "\(request.annotations.trace.map { "\($0.phase)/\($0.stage)=\($0.verdict)" }.joined(separator: " "))",
                "policy.department": "\(request.annotations.facts.department ?? "-")",
                "queue.state": "\(message.state.rawValue)",
            ]
        )
        let pipeline = policy.setup.pipeline
        if !pipeline.isEmpty {
            // Counters count accepted mail: told with this transaction's data-phase context.
            var context = PolicyContext(request)
            context.queueID = queueID
            let accepted = AcceptedMessage(queueID: queueID, context: context)
            enter()
            Task {
                await pipeline.messageAccepted(accepted)
                self.leave()
            }
        }
    }
}
