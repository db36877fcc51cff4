import SMTPClient
import SMTPCore
import SMTPServer
import TollgatePolicy

/// The whole configuration (`tollgate.yaml`, SPEC §3), with working defaults.
/// Decoding from YAML lives in ``ConfigurationLoader``.
public struct TollgateConfiguration: Sendable {
    public var file: String
    public var hostname: String = "localhost"
    public var listeners: [Listener] = []
    public var tls: TLSFiles?
    public var limits = Limits()
    public var spool = Spool()
    public var upstreams: [Upstream] = []
    public var delivery = Delivery()
    public var plugins = Plugins()
    public var stages: [Stage] = []
    /// The folder of department policy files, resolved.
    public var policies: String?
    public var metrics: Metrics?
    /// `console:` — the web console (SPEC §8); nil: off.
    public var console: Console?
    public var log = Log()

    public init(file: String) {
        self.file = file
    }

    public struct Listener: Sendable {
        public var name: String
        public var host: String
        public var port: Int
        public var tls: ListenerTLSMode = .none
        public var auth: ListenerAuthMode = .none
        /// AUTH accepted after HELO (Postfix does; printers rely on it).
        public var authAfterHelo = true
        /// `MAIL FROM:a@b` without brackets refused with 501 (Postfix `strict_rfc821_envelopes`).
        public var strictEnvelopes = false
        public var clients: [CIDRNetwork] = [try! CIDRNetwork.parse("127.0.0.0/8").get(), try! CIDRNetwork.parse("::1/128").get()]
        public var location: SourceLocation
    }

    public struct TLSFiles: Sendable {
        public var certificate: String
        public var key: String
        /// `min_version`, `ciphers`: Mozilla "intermediate" unless set.
        public var policy = TLSPolicy.intermediate
        /// `client_ca_file`: CAs (PEM) that client certificates are verified against.
        /// Set, the server asks clients for a certificate; a client may present none,
        /// but one that does not verify fails the handshake. Unset, none is asked for.
        public var clientCAFile: String?
    }

    public struct Limits: Sendable {
        public var maxMessageSize = 25 * 1024 * 1024
        public var maxRecipients = 100
        public var maxConnections = 2000
        public var maxConnectionsPerClient = 100
        public var commandTimeout: Double = 300
        public var dataTimeout: Double = 600
        /// `limits.stress_command_timeout`: the wait for a command once four fifths of
        /// `max_connections` are open on a listener (Postfix's stress timeout).
        public var stressCommandTimeout: Double = 10
        public var bareNewline: BareNewlinePolicy = .normalize
        /// `limits.max_auth_failures_per_client` within `limits.auth_failure_window`,
        /// across sessions; then AUTH gets 421 until the oldest ages out. 0: off.
        public var maxAuthFailuresPerClient = 10
        public var authFailureWindow: Double = 900
        /// `limits.content_memory`: content all sessions together may hold before new
        /// DATA commands get 451 4.3.0.
        public var contentMemory = 512 * 1024 * 1024
        /// `limits.store_timeout`: how long a session waits for its message to be
        /// stored before it is answered 451 4.3.0.
        public var storeTimeout: Double = 120
        /// `limits.drain_timeout`: on SIGTERM, how long sessions inside a transaction
        /// may take to finish it before they are told 421 4.3.2 and closed.
        public var drainTimeout: Double = 30
        /// `limits.reverse_dns_timeout`: how long the greeting waits for the client's
        /// name; 0 turns the lookup off.
        public var reverseDNSTimeout: Double = 5
        /// `limits.address_literals`: `reject` (the default) or `accept` recipients such as `x@[10.0.0.5]`.
        public var acceptsAddressLiterals = false
    }

    /// `spool:` (SPEC §6): the embedded store under `path`, or with `postgres` a shared
    /// database that every node of a cluster names.
    public struct Spool: Sendable {
        public var path = "var/spool"
        /// `spool.postgres`: the cluster's shared store instead of `path`.
        public var postgres: Postgres?
        /// `spool.node`: this node's name, unique in the cluster; `nil`: the host's name.
        public var node: String?
        /// `spool.lease`: how long a delivery claim lasts unless renewed.
        public var lease: Double = 60
        /// `spool.history`: how long delivered and bounced messages stay visible to
        /// `queue show` (their envelope, trace and results; never their content). 0: none.
        public var history: Double = 7 * 86400
        /// Where the `spool:` section is, for errors found when the store is opened.
        public var location: SourceLocation?
    }

