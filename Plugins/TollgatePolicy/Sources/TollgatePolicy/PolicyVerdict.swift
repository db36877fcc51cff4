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
    /// Changes to the message, applied in order when the verdict is `continue` or
    /// `accept` (ignored otherwise). At `data` they apply at once, and later stages see
    /// the changed message; at `mail` and `rcpt` they are kept with the transaction and
    /// applied before the `data` stages run (a policy server's `PREPEND` at RCPT).
    /// RSET and a refused transaction drop them.
    public var changes: [MessageChange]
    /// Changes to the envelope (sender, recipients), honoured at the `data` phase only
    /// (a milter's end-of-message actions) when the verdict is `continue` or `accept`.
    public var envelopeChanges: [EnvelopeChange]
    /// What becomes of the message once accepted: delivered (the default), held in the
    /// queue, or discarded. Honoured at `mail`, `rcpt` and `data`; the strongest answer
    /// of the transaction wins (discard over hold over deliver).
    public var disposition: MessageDisposition

    public init(
        _ verdict: PolicyVerdict,
        reason: String = "",
        facts: SessionFacts = SessionFacts(),
        changes: [MessageChange] = [],
        envelopeChanges: [EnvelopeChange] = [],
        disposition: MessageDisposition = .deliver
    ) {
        self.verdict = verdict
        self.reason = reason
        self.facts = facts
        self.changes = changes
        self.envelopeChanges = envelopeChanges
        self.disposition = disposition
    }

    public static let `continue` = PolicyDecision(.continue)
}

/// What the relay does with a message the pipeline let through (``PolicyDecision/disposition``).
public enum MessageDisposition: Sendable, Hashable, Comparable {
    /// Queue it for delivery.
    case deliver
    /// Accept it (`250`) and keep it in the queue as `held` until an administrator
    /// releases it (Postfix's `HOLD`, a milter's quarantine). The reason is shown by
    /// `tollgate queue show` and in the decision trace.
    case hold(reason: String)
    /// Accept it (`250`) and drop it: it is not queued, and the relay logs that it was
    /// discarded and why (Postfix's `DISCARD`, a milter's discard).
    case discard(reason: String)

    /// The answer that wins when several stages give one: discard, then hold, then deliver.
    public var strength: Int {
        switch self {
        case .deliver: return 0
        case .hold: return 1
        case .discard: return 2
        }
    }

    public static func < (lhs: MessageDisposition, rhs: MessageDisposition) -> Bool { lhs.strength < rhs.strength }

    public var name: String {
        switch self {
        case .deliver: return "deliver"
        case .hold: return "hold"
        case .discard: return "discard"
        }
    }
}

/// A change to the envelope of the message under decision (``PolicyDecision/envelopeChanges``).
/// Addresses are written without angle brackets (`user@example.com`; `""` is the null
/// sender). A change the relay cannot make (an address it cannot parse, removing a
/// recipient the message does not have) is the stage's failure and yields its `on_error`.
public enum EnvelopeChange: Sendable, Hashable {
    /// Replaces the envelope sender (a milter's `SMFIR_CHGFROM`).
    case changeSender(String)
    /// Adds a recipient (`SMFIR_ADDRCPT`); one the message already has is ignored.
    case addRecipient(String)
    /// Removes a recipient (`SMFIR_DELRCPT`), matched without regard to case. Removing
    /// the last one discards the message.
    case removeRecipient(String)

    public var summary: String {
        switch self {
        case .changeSender(let a): return "from=<\(a)>"
        case .addRecipient(let a): return "+rcpt=<\(a)>"
        case .removeRecipient(let a): return "-rcpt=<\(a)>"
        }
    }
}
