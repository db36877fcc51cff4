/// A message whose delivery has ended — every recipient delivered or bounced — kept
/// for `spool.history` (7 days by default) so that `tollgate queue show ID` still
/// answers for the id the client was given in `250 … queued as ID`. The content is
/// not kept: only the envelope, the decision trace and each recipient's last reply; its
/// delivery attempts are kept beside it as long as it is (``Spool/attempts(_:)``).
public struct HistoryEntry: Sendable, Hashable {
    public var id: String
    public var createdAt: Double
    public var completedAt: Double
    public var sender: String
    public var size: Int
    /// Delivery attempts made, the last one included.
    public var attempts: Int
    public var upstream: String?
    public var acceptedBy: String
    public var envelope: SpoolEnvelope
    /// Each recipient as it ended: `delivered` or `failed`, with the upstream's last reply.
    public var recipients: [SpoolRecipient]

    public init(
        id: String, createdAt: Double, completedAt: Double, sender: String, size: Int, attempts: Int, upstream: String?, acceptedBy: String,
        envelope: SpoolEnvelope, recipients: [SpoolRecipient]
    ) {
        self.id = id
        self.createdAt = createdAt
        self.completedAt = completedAt
        self.sender = sender
        self.size = size
        self.attempts = attempts
        self.upstream = upstream
        self.acceptedBy = acceptedBy
        self.envelope = envelope
        self.recipients = recipients
    }

    /// `delivered`, `bounced`, or `partly bounced`.
    public var result: String {
        let failed = recipients.filter { $0.state == .failed }.count
        return failed == 0 ? "delivered" : failed == recipients.count ? "bounced" : "partly bounced"
    }
}
