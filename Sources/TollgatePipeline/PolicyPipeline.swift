import Logging
import NIOConcurrencyHelpers
import NIOCore
import SMTPCore
import TollgatePolicy

#if canImport(Glibc)
import Glibc
import TollgateConfiguration
import TollgateMetrics
#endif

/// The ordered pipeline of policy stages. For each phase it asks the stages in turn:
/// `continue` goes on, `accept` stops with acceptance, `reject`/`defer`/`disconnect`
/// stop with that answer; the end of the pipeline means accept. Each call has a time
/// limit; a stage that fails or times out gives its `on_error` answer.
public final class PolicyPipeline: Sendable {
    public struct Stage: Sendable {
        public var name: String
        public var stage: any PolicyStage
        public var timeout: Double
        public var onError: TollgateConfiguration.OnError
        /// `shadow`: the stage's verdicts are recorded, never applied.
        public var mode: TollgateConfiguration.StageMode
        /// The phases the stage decides, read once.
        public let phases: Set<PolicyPhase>
        /// Where it runs (a signer runs last), read once.
        public let placement: StagePlacement

        public init(name: String, stage: any PolicyStage, timeout: Double, onError: TollgateConfiguration.OnError, mode: TollgateConfiguration.StageMode = .enforce) {
            self.name = name
            self.stage = stage
            self.timeout = timeout
            self.onError = onError
            self.mode = mode
            self.phases = stage.phases
            self.placement = stage.placement
        }
    }

    public let stages: [Stage]
    private let logger: Logger
    private let metrics: RelayMetrics?
    /// The phases at least one stage decides.
    public let phases: Set<PolicyPhase>

    /// `stages` in configuration order; those placed ``StagePlacement/last`` are moved
    /// after the others, keeping their order.
    public init(stages: [Stage], logger: Logger, metrics: RelayMetrics? = nil) {
        self.stages = stages.filter { $0.placement != .last } + stages.filter { $0.placement == .last }
        self.logger = logger
        self.metrics = metrics
        self.phases = stages.reduce(into: []) { $0.formUnion($1.phases) }
    }

    public var isEmpty: Bool { stages.isEmpty }

    /// Asks the stages that decide `context.phase`, in order, in one task. Each stage
    /// has its time limit; when one runs out, the phase ends with that stage's
    /// `on_error` answer at once (every `on_error` answer ends a phase) and the stage
    /// is left to finish on its own.
    public func evaluate(_ context: PolicyContext) async -> PolicyOutcome {
        let deciding = stages.filter { $0.phases.contains(context.phase) }
        guard !deciding.isEmpty else { return PolicyOutcome(verdict: .continue) }
        return await withCheckedContinuation { continuation in
            let answer = PhaseAnswer(continuation)
            Task { await self.run(deciding, context, answer) }
        }
    }

