import TollgatePolicy
import TollgateConfiguration
import TollgateMetrics
import SMTPCore

/// One line of a message's decision trace: which stage said what, at which phase.
public struct PolicyTraceEntry: Sendable, Hashable, Codable {
    public var phase: String
    public var stage: String
    public var verdict: String
    public var reason: String
    public var milliseconds: Double
    /// The stage runs in shadow mode: the verdict is what it would have said, not applied.
    public var shadow: Bool

    public init(phase: String, stage: String, verdict: String, reason: String, milliseconds: Double, shadow: Bool = false) {
        self.phase = phase
        self.stage = stage
        self.verdict = verdict
        self.reason = reason
        self.milliseconds = milliseconds
        self.shadow = shadow
    }

    /// The verdict as the trace shows it: `reject (shadow)` for a shadow stage's.
    public var shownVerdict: String { shadow ? "\(verdict) (shadow)" : verdict }
}

/// The pipeline's answer for one phase.
public struct PolicyOutcome: Sendable {
    public var verdict: PolicyVerdict
    public var facts: SessionFacts
    public var trace: [PolicyTraceEntry]
    /// The department whose route and size limit apply from now on, when this phase
    /// assigned one (or a different one).
    public var department: DepartmentPolicies.Department?
    /// At `data`, the message as the stages changed it; `nil` when none did.
    public var message: MessageContent?
    /// At `mail` and `rcpt`, message changes the stages asked for, to be applied
    /// before the `data` stages run (kept by the session with its transaction).
    public var pendingChanges: [MessageChange] = []
    /// At `data`, the envelope changes the stages asked for, in order.
    public var envelopeChanges: [EnvelopeChange] = []
    /// The strongest disposition any stage of this phase gave.
    public var disposition: MessageDisposition = .deliver

    public init(verdict: PolicyVerdict, facts: SessionFacts = SessionFacts(), trace: [PolicyTraceEntry] = [], department: DepartmentPolicies.Department? = nil, message: MessageContent? = nil) {
        self.message = message
        self.verdict = verdict
        self.facts = facts
        self.trace = trace
        self.department = department
    }
}
