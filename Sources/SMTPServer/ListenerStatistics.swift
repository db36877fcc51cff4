import NIOConcurrencyHelpers

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
    }

    private let counts = NIOLockedValueBox(Counts())

    public init() {}

    public var snapshot: Counts { counts.withLockedValue { $0 } }

    func record(_ change: (inout Counts) -> Void) {
        counts.withLockedValue { change(&$0) }
    }
}