    private func run(_ deciding: [Stage], _ context: PolicyContext, _ answer: PhaseAnswer) async {
        var context = context
        // An `accept` ends the phase for the stages in configuration order; those
        // placed last (signers) still run on the final message.
        var accepted = false
        for stage in deciding {
            if accepted, stage.placement != .last { continue }
            if stage.mode == .shadow {
                let (decision, elapsed) = await shadowDecision(stage, context)
                answer.update { progress in self.recordShadow(stage, decision, elapsed, phase: context.phase.rawValue, sessionID: context.sessionID, into: &progress) }
                continue
            }
            let started = monotonicSeconds()
            let phase = context.phase
            let asked = context
            let limit = StageWatchdog.shared.arm(after: stage.timeout) {
                let elapsed = (monotonicSeconds() - started) * 1000
                let decision = self.errorDecision(stage, error: StageTimeout(seconds: stage.timeout), phase: phase)
                answer.resume { progress in self.record(stage, decision, elapsed, context: asked, into: &progress) }
            }
            var decision: PolicyDecision
            do {
                decision = try await stage.stage.evaluate(context)
            } catch {
                guard StageWatchdog.shared.disarm(limit) else { return }
                let failed = errorDecision(stage, error: error, phase: phase)
                answer.resume { progress in self.record(stage, failed, (monotonicSeconds() - started) * 1000, context: context, into: &progress) }
                return
            }
            // The limit fired while the stage ran: the phase is answered already.
            guard StageWatchdog.shared.disarm(limit) else { return }
            let elapsed = (monotonicSeconds() - started) * 1000
            if decision.verdict != .continue, decision.verdict != .accept {
                answer.resume { progress in self.record(stage, decision, elapsed, context: context, into: &progress) }
                return
            }
            if !decision.changes.isEmpty, phase == .data, let message = context.message {
                do {
                    let changed = try message.applying(decision.changes)
                    context.message = changed
                    context.headers = changed.unfoldedHeaders
                    context.messageSize = changed.size
                    let summary = "changes: " + decision.changes.map(\.summary).joined(separator: " ")
                    decision.reason = decision.reason.isEmpty ? summary : decision.reason + "; " + summary
                    answer.update { $0.message = changed }
                } catch {
                    let failed = errorDecision(stage, error: error, phase: phase)
                    answer.resume { progress in self.record(stage, failed, elapsed, context: context, into: &progress) }
                    return
                }
            }
            if !decision.changes.isEmpty, phase == .mail || phase == .rcpt {
                let summary = "changes at data: " + decision.changes.map(\.summary).joined(separator: " ")
                decision.reason = decision.reason.isEmpty ? summary : decision.reason + "; " + summary
                answer.update { $0.pendingChanges += decision.changes }
            }
            if !decision.envelopeChanges.isEmpty, phase == .data {
                if let bad = decision.envelopeChanges.first(where: { !$0.isWellFormed }) {
                    let failed = errorDecision(stage, error: MalformedEnvelopeChange(change: bad), phase: phase)
                    answer.resume { progress in self.record(stage, failed, elapsed, context: context, into: &progress) }
                    return
                }
                let summary = "envelope: " + decision.envelopeChanges.map(\.summary).joined(separator: " ")
                decision.reason = decision.reason.isEmpty ? summary : decision.reason + "; " + summary
                answer.update { $0.envelopeChanges += decision.envelopeChanges }
            }
            if decision.disposition != .deliver, phase == .mail || phase == .rcpt || phase == .data {
                let disposition = decision.disposition
                let summary: String
                switch disposition {
                case .hold(let why), .discard(let why): summary = why.isEmpty ? disposition.name : "\(disposition.name): \(why)"
                case .deliver: summary = ""
                }
                decision.reason = decision.reason.isEmpty ? summary : decision.reason + "; " + summary
                answer.update { if disposition > $0.disposition { $0.disposition = disposition } }
            }
            if decision.verdict == .accept { accepted = true }
            answer.update { progress in self.record(stage, decision, elapsed, context: context, into: &progress) }
            context.facts.merge(decision.facts)
        }
        answer.resume { progress in
            if accepted { progress.verdict = .accept }
        }
    }

    /// Adds one stage's decision to the phase's outcome: facts, trace, metrics, log.
    private func record(_ stage: Stage, _ decision: PolicyDecision, _ elapsed: Double, context: PolicyContext, into outcome: inout PolicyOutcome) {
        outcome.verdict = decision.verdict
        outcome.facts.merge(decision.facts)
        outcome.trace.append(PolicyTraceEntry(phase: context.phase.rawValue, stage: stage.name, verdict: decision.verdict.name, reason: decision.reason, milliseconds: elapsed))
        metrics?.stageDecided(stage: stage.name, phase: context.phase.rawValue, verdict: decision.verdict.name, seconds: elapsed / 1000)
        if decision.verdict != .continue || !decision.reason.isEmpty {
            var metadata: Logger.Metadata = [
                "smtp.session.id": "\(context.sessionID)", "policy.stage": "\(stage.name)", "policy.phase": "\(context.phase.rawValue)",
                "policy.verdict": "\(decision.verdict.name)", "policy.reason": "\(decision.reason)",
            ]
            // A refusal by a stage is the `event=refused` line of SPEC §8 (dry runs aside).
            if decision.verdict.reply != nil, !context.dryRun {
                metadata["event"] = "refused"
                metadata["client.address"] = "\(context.clientAddress)"
                metadata["policy.user"] = "\(context.facts.user ?? context.authenticatedUser ?? "-")"
                metadata["smtp.reply"] = "\(decision.verdict.reply.map { "\($0.code) \($0.enhancedCode ?? "") \($0.text)" } ?? "")"
                if let sender = context.sender { metadata["smtp.mail.from"] = "\(sender)" }
                if let recipient = context.recipient { metadata["smtp.rcpt.to"] = "\(recipient)" }
            }
            logger.log(level: decision.verdict == .continue ? .debug : .info, "policy decision", metadata: metadata)
        }
    }

