import SMTPServer
import TollgatePolicy
import TollgateConfiguration
import TollgatePipeline
import TollgateSpool
import TollgateDelivery
import TollgateMetrics

/// What the relay attaches to a session and its transactions: the facts the stages
/// found, the decision trace, and the department whose route and size limit apply.
/// The session state machine keeps each in its scope (RSET drops a transaction's,
/// STARTTLS the client's).
public struct RelayAnnotations: SessionAnnotations {
    public var facts = SessionFacts()
    public var trace: [PolicyTraceEntry] = []
    /// The department assigned last (by client network at connect, by the user at auth).
    public var department: DepartmentPolicies.Department?
    /// The message as the data-phase stages changed it, if any did: what is stored.
    /// Set also when changes asked at `mail`/`rcpt` were applied at `data`.
    public var message: MessageContent?
    /// Message changes stages asked for at `mail` and `rcpt`, applied at `data`.
    public var pendingChanges: [MessageChange] = []
    /// Envelope changes the data-phase stages asked for, applied when stored.
    public var envelopeChanges: [EnvelopeChange] = []
    /// Deliver, hold or discard: the strongest answer of the transaction.
    public var disposition: MessageDisposition = .deliver
    /// The id the transaction's message is stored under, chosen when a stage first
    /// decides for the transaction (at MAIL, or at RCPT or DATA if none decides MAIL),
    /// so that the stages, policy servers and milters see the id the `250` gives.
    public var queueID: String?

    public init() {}

    public init(facts: SessionFacts, trace: [PolicyTraceEntry], department: DepartmentPolicies.Department? = nil, message: MessageContent? = nil) {
        self.message = message
        self.facts = facts
        self.trace = trace
        self.department = department
    }

    public mutating func merge(_ other: RelayAnnotations) {
        facts.merge(other.facts)
        trace += other.trace
        if let d = other.department { department = d }
        if let m = other.message { message = m }
        pendingChanges += other.pendingChanges
        envelopeChanges += other.envelopeChanges
        if other.disposition > disposition { disposition = other.disposition }
        if let q = other.queueID { queueID = q }
    }

    /// A refused command leaves its trace, not the user, facts or department it found.
    /// The queue id stays: a transaction keeps one id however many recipients are refused.
    public func keptOnRefusal() -> RelayAnnotations {
        var kept = RelayAnnotations(facts: SessionFacts(), trace: trace)
        kept.queueID = queueID
        return kept
    }

    /// The upstream this department's mail goes to, if it names one.
    public var route: String? { department?.upstream }

    /// The limits a newly assigned department sets.
    var limits: SessionLimits? {
        department.map { SessionLimits(maxMessageSize: $0.maxMessageSize, source: "department \($0.info.name) (\($0.file))") }
    }
}
