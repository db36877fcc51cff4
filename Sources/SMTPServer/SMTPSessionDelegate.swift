import NIOCore
import SMTPCore
import TollgatePolicy

/// One line of a message's decision trace: which stage said what, at which phase.
public struct PolicyTraceEntry: Sendable, Hashable, Codable {
    public var phase: String
    public var stage: String
    public var verdict: String
    public var reason: String
    public var milliseconds: Double

    public init(phase: String, stage: String, verdict: String, reason: String, milliseconds: Double) {
        self.phase = phase
        self.stage = stage
        self.verdict = verdict
        self.reason = reason
        self.milliseconds = milliseconds
    }
}

/// The pipeline's answer for one phase.
public struct PolicyOutcome: Sendable {
    public var verdict: PolicyVerdict
    public var facts: SessionFacts
    public var trace: [PolicyTraceEntry]

    public init(verdict: PolicyVerdict, facts: SessionFacts = SessionFacts(), trace: [PolicyTraceEntry] = []) {
        self.verdict = verdict
        self.facts = facts
        self.trace = trace
    }
}

/// A message the session has fully received and the policy accepted, ready to store.
public struct ReceivedMessage: Sendable {
    public var queueID: String
    public var transaction: Transaction
    /// The canonical content, `Received:` header first.
    public var content: ByteBuffer
    public var sessionID: String
    public var listener: String
    public var clientAddress: String
    public var helo: String?
    public var tls: Bool
    public var authenticatedUser: String?
    public var facts: SessionFacts
    public var trace: [PolicyTraceEntry]
    public var receivedAt: Double
}

/// What a session needs from the rest of the relay: policy decisions, credential
/// checks, queue ids and durable storage. The session's single decision point.
public protocol SMTPSessionDelegate: Sendable {
    /// Whether `phase` needs the pipeline; when not, it continues without leaving the
    /// event loop.
    func needsEvaluation(_ phase: PolicyPhase) -> Bool
    /// Runs the pipeline for one phase.
    func evaluate(_ context: PolicyContext) async -> PolicyOutcome
    /// Verifies AUTH credentials through the authenticating stages.
    func authenticate(_ credentials: AuthCredentials, context: PolicyContext) async -> (AuthOutcome, [PolicyTraceEntry])
    /// A queue id that was never used before.
    func makeQueueID() -> String
    /// Stores the message durably; returns only once it is on disk (fsync'd).
    func store(_ message: ReceivedMessage) async throws
    /// Told after the 250 was decided, for counters of accepted mail.
    func messageAccepted(_ message: ReceivedMessage, context: PolicyContext) async
}