    /// A shadow stage's would-be decision, within its time limit; a failure or a
    /// timeout is its `on_error` answer, recorded like any other verdict.
    private func shadowDecision(_ stage: Stage, _ context: PolicyContext) async -> (PolicyDecision, Double) {
        let started = monotonicSeconds()
        let result = await withTimeout(stage.timeout) { try await stage.stage.evaluate(context) }
        let elapsed = (monotonicSeconds() - started) * 1000
        switch result {
        case .success(let decision): return (decision, elapsed)
        case .failure(let error): return (errorDecision(stage, error: error, phase: context.phase), elapsed)
        }
    }

    /// Records a shadow stage's verdict — trace, metric, log — and nothing else: its
    /// facts and its answer do not reach the session.
    private func recordShadow(_ stage: Stage, _ decision: PolicyDecision, _ elapsed: Double, phase: String, sessionID: String, into outcome: inout PolicyOutcome) {
        outcome.trace.append(PolicyTraceEntry(phase: phase, stage: stage.name, verdict: decision.verdict.name, reason: decision.reason, milliseconds: elapsed, shadow: true))
        metrics?.shadowDecided(stage: stage.name, phase: phase, verdict: decision.verdict.name)
        logger.log(
            level: decision.verdict == .continue ? .debug : .info,
            "shadow policy decision",
            metadata: [
                "smtp.session.id": "\(sessionID)", "policy.stage": "\(stage.name)", "policy.phase": "\(phase)",
                "policy.verdict": "\(decision.verdict.name)", "policy.reason": "\(decision.reason)", "policy.mode": "shadow",
            ]
        )
    }

    private func errorDecision(_ stage: Stage, error: any Error, phase: PolicyPhase) -> PolicyDecision {
        logger.warning("policy stage failed", metadata: ["policy.stage": "\(stage.name)", "policy.phase": "\(phase.rawValue)", "error.message": "\(ErrorText.describe(error))"])
        switch stage.onError {
        case .defer:
            return PolicyDecision(.defer(PolicyReply(code: 451, enhancedCode: "4.3.0", text: "Temporary policy failure, try again later")), reason: "stage failed: \(error)")
        case .accept:
            return PolicyDecision(.accept, reason: "stage failed, on_error accept: \(error)")
        case .reject:
            return PolicyDecision(.reject(PolicyReply(code: 550, enhancedCode: "5.7.1", text: "Policy failure")), reason: "stage failed, on_error reject: \(error)")
        }
    }

    /// Asks the stages that authenticate, in order, until one answers. A failure or
    /// timeout of a verifier is a temporary failure (454), never a success.
    public func authenticate(_ credentials: AuthCredentials, context: PolicyContext) async -> (AuthOutcome, [PolicyTraceEntry]) {
        var trace: [PolicyTraceEntry] = []
        for stage in stages {
            let started = monotonicSeconds()
            let result = await withTimeout(stage.timeout) { try await stage.stage.authenticate(credentials, context: context) }
            let elapsed = (monotonicSeconds() - started) * 1000
            let outcome: AuthOutcome
            switch result {
            case .success(let o): outcome = o
            case .failure(let error): outcome = .temporaryFailure(reason: "\(stage.name) failed: \(error)")
            }
            let (verdict, reason): (String, String) = {
                switch outcome {
                case .notHandled: return ("continue", "")
                case .success: return ("accept", "credentials verified")
                case .failure(let r): return ("reject", r)
                case .temporaryFailure(let r): return ("defer", r)
                }
            }()
            if stage.mode == .shadow {
                // A shadow verifier's answer is recorded; the login is decided by the others.
                if case .notHandled = outcome { continue }
                trace.append(PolicyTraceEntry(phase: "auth", stage: stage.name, verdict: verdict, reason: reason, milliseconds: elapsed, shadow: true))
                metrics?.shadowDecided(stage: stage.name, phase: "auth", verdict: verdict)
                logger.info("shadow policy decision", metadata: ["policy.stage": "\(stage.name)", "policy.phase": "auth", "policy.verdict": "\(verdict)", "policy.reason": "\(reason)", "policy.mode": "shadow"])
                continue
            }
            metrics?.stageDecided(stage: stage.name, phase: "auth", verdict: verdict, seconds: elapsed / 1000)
            if case .notHandled = outcome { continue }
            trace.append(PolicyTraceEntry(phase: "auth", stage: stage.name, verdict: verdict, reason: reason, milliseconds: elapsed))
            return (outcome, trace)
        }
        return (.notHandled, trace)
    }

