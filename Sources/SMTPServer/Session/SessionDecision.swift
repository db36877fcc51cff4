import SMTPCore

/// Limits a decision may set for the rest of its scope, e.g. a department's message
/// size. `nil` fields leave the listener's limit in force.
public struct SessionLimits: Sendable, Hashable {
    /// The largest message accepted; the listener's limit still applies if smaller.
    public var maxMessageSize: Int?
    /// Where ``maxMessageSize`` comes from, for the log line of a refusal
    /// (e.g. `department finance`).
    public var source: String?

    public init(maxMessageSize: Int? = nil, source: String? = nil) {
        self.maxMessageSize = maxMessageSize
        self.source = source
    }
}

/// The application's answer for one phase of a session.
public struct SessionDecision<Annotations: SessionAnnotations>: Sendable {
    public enum Verdict: Sendable, Hashable {
        /// Go on with the command.
        case proceed
        /// Refuse this command with a 4xx or 5xx reply; the session goes on (at
        /// connect and after STARTTLS the session is closed).
        case refuse(SMTPReply)
        /// Send this reply (421) and close.
        case disconnect(SMTPReply)
    }

    public var verdict: Verdict
    /// What was learnt while deciding, kept in the phase's scope whatever the verdict.
    public var annotations: Annotations
    /// Limits replacing the scope's, if any.
    public var limits: SessionLimits?

    public init(_ verdict: Verdict, annotations: Annotations = Annotations(), limits: SessionLimits? = nil) {
        self.verdict = verdict
        self.annotations = annotations
        self.limits = limits
    }

    public static var proceed: Self { Self(.proceed) }
}

/// A verifier's answer to AUTH credentials.
public struct AuthResult<Annotations: SessionAnnotations>: Sendable {
    public enum Outcome: Sendable, Hashable {
        /// Good credentials; `user` is the canonical name.
        case success(user: String)
        /// Wrong credentials, or nobody verified them: `535 5.7.8`.
        case failure
        /// The verifier could not decide: `454 4.7.0`, never a success.
        case temporaryFailure
    }

    public var outcome: Outcome
    /// Kept for the session on success; on failure only for the record.
    public var annotations: Annotations
    public var limits: SessionLimits?

    public init(_ outcome: Outcome, annotations: Annotations = Annotations(), limits: SessionLimits? = nil) {
        self.outcome = outcome
        self.annotations = annotations
        self.limits = limits
    }
}
