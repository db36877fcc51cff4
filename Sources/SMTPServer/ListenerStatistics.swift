import NIOConcurrencyHelpers
import SMTPCore

/// What one listener has seen since it started: connections, TLS handshakes and
/// bytes, read by the metrics endpoint (`tollgate_smtp_*`). Counters only grow.
public final class ListenerStatistics: Sendable {
    public struct Counts: Sendable, Hashable {
        /// Connections given a session.
        public var accepted = 0
        /// Connections refused at once: the client is not in `clients`.
        public var refusedClient = 0
        /// Connections refused at once: a connection cap was reached.
        public var refusedLimit = 0
        public var tlsHandshakes = 0
        /// Handshakes that failed or were abandoned by the client.
        public var tlsFailures = 0
        /// Octets read from clients and written to them (after TLS decryption).
        public var bytesIn = 0
        public var bytesOut = 0
        /// Refusals (replies 4xx and 5xx) by ``refusalClass(_:)``.
        public var refusals: [String: Int] = [:]
    }

    /// A refusal's class: `4` or `5`, and the subject of its enhanced status code
    /// (RFC 3463 §3): `address` (X.1), `mailbox` (X.2), `system` (X.3: capacity, size),
    /// `network` (X.4), `protocol` (X.5), `content` (X.6), `policy` (X.7), else `other`.
    public static func refusalClass(_ reply: SMTPReply) -> (code: String, reason: String) {
        let code = reply.code >= 500 ? "5" : "4"
        let subject = reply.enhancedCode?.split(separator: ".").dropFirst().first
        let reason: String
        switch subject {
        case "1": reason = "address"
        case "2": reason = "mailbox"
        case "3": reason = "system"
        case "4": reason = "network"
        case "5": reason = "protocol"
        case "6": reason = "content"
        case "7": reason = "policy"
        default: reason = "other"
        }
        return (code, reason)
    }

    private let counts = NIOLockedValueBox(Counts())

    public init() {}

    public var snapshot: Counts { counts.withLockedValue { $0 } }

    func record(_ change: (inout Counts) -> Void) {
        counts.withLockedValue { change(&$0) }
    }
}
