/// What a stage answers for one phase.
public enum PolicyVerdict: Sendable, Hashable {
    /// No objection: ask the next stage. The end of the pipeline means accept.
    case `continue`
    /// Accept now and stop evaluating this phase.
    case accept
    /// Refuse permanently; the reply code must be 5xx.
    case reject(PolicyReply)
    /// Refuse temporarily; the reply code must be 4xx.
    case `defer`(PolicyReply)
    /// Answer (normally 421) and close the connection.
    case disconnect(PolicyReply)

    /// The short name used in logs, metrics and decision traces.
    public var name: String {
        switch self {
        case .continue: return "continue"
        case .accept: return "accept"
        case .reject: return "reject"
        case .defer: return "defer"
        case .disconnect: return "disconnect"
        }
    }

    /// The reply carried by a refusing verdict.
    public var reply: PolicyReply? {
        switch self {
        case .continue, .accept: return nil
        case .reject(let r), .defer(let r), .disconnect(let r): return r
        }
    }
}

/// A stage's answer: the verdict, a reason for the decision trace, and facts to attach
/// to the session for later stages, routing, logs and the queue.
public struct PolicyDecision: Sendable, Hashable {
    public var verdict: PolicyVerdict
    /// Why, in a few words; recorded in the decision trace and shown by `tollgate explain`.
    public var reason: String
    /// Facts to merge into the session (see ``SessionFacts/merge(_:)``).
    public var facts: SessionFacts
    /// At the `data` phase, changes to the message, applied in order when the verdict
    /// is `continue` or `accept` (ignored otherwise, and at other phases).
    public var changes: [MessageChange]

    public init(_ verdict: PolicyVerdict, reason: String = "", facts: SessionFacts = SessionFacts(), changes: [MessageChange] = []) {
        self.verdict = verdict
        self.reason = reason
        self.facts = facts
        self.changes = changes
    }

    public static let `continue` = PolicyDecision(.continue)
}
