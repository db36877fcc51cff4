import TollgateConfiguration
/// A message without its content: what `queue list` prints.
public struct QueueListing: Sendable, Codable, Hashable {
    public var id: String
    public var createdAt: Double
    public var size: Int
    public var sender: String
    /// Recipients still pending.
    public var recipients: [String]
    public var state: QueueState
    public var attempts: Int
    public var lastError: String?
    public var nextAttempt: Double
    public var user: String?
    public var department: String?
    /// The node that accepted the message.
    public var acceptedBy: String
    /// The owner of the delivery claim: delivering it, or its lease ran out unrenewed.
    public var claimedBy: String?
    /// The upstream chosen at acceptance (a department's route); nil: the default
    /// route. (Absent from JSON written before it existed: decoded as nil.)
    public var upstream: String?

    public init(
        id: String, createdAt: Double, size: Int, sender: String, recipients: [String], state: QueueState,
        attempts: Int, lastError: String?, nextAttempt: Double, user: String?, department: String?,
        acceptedBy: String, claimedBy: String?, upstream: String? = nil
    ) {
        self.id = id
        self.createdAt = createdAt
        self.size = size
        self.sender = sender
        self.recipients = recipients
        self.state = state
        self.attempts = attempts
        self.lastError = lastError
        self.nextAttempt = nextAttempt
        self.user = user
        self.department = department
        self.acceptedBy = acceptedBy
        self.claimedBy = claimedBy
        self.upstream = upstream
    }
}

/// A damaged entry moved aside by the store.
public struct QuarantinedEntry: Sendable, Hashable {
    public var id: String
    public var reason: String

    public init(id: String, reason: String) {
        self.id = id
        self.reason = reason
    }
}

/// How old a message is, as `queue list` and the console print it: `42s`, `17m`, `5h`, `3d`.
public enum QueueAge {
    public static func text(_ seconds: Double) -> String {
        let s = Int(max(0, seconds))
        if s < 120 { return "\(s)s" }
        if s < 7200 { return "\(s / 60)m" }
        if s < 172_800 { return "\(s / 3600)h" }
        return "\(s / 86400)d"
    }
}