    public func messageAccepted(_ message: AcceptedMessage) async {
        for stage in stages {
            await stage.stage.messageAccepted(message)
        }
    }

    public func sessionClosed(sessionID: String) async {
        for stage in stages { await stage.stage.sessionClosed(sessionID: sessionID) }
    }

    public func shutdown() async {
        for stage in stages { await stage.stage.shutdown() }
    }
}

/// Monotonic seconds, for latency measurements.
func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

struct StageTimeout: Error, CustomStringConvertible {
    var seconds: Double
    var description: String { "timed out after \(seconds)s" }
}

/// Runs `operation` with a time limit; the result or the error (including a timeout).
/// The operation runs in its own task, so a stage stuck in a blocking call cannot
/// hold the session past its limit. The limit is kept by ``StageWatchdog``.
func withTimeout<T: Sendable>(
    _ seconds: Double,
    _ operation: @escaping @Sendable () async throws -> T
) async -> Result<T, any Error> {
    let slot = NIOLockedValueBox<CheckedContinuation<Result<T, any Error>, Never>?>(nil)
    let finish: @Sendable (Result<T, any Error>) -> Void = { result in
        slot.withLockedValue { c in
            c?.resume(returning: result)
            c = nil
        }
    }
    return await withCheckedContinuation { continuation in
        slot.withLockedValue { $0 = continuation }
        let limit = StageWatchdog.shared.arm(after: seconds) {
            finish(.failure(StageTimeout(seconds: seconds)))
        }
        Task {
            let result: Result<T, any Error>
            do { result = .success(try await operation()) } catch { result = .failure(error) }
            StageWatchdog.shared.disarm(limit)
            finish(result)
        }
    }
}

/// The answer to one phase, given once: by the stage loop, or by a stage's time limit.
final class PhaseAnswer: Sendable {
    private struct State {
        var continuation: CheckedContinuation<PolicyOutcome, Never>?
        var outcome = PolicyOutcome(verdict: .continue)
    }

    private let state: NIOLockedValueBox<State>

    init(_ continuation: CheckedContinuation<PolicyOutcome, Never>) {
        state = NIOLockedValueBox(State(continuation: continuation))
    }

    /// Adds to the outcome while the phase is still open.
    func update(_ change: (inout PolicyOutcome) -> Void) {
        state.withLockedValue { s in
            if s.continuation != nil { change(&s.outcome) }
        }
    }

    /// Completes the outcome and answers, unless the phase was answered already.
    func resume(_ change: (inout PolicyOutcome) -> Void) {
        let answer = state.withLockedValue { s -> (CheckedContinuation<PolicyOutcome, Never>, PolicyOutcome)? in
            guard let c = s.continuation else { return nil }
            change(&s.outcome)
            s.continuation = nil
            return (c, s.outcome)
        }
        if let (c, outcome) = answer { c.resume(returning: outcome) }
    }
}

/// A stage asked for an envelope change with an address the relay cannot use.
struct MalformedEnvelopeChange: Error, CustomStringConvertible {
    var change: EnvelopeChange
    var description: String { "cannot apply \(change.summary): not a usable address" }
}

extension EnvelopeChange {
    /// An address without brackets, spaces or control characters; recipients need a
    /// local part and a domain, a sender may be empty (the null sender).
    var isWellFormed: Bool {
        func usable(_ address: String) -> Bool {
            !address.utf8.contains { $0 <= 0x20 || $0 == 0x7F || $0 == UInt8(ascii: "<") || $0 == UInt8(ascii: ">") } && address.utf8.count <= 254
        }
        switch self {
        case .changeSender(let a): return a.isEmpty || (usable(a) && a.contains("@"))
        case .addRecipient(let a), .removeRecipient(let a):
            guard usable(a), let at = a.lastIndex(of: "@") else { return false }
            return at != a.startIndex && a.index(after: at) != a.endIndex
        }
    }
}
