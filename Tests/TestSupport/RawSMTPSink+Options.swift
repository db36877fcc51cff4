extension RawSMTPSink {
    /// How ``RawSMTPSink`` behaves. Defaults: a minimal ESMTP server without
    /// TLS or AUTH that advertises only ENHANCEDSTATUSCODES and accepts everything;
    /// turn on what a test needs.
    public struct Options: Sendable {
        /// TLS on the sink's port.
        public enum TLS: Sendable, Equatable {
            case none
            /// STARTTLS offered in EHLO.
            case starttls(certificatePath: String, keyPath: String)
            /// TLS from the first byte (SMTPS, port-465 style).
            case implicit(certificatePath: String, keyPath: String)

            /// STARTTLS with the server certificate of `certificates`.
            public static func starttls(_ certificates: TestCertificates) -> TLS {
                .starttls(certificatePath: certificates.certificatePath, keyPath: certificates.keyPath)
            }

            /// Implicit TLS with the server certificate of `certificates`.
            public static func implicit(_ certificates: TestCertificates) -> TLS {
                .implicit(certificatePath: certificates.certificatePath, keyPath: certificates.keyPath)
            }
        }

        public var tls: TLS = .none
        /// The highest TLS version the sink offers ("1.2"; nil: 1.3).
        public var tlsMaximumVersion: String?
        /// The TLS 1.2 suites the sink offers (an OpenSSL cipher list; nil: Python's default).
        public var tlsCiphers: String?
        /// Credentials for AUTH PLAIN and LOGIN. AUTH is offered only after
        /// TLS unless ``authWithoutTLS`` is set.
        public var authUser: String?
        public var authPassword: String?
        public var authWithoutTLS = false
        /// MAIL without successful AUTH gets `530 5.7.0 Authentication required`.
        public var requireAuth = false
        /// MAIL before STARTTLS gets `530 5.7.0 Must issue a STARTTLS command first`.
        public var requireTLS = false
        /// Advertise 8BITMIME (and accept BODY=7BIT/8BITMIME).
        public var advertise8BITMIME = false
        /// Advertise SMTPUTF8 (and accept the SMTPUTF8 parameter). Non-ASCII
        /// addresses without that parameter get `553 5.6.7`.
        public var advertiseSMTPUTF8 = false
        /// Advertise PIPELINING. Without it, commands sent before their
        /// predecessor's reply are recorded as pipelining violations.
        public var advertisePipelining = false
        /// Advertise CHUNKING and accept BDAT.
        public var advertiseChunking = false
        /// Advertise DSN (and accept RET, ENVID, NOTIFY, ORCPT).
        public var advertiseDSN = false
        /// Advertise `SIZE <maxSize>`, reject larger SIZE= (552 5.3.4) and larger messages.
        public var maxSize: Int?
        /// Local-part prefix → reply to RCPT, e.g. `"reject": "550 5.1.1 no such user"`,
        /// `"tempfail": "450 4.2.0 try later"`. The longest matching prefix wins.
        /// `"N*<reply>"` gives the reply the first N times per address, then accepts
        /// (for retry tests). Several lines: separate them with "\n".
        public var rcptReply: [String: String] = [:]
        /// Local-part prefix → reply to MAIL FROM, with the same conventions.
        public var mailReply: [String: String] = [:]
        /// The reply after the final dot (or BDAT LAST) instead of `250`, e.g.
        /// `"554 5.0.0 nope"`; `"N*<reply>"` for the first N messages only.
        /// The transaction is stored either way (``RawSMTPTransaction/accepted``).
        public var dataReply: String?
        /// The greeting instead of `220 …`. A `421` greeting closes the
        /// connection; another non-2xx greeting answers 503 to everything but QUIT.
        public var greetingReply: String?
        /// The reply to EHLO instead of `250` (HELO still works), e.g. `451 4.3.0 busy`.
        public var ehloReply: String?
        /// The first N DATA transfers are cut: some content is read, then the connection
        /// closes with no reply (RELIABILITY F6).
        public var dropInData = 0
        /// The first N DATA transfers stall: after `354` the sink reads nothing and never
        /// replies, for ``idleTimeout`` (RELIABILITY F6d).
        public var stallInData = 0
        /// After storing a message (its files written), wait this long before the reply
        /// to its final dot: a window in which the test knows the upstream has it.
        public var dataReplyDelay: Double = 0
        /// The host name in the greeting and EHLO reply.
        public var hostname = "raw-sink.test"
        /// A connection idle this long gets 421 and is closed.
        public var idleTimeout: Double = 60
        /// The sink exits by itself after this many seconds (and whenever its parent dies).
        public var lifetime: Double = 900

        public init() {}

        /// Starts from the defaults and lets `configure` change them.
        public init(_ configure: (inout Options) -> Void) {
            configure(&self)
        }

        /// The command-line arguments for `raw_smtp_sink.py`.
        var arguments: [String] {
            var result: [String] = ["--hostname", hostname, "--idle-timeout", String(idleTimeout), "--lifetime", String(lifetime)]
            switch tls {
            case .none:
                break
            case .starttls(let certificate, let key):
                result += ["--tls", "starttls", "--cert", certificate, "--key", key]
            case .implicit(let certificate, let key):
                result += ["--tls", "implicit", "--cert", certificate, "--key", key]
            }
            if let tlsMaximumVersion { result += ["--tls-max-version", tlsMaximumVersion] }
            if let tlsCiphers { result += ["--tls-ciphers", tlsCiphers] }
            if let authUser { result += ["--auth-user", authUser, "--auth-password", authPassword ?? ""] }
            let flags: [(Bool, String)] = [
                (authWithoutTLS, "--auth-without-tls"), (requireAuth, "--require-auth"), (requireTLS, "--require-tls"),
                (advertise8BITMIME, "--8bitmime"), (advertiseSMTPUTF8, "--smtputf8"),
                (advertisePipelining, "--pipelining"), (advertiseChunking, "--chunking"), (advertiseDSN, "--dsn"),
            ]
            result += flags.filter(\.0).map(\.1)
            if let maxSize { result += ["--max-size", String(maxSize)] }
            if let ehloReply { result += ["--ehlo-reply", ehloReply] }
            if dropInData > 0 { result += ["--drop-in-data", String(dropInData)] }
            if stallInData > 0 { result += ["--stall-in-data", String(stallInData)] }
            if dataReplyDelay > 0 { result += ["--data-reply-delay", String(dataReplyDelay)] }
            for (prefix, reply) in rcptReply.sorted(by: { $0.key < $1.key }) { result += ["--rcpt-reply", prefix + "=" + reply] }
            for (prefix, reply) in mailReply.sorted(by: { $0.key < $1.key }) { result += ["--mail-reply", prefix + "=" + reply] }
            if let dataReply { result += ["--data-reply", dataReply] }
            if let greetingReply { result += ["--greeting", greetingReply] }
            return result
        }
    }
}
