import NIOCore
import TollgateConfiguration

/// States of a queued message, as `tollgate queue list` shows them.
public enum QueueState: String, Sendable, Codable, CaseIterable {
    /// Waiting for its first attempt, or due now.
    case queued
    /// Tried and waiting for the next retry.
    case deferred
    /// Set aside by an administrator; never delivered until released.
    case held
}

/// A recipient's delivery state.
public enum RecipientState: String, Sendable, Codable, CaseIterable {
    case pending, delivered, failed
}

public struct SpoolRecipient: Sendable, Codable, Hashable {
    public var address: String
    /// DSN `NOTIFY=` values, if given (RFC 3461).
    public var notify: [String]?
    /// DSN `ORCPT=`, if given.
    public var originalRecipient: String?
    public var state: RecipientState = .pending
    public var lastReply: String?
    public var attempts = 0

    public init(address: String, notify: [String]? = nil, originalRecipient: String? = nil) {
        self.address = address
        self.notify = notify
        self.originalRecipient = originalRecipient
    }
}

/// What was known when the message was accepted: the envelope's parameters, the
/// session, the facts attached by policy stages and the decision trace.
public struct SpoolEnvelope: Sendable, Codable, Hashable {
    public var eightBit: Bool = false
    public var smtpUTF8: Bool = false
    public var ret: String?
    public var envelopeID: String?
    public var listener: String = ""
    public var clientAddress: String = ""
    public var helo: String?
    public var tls: Bool = false
    public var authenticatedUser: String?
    public var user: String?
    public var department: String?
    public var tags: [String: String] = [:]
    public var trace: [SpoolTraceEntry] = []
    /// Set on delivery status notifications that Tollgate generated: never bounced.
    public var isBounce: Bool = false

    public init() {}
}

/// One message in the spool.
public struct SpoolMessage: Sendable {
    public var id: String
    public var createdAt: Double
    /// The envelope sender without brackets; `""` is the null sender.
    public var sender: String
    public var recipients: [SpoolRecipient]
    public var envelope: SpoolEnvelope
    /// A trace header (`Received: …` with its CRLF) stored apart from the content and
    /// sent before it; empty when the content already starts with its own.
    public var receivedHeader: String
    /// The canonical content (CRLF lines, no dot-stuffing), in one buffer.
    public var content: ByteBuffer
    public var state: QueueState = .queued
    public var nextAttempt: Double
    public var attempts = 0
    public var lastError: String?
    /// The upstream chosen at acceptance (a department's route), if not the default.
    public var upstream: String?
    /// `tollgate queue bounce` asked for the DSN to be sent now.
    public var bounceRequested = false
    /// The node that stored the message; the store sets it at insert.
    public var acceptedBy = ""
    /// The owner of a live or expired delivery claim, if any.
    public var claimedBy: String?

    public init(
        id: String, createdAt: Double, sender: String, recipients: [SpoolRecipient], envelope: SpoolEnvelope,
        receivedHeader: String = "", content: ByteBuffer, upstream: String? = nil
    ) {
        self.id = id
        self.createdAt = createdAt
        self.sender = sender
        self.recipients = recipients
        self.envelope = envelope
        self.receivedHeader = receivedHeader
        self.content = content
        self.nextAttempt = createdAt
        self.upstream = upstream
    }

    /// Octets sent upstream: the trace header and the content.
    public var size: Int { receivedHeader.utf8.count + content.readableBytes }
    public var pendingRecipients: [SpoolRecipient] { recipients.filter { $0.state == .pending } }
    /// The checksum the store keeps, over the trace header and the content.
    public var checksum: Int64 { Checksum.of(header: receivedHeader, content: content) }
}

/// One line of a message's decision trace as the spool keeps it: which stage said
/// what, at which phase, and how long it took.
public struct SpoolTraceEntry: Sendable, Hashable, Codable {
    public var phase: String
    public var stage: String
    public var verdict: String
    public var reason: String
    public var milliseconds: Double
    /// A shadow stage's would-be verdict (absent in entries stored before shadow mode).
    public var shadow: Bool?

    public init(phase: String, stage: String, verdict: String, reason: String, milliseconds: Double, shadow: Bool = false) {
        self.phase = phase
        self.stage = stage
        self.verdict = verdict
        self.reason = reason
        self.milliseconds = milliseconds
        self.shadow = shadow ? true : nil
    }
}
