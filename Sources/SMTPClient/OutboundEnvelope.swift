import SMTPCore

/// One transaction to send upstream: the envelope of a stored message.
public struct OutboundEnvelope: Sendable, Hashable {
    /// The reverse-path without brackets; `""` is the null sender `<>`.
    public var sender: String
    /// Forward-paths without brackets, in the order their replies are reported.
    public var recipients: [String]
    /// The message size announced with `SIZE=` (RFC 1870); `0` means "use the content's size".
    public var size: Int
    /// The content has 8-bit octets (`BODY=8BITMIME`, RFC 6152). The client also scans
    /// the content, so a wrong `false` cannot put 8-bit octets on a 7-bit link.
    public var eightBit: Bool
    /// The message needs SMTPUTF8 (RFC 6531). Non-ASCII addresses imply it.
    public var smtpUTF8: Bool
    /// `RET=FULL` / `RET=HDRS` (RFC 3461 §4.3); sent only when the server offers DSN.
    public var ret: String?
    /// `ENVID=` in xtext form (RFC 3461 §4.4); sent only when the server offers DSN.
    public var envelopeID: String?
    /// `NOTIFY=` values per recipient (RFC 3461 §4.1), e.g. `["SUCCESS", "FAILURE"]`;
    /// missing entries mean none.
    public var notify: [[String]?]
    /// `ORCPT=` per recipient in its wire form (`rfc822;user@example.com`, xtext);
    /// missing entries mean none.
    public var orcpt: [String?]

    public init(
        sender: String,
        recipients: [String],
        size: Int = 0,
        eightBit: Bool = false,
        smtpUTF8: Bool = false,
        ret: String? = nil,
        envelopeID: String? = nil,
        notify: [[String]?] = [],
        orcpt: [String?] = []
    ) {
        self.sender = sender
        self.recipients = recipients
        self.size = size
        self.eightBit = eightBit
        self.smtpUTF8 = smtpUTF8
        self.ret = ret
        self.envelopeID = envelopeID
        self.notify = notify
        self.orcpt = orcpt
    }
}

/// What the upstream answered to one transaction.
public struct DeliveryReport: Sendable, Hashable {
    /// One reply per recipient, in envelope order. When MAIL FROM was refused every
    /// recipient carries that reply; when the server said 421 mid-transaction every
    /// recipient not already refused carries the 421.
    public var recipientReplies: [SMTPReply]
    /// The reply to DATA (if it was not 354) or to the final dot; `nil` when no recipient
    /// was accepted and so no content was sent.
    public var dataReply: SMTPReply?

    public init(recipientReplies: [SMTPReply], dataReply: SMTPReply?) {
        self.recipientReplies = recipientReplies
        self.dataReply = dataReply
    }

    /// The reply that decides recipient `index`'s fate (RELIABILITY F3, F5): its own
    /// refusal, else the reply to the content. 2xx delivered, 4xx retry, 5xx bounce.
    public func outcome(forRecipientAt index: Int) -> SMTPReply {
        let own = recipientReplies[index]
        guard own.isPositive else { return own }
        return dataReply ?? SMTPReply(451, "4.4.2", "no reply to the message content")
    }

    /// Indices of the recipients the upstream took responsibility for.
    public var deliveredIndices: [Int] {
        recipientReplies.indices.filter { outcome(forRecipientAt: $0).isPositive }
    }
}
