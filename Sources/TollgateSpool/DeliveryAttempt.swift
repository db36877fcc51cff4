/// One delivery attempt as the spool keeps it for `tollgate queue show` and the web
/// console: when, through which upstream and host, by which claimer, and what each
/// recipient tried got. Stored with the recipients' new states
/// (``Spool/recordAttempt(_:owner:recipients:nextAttempt:lastError:attempt:)``), kept
/// while the message is queued and then as long as its ``HistoryEntry``; a store keeps
/// the last ``keptPerMessage`` of a message.
///
/// Reply texts come from a remote server: ``Recipient`` keeps one line of at most
/// ``maximumTextBytes`` octets, so a hostile upstream cannot fill the store.
public struct DeliveryAttempt: Sendable, Hashable, Codable {
    /// What became of one recipient in this attempt.
    public enum State: String, Sendable, Hashable, Codable, CaseIterable {
        /// Accepted by the upstream (2xx).
        case delivered
        /// Still pending: a temporary failure (4xx), no reply, or a failure whose DSN
        /// could not be queued yet.
        case deferred
        /// Failed for good (5xx); the sender is told.
        case failed
    }

    /// One recipient tried in this attempt and the reply it got.
    public struct Recipient: Sendable, Hashable, Codable {
        public var address: String
        /// The reply code (`250`, `451`, `550`).
        public var code: Int
        /// The enhanced status code (RFC 3463, `"5.1.1"`), if the reply carried one.
        public var enhancedStatus: String?
        /// The reply's text on one line (a multi-line reply's lines joined by ` / `),
        /// at most ``DeliveryAttempt/maximumTextBytes`` octets.
        public var text: String
        public var state: State

        public init(address: String, code: Int, enhancedStatus: String?, text: String, state: State) {
            self.address = address
            self.code = code
            self.enhancedStatus = enhancedStatus.map { DeliveryAttempt.bounded($0, to: 32) }
            self.text = DeliveryAttempt.bounded(text, to: DeliveryAttempt.maximumTextBytes)
            self.state = state
        }

        /// `451 4.4.1 try later`, as logs and the stored last reply show a reply.
        public var reply: String {
            [String(code), enhancedStatus, text.isEmpty ? nil : text].compactMap { $0 }.joined(separator: " ")
        }
    }

    /// The message's attempt number, 1 for the first; the store sets it.
    public var number: Int
    /// When the attempt started, in seconds since 1970.
    public var at: Double
    /// The upstream tried, by name; `nil` when none was (the message was bounced by an
    /// administrator, or had outlived `delivery.max_lifetime`).
    public var upstream: String?
    /// The host that answered (`mx1.example:25`); `nil` when no host could be reached
    /// (the replies then say why) or none was tried.
    public var host: String?
    /// The claimer that made the attempt (`node/pid/tag`).
    public var owner: String
    public var recipients: [Recipient]

    public init(number: Int = 0, at: Double, upstream: String?, host: String?, owner: String, recipients: [Recipient]) {
        self.number = number
        self.at = at
        self.upstream = upstream
        self.host = host
        self.owner = owner
        self.recipients = recipients
    }

    /// The most octets of reply text kept per recipient and attempt.
    public static let maximumTextBytes = 512

    /// How many attempts a store keeps per message, the latest ones: a message
    /// deferred for days at short intervals stays small.
    public static let keptPerMessage = 50

    /// `text` on one line (control characters and line breaks become spaces) and cut, at a character
    /// boundary, to at most `limit` octets of UTF-8, ending in `…` when cut.
    static func bounded(_ text: String, to limit: Int) -> String {
        let breaking: Set<Unicode.GeneralCategory> = [.control, .lineSeparator, .paragraphSeparator]
        let line = String(String.UnicodeScalarView(text.unicodeScalars.map { breaking.contains($0.properties.generalCategory) ? " " : $0 }))
        guard line.utf8.count > limit else { return line }
        let ellipsis = "…"
        var kept = ""
        var used = ellipsis.utf8.count
        for character in line {
            let size = character.utf8.count
            if used + size > limit { break }
            kept.append(character)
            used += size
        }
        return kept + ellipsis
    }
}
