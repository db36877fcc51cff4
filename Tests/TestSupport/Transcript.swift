/// A whole SMTP dialogue written down as a `.smtp` scenario: what a client sends,
/// what the server must answer, and the verdicts of the application where a
/// scenario needs them. The same file runs against the pure session state machine
/// and against a live `tollgate serve` (`Tests/SMTPServerTests/Transcripts/README.md`
/// has the grammar), in the spirit of OpenSMTPD's `smtpscript` and Postfix's
/// `.in`/`.ref` transcripts.
public struct Transcript: Sendable {
    /// The file name, e.g. `pipelining-group.smtp`.
    public var name: String
    /// The leading `#` lines: what the scenario shows.
    public var summary: String
    public var config = Config()
    /// `nil` when the scenario runs live; otherwise why not (`live: no REASON`).
    public var notLiveReason: String?
    /// What happens, in order, with `repeat` blocks expanded.
    public var steps: [Step] = []

    public init(name: String, summary: String = "") {
        self.name = name
        self.summary = summary
    }

    /// The listener and limits the scenario runs with (`config key=value …`).
    public struct Config: Sendable, Hashable {
        /// `none`, `starttls` or `implicit` (the machine runner only: TLS is simulated).
        public var tls = "none"
        /// `none`, `optional` or `required`.
        public var auth = "none"
        public var maxRecipients = 100
        /// The RFC 5321 minimum, so the live relay accepts the same value.
        public var maxMessageSize = 65_536
        /// `normalize` or `reject` (`limits.bare_newline`).
        public var bareNewline = "normalize"
        /// `listeners[].auth_after_helo` (`yes` or `no`).
        public var authAfterHelo = true
        /// `listeners[].strict_envelopes` (`yes` or `no`).
        public var strictEnvelopes = false

        public init() {}

        /// Whether a live relay can have this listener: plaintext, or STARTTLS (which
        /// the live runner never starts) with or without AUTH; `tollgate check`
        /// refuses AUTH without TLS.
        public var runsLive: Bool {
            tls == "none" ? auth == "none" : tls == "starttls"
        }
    }

    /// One thing that happens in the dialogue, with the line of the file it came from.
    public struct Step: Sendable {
        public var kind: Kind
        /// The line in the file (1-based).
        public var line: Int
        /// Which pass of the enclosing `repeat` blocks, outermost first (empty outside one).
        public var passes: [Int] = []

        public enum Kind: Sendable {
            /// The client writes these bytes in one write (consecutive `>`/`>>` lines).
            case send([UInt8])
            /// The server's next reply must match.
            case expect(ReplyExpectation)
            /// From now on, the application answers `phase` (a `SessionPhase` name) so.
            case policy(phase: String, Verdict)
            /// Whether the credential verifier answers (`false`: it is unavailable).
            case verifier(available: Bool)
            /// Whether storing a message succeeds.
            case store(succeeds: Bool)

            /// A `policy`, `verifier` or `store` line.
            public var isApplicationAnswer: Bool {
                switch self {
                case .send, .expect: return false
                case .policy, .verifier, .store: return true
                }
            }
        }

        /// `file:line` with the repeat passes, for failure messages.
        public func location(in file: String) -> String {
            "\(file):\(line)" + (passes.isEmpty ? "" : " (pass \(passes.map(String.init).joined(separator: "/")))")
        }
    }

    /// An application verdict for one phase (`policy PHASE …`).
    public enum Verdict: Sendable, Hashable {
        case proceed
        /// A 4xx or 5xx reply; the session goes on.
        case refuse(code: Int, enhancedCode: String, text: String)
        /// A reply (421), then the session is closed.
        case disconnect(code: Int, enhancedCode: String, text: String)
    }

    /// Whether any step needs the application's answers (only the machine runner gives them).
    public var needsApplication: Bool {
        steps.contains { $0.kind.isApplicationAnswer }
    }
}

/// A scenario that cannot be read: the file, the line and what is wrong.
public struct TranscriptError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var line: Int
    public var message: String

    public init(_ file: String, _ line: Int, _ message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String { "\(file):\(line): \(message)" }
}