    /// `spool.postgres`, with the URL taken apart.
    public struct Postgres: Sendable {
        /// The URL as written (it holds no password).
        public var url: String
        /// A host name or address; a path (`%2Frun%2Fpostgresql`) means the unix socket's folder.
        public var host: String
        public var port: Int
        public var user: String
        public var database: String
        /// `password_file`, resolved; its first line is the password.
        public var passwordFile: String?
        public var tls: PostgresTLSMode = .disable
        /// `ca_file`, for `verify-full`; the system's roots otherwise.
        public var caFile: String?
        /// `statement_timeout`: the server cancels a statement that runs longer, and the
        /// store gives up waiting for an answer a little later (a hung server).
        public var statementTimeout: Double = 30
        /// `connect_timeout`: how long opening one connection may take.
        public var connectTimeout: Double = 10
        /// `max_connections`: connections this node keeps to the database at most.
        public var maxConnections = 10
        public var location: SourceLocation

        public init(url: String, host: String, port: Int, user: String, database: String, location: SourceLocation = SourceLocation(file: "", line: 1, column: 1)) {
            self.url = url
            self.host = host
            self.port = port
            self.user = user
            self.database = database
            self.location = location
        }

        /// The unix socket's path when `host` is a folder.
        public var unixSocket: String? { host.hasPrefix("/") ? "\(host)/.s.PGSQL.\(port)" : nil }
    }

    /// `spool.postgres.tls`.
    public enum PostgresTLSMode: String, Sendable, CaseIterable {
        case disable
        case require
        case verifyFull = "verify-full"
    }

    public enum UpstreamKind: Sendable {
        case smtp(hosts: [(host: String, port: Int)])
        case directory(String)
    }

    public struct Upstream: Sendable {
        public var name: String
        public var kind: UpstreamKind
        public var tls: UpstreamTLSMode = .opportunistic
        public var verifyCertificate = true
        public var caFile: String?
        /// `tls_min_version`, `tls_ciphers`.
        public var tlsPolicy = TLSPolicy.intermediate
        public var username: String?
        public var passwordFile: String?
        public var maxConnections = 20
        /// `connect_timeout`, `command_timeout`, `data_timeout`: the TCP connect; each
        /// command's reply; the content's transfer and the reply to its final dot
        /// (Postfix's `smtp_connect_timeout`, `smtp_helo_timeout`, `smtp_data_done_timeout`).
        public var connectTimeout: Double = 30
        public var commandTimeout: Double = 300
        public var dataTimeout: Double = 600
        public var location: SourceLocation
    }

    public struct Delivery: Sendable {
        public var defaultUpstream: String?
        public var retry: [Double] = [60, 300, 900, 3600, 14400]
        public var maxLifetime: Double = 5 * 86400
        /// Parallel deliveries in flight across all upstreams.
        public var concurrency = 64
    }

    public struct Plugins: Sendable {
        public var path: [String] = []
    }

    public enum OnError: String, Sendable {
        case `defer`, accept, reject
    }

    /// `stages[].mode` (SPEC §8): `enforce` applies the stage's verdicts; `shadow` only
    /// records them (trace, log, metric) and goes on as if it had said continue.
    public enum StageMode: String, Sendable, CaseIterable {
        case enforce, shadow
    }

    public struct Stage: Sendable {
        public var use: String
        public var library: String?
        public var settings: PolicySettings
        public var timeout: Double = 10
        public var onError: OnError = .defer
        public var mode: StageMode = .enforce
        public var location: SourceLocation
    }

    public struct Metrics: Sendable {
        public var host: String
        public var port: Int
    }

    public struct Console: Sendable {
        public var host: String
        public var port: Int
        /// `users`: an `htpasswd -B` file of administrators; nil: read-only, every action refused.
        public var usersFile: String?
        /// `session_timeout`: how long a sign-in lasts without use (seconds).
        public var sessionTimeout: Double = 3600
        /// `hostnames`: names besides `localhost` and the address's own that browsers
        /// may use for the console (a proxy's name); other names get `421`.
        public var hostnames: [String] = []

        public init(host: String, port: Int, usersFile: String? = nil) {
            self.host = host
            self.port = port
            self.usersFile = usersFile
        }
    }

    public struct Log: Sendable {
        public var level = "info"
        public var format = "text"
    }

    /// The upstream named `name`.
    public func upstream(named name: String) -> Upstream? {
        upstreams.first { $0.name == name }
    }
}
