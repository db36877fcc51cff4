import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import TollgateConfiguration
import TollgateSpool

/// The cluster's shared store (a ``Spool``, SPEC §6): the queue of every node in one
/// PostgreSQL database, on a `PostgresClient` connection pool.
///
/// **Durability.** A new message (envelope, recipients, trace header and content) is
/// stored by one statement, committed with the server's synchronous commit before
/// ``insert(_:claim:)`` returns, so the 250 follows a commit. Concurrent sessions'
/// messages share that statement (``PostgresGroupCommitter``).
///
/// **Claims.** Two columns of the message row, `claimed_by` and `claim_expires`, taken
/// with `SELECT … FOR UPDATE SKIP LOCKED` and set in the same statement, so two nodes
/// never claim one message at once however their calls interleave; renewals, releases
/// and results apply only while the claim is the caller's. Times are the callers'
/// (seconds since 1970), so the nodes' clocks must agree to well within the lease (NTP).
///
/// **Queue ids** end in an *incarnation* number that each process takes from the
/// database sequence `incarnations` when it opens the store (``QueueIDGenerator``):
/// unique across nodes and restarts by construction, never reused, and still in time
/// order. A sequence per id would cost a round trip per message, and a node name in
/// the id would make ids long and leak host names into headers.
///
/// **Faults.** Every operation has a deadline a little past `statement_timeout`, and
/// once the database is found unreachable operations fail at once until a probe
/// gets through (``PostgresReachability``): sessions answer 451 4.3.0, the queue
/// runner waits, nothing acknowledged is lost.
public final class PostgresSpool: Spool {
    public struct Error: Swift.Error, CustomStringConvertible {
        public var description: String
    }

    /// The node name recorded as `accepted_by`.
    public let node: String
    /// The URL, for messages (it holds no password).
    public let url: String
    let client: PostgresClient
    let logger: Logger
    let reachability: PostgresReachability
    let inserts: PostgresGroupCommitter<InsertRow, Void>
    /// The results of deliveries, grouped as the inserts are (``recordAttempt``).
    let results: PostgresGroupCommitter<AttemptRow, Bool>
    private let ids: QueueIDGenerator
    private let runner: Task<Void, Never>
    /// This process's incarnation (from the `incarnations` sequence).
    public let incarnation: Int64
    /// `spool.history` in seconds; 0 keeps none.
    let keepHistory: Double
    /// When the history was last pruned (``pruneHistory(now:)``).
    let lastPrune = NIOLockedValueBox(-Double.infinity)

    private init(
        node: String, url: String, client: PostgresClient, logger: Logger, reachability: PostgresReachability,
        incarnation: Int64, runner: Task<Void, Never>, keepHistory: Double
    ) {
        self.keepHistory = keepHistory
        self.node = node
        self.url = url
        self.client = client
        self.logger = logger
        self.reachability = reachability
        self.incarnation = incarnation
        self.ids = QueueIDGenerator(incarnation: UInt64(incarnation))
        self.runner = runner
        // A batch has its own deadline, so that one still waiting for a connection when
        // its sessions have been answered 451 is withdrawn rather than stored later.
        let deadline = reachability.deadline
        self.inserts = PostgresGroupCommitter(
            maxItems: 256, maxCost: 16 * 1024 * 1024,
            maxWait: deadline, isRetryable: PostgresReachability.isRetryableOneByOne,
            write: { batch in
                try await withDeadline(deadline, "insert") { try await Self.insertBatch(batch, client: client) }
                return Array(repeating: (), count: batch.count)
            }
        )
        let keep = keepHistory > 0
        self.results = PostgresGroupCommitter(
            maxItems: 256, maxCost: 4 * 1024 * 1024, key: { $0.id }, maxWait: deadline, isRetryable: PostgresReachability.isRetryableOneByOne,
            write: { batch in try await withDeadline(deadline, "record attempts") { try await Self.recordAttempts(batch, keepHistory: keep, client: client) } }
        )
    }

    deinit {
        runner.cancel()
    }

    /// Connects, creates or migrates the schema, and takes an incarnation. Fails with
    /// one line saying why: the database is unreachable, refuses the credentials, or
    /// has a schema newer than this binary.
    public static func open(_ settings: TollgateConfiguration.Postgres, node: String, keepHistory: Double = 7 * 86400, logger: Logger) async throws -> PostgresSpool {
        let password = try readPassword(settings)
        let (clientTLS, _) = try tls(settings)
        let startup = startupParameters(settings, node: node)
        let firstConfiguration = try connectionConfiguration(settings, password: password, node: node)
        let quiet = Self.quiet
        let incarnation: Int64 = try await withFirstConnection(settings, firstConfiguration) { connection in
            try await migrate(connection, logger: quiet)
            try await quarantineUnknownStates(connection, logger: logger)
            var value: Int64 = 0
            for try await row in try await connection.query("SELECT nextval('incarnations')", logger: quiet) {
                value = try row.makeRandomAccess()[0].decode(Int64.self)
            }
            return value
        }

        var configuration: PostgresClient.Configuration
        if let socket = settings.unixSocket {
            configuration = .init(unixSocketPath: socket, username: settings.user, password: password, database: settings.database)
        } else {
            configuration = .init(host: settings.host, port: settings.port, username: settings.user, password: password, database: settings.database, tls: clientTLS)
        }
        configuration.options.connectTimeout = .milliseconds(Int64(settings.connectTimeout * 1000))
        configuration.options.maximumConnections = settings.maxConnections
        configuration.options.additionalStartupParameters = startup
        configuration.options.keepAliveBehavior = .init(frequency: .seconds(15))
        let client = PostgresClient(configuration: configuration, backgroundLogger: quiet)
        let runner = Task { await client.run() }
        let probeConfiguration = firstConfiguration
        let reachability = PostgresReachability(
            deadline: .milliseconds(Int64((settings.statementTimeout + 5) * 1000)),
            logger: logger,
            probe: {
                let connection = try await PostgresConnection.connect(configuration: probeConfiguration, id: 1, logger: quiet)
                defer { Task { try? await connection.close() } }
                try await connection.query("SELECT 1", logger: quiet)
            }
        )
        return PostgresSpool(node: node, url: settings.url, client: client, logger: logger, reachability: reachability, incarnation: incarnation, runner: runner, keepHistory: keepHistory)
    }

    /// For `tollgate check`: connects and reads the schema version without changing
    /// anything. Returns the version found (0: an empty database, created at start);
    /// throws one line if the database is unreachable, refuses the credentials, or
    /// has a schema newer than this binary.
    public static func inspect(_ settings: TollgateConfiguration.Postgres, node: String) async throws -> Int {
        let configuration = try connectionConfiguration(settings, password: try readPassword(settings), node: node)
        let quiet = Self.quiet
        return try await withFirstConnection(settings, configuration) { connection in
            var found = 0
            let exists = try await rows(connection.query("SELECT to_regclass('schema_version') IS NOT NULL", logger: quiet))
            if try exists.first?[0].decode(Bool.self) == true {
                found = try await rows(connection.query("SELECT coalesce(max(version), 0) FROM schema_version", logger: quiet)).first?[0].decode(Int.self) ?? 0
            }
            if found > schemaVersion { throw newerSchema(found) }
            return found
        }
    }

    static func newerSchema(_ found: Int) -> Error {
        Error(description: "the database has schema version \(found), newer than this Tollgate's (\(schemaVersion)): upgrade Tollgate, or give it a database of its own")
    }

    static let quiet = Logger(label: "tollgate.spool.postgres") { _ in SwiftLogNoOpLogHandler() }

    /// Runs `body` on a connection of its own, opened and closed here, under a
    /// deadline; errors become one line naming the database.
    private static func withFirstConnection<T: Sendable>(
        _ settings: TollgateConfiguration.Postgres, _ configuration: PostgresConnection.Configuration,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        // Opening runs several statements (the migrations, an incarnation): room for
        // them beyond one statement's timeout, bounded all the same.
        let deadline = Duration.milliseconds(Int64((settings.connectTimeout + max(settings.statementTimeout, 5) * 2) * 1000))
        do {
            return try await withDeadline(deadline, "open") {
                let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: quiet)
                do {
                    let value = try await body(connection)
                    try? await connection.close()
                    return value
                } catch {
                    try? await connection.close()
                    throw error
                }
            }
        } catch let error as PostgresSpool.Error {
            throw Error(description: "the spool database \(settings.url): \(error.description)")
        } catch {
            throw Error(description: "cannot reach the spool database \(settings.url): \(describe(error))")
        }
    }

    static func connectionConfiguration(_ settings: TollgateConfiguration.Postgres, password: String?, node: String) throws -> PostgresConnection.Configuration {
        var c: PostgresConnection.Configuration
        if let socket = settings.unixSocket {
            c = .init(unixSocketPath: socket, username: settings.user, password: password, database: settings.database)
        } else {
            c = .init(host: settings.host, port: settings.port, username: settings.user, password: password, database: settings.database, tls: try tls(settings).1)
        }
        c.options.connectTimeout = .milliseconds(Int64(settings.connectTimeout * 1000))
        c.options.additionalStartupParameters = startupParameters(settings, node: node)
        return c
    }

    /// Stops the connection pool; later operations fail.
    public func close() async {
        runner.cancel()
        _ = await runner.value
    }

    public func makeQueueID() -> String { ids.next() }

    public func observeCommits(_ observer: @escaping CommitObserver) {
        inserts.observer.withLockedValue { $0 = observer }
    }

    // MARK: - Writing

    public func insert(_ message: SpoolMessage, claim: SpoolClaim?) async throws {
        let row = try InsertRow(message, node: node, claim: claim)
        try await reachability.run("cannot store the message") { [inserts] in
            try await inserts.submit(row, cost: row.cost)
        }
    }

    // MARK: - Claims

    public func claimDue(owner: String, now: Double, lease: Double, limit: Int) async throws -> [String] {
        guard limit > 0 else { return [] }
        let rows = try await execute("cannot claim messages", prepared: ClaimDueStatement.self, """
            WITH due AS (
                SELECT id, next_attempt FROM messages
                WHERE state IN ('queued', 'deferred') AND next_attempt <= \(now) AND (claimed_by IS NULL OR claim_expires <= \(now))
                ORDER BY next_attempt, id LIMIT \(limit)
                FOR UPDATE SKIP LOCKED
            ), taken AS (
                UPDATE messages m SET claimed_by = \(owner), claim_expires = \(now + lease)
                FROM due WHERE m.id = due.id RETURNING m.id, due.next_attempt
            )
            SELECT id FROM taken ORDER BY next_attempt, id
            """)
        return try rows.map { try $0[0].decode(String.self) }
    }

    public func renewClaim(_ id: String, owner: String, now: Double, lease: Double) async throws -> Bool {
        let rows = try await execute("cannot renew a claim", "UPDATE messages SET claim_expires = \(now + lease) WHERE id = \(id) AND claimed_by = \(owner) RETURNING id")
        return !rows.isEmpty
    }

    public func releaseClaim(_ id: String, owner: String) async throws {
        try await execute("cannot release a claim", "UPDATE messages SET claimed_by = NULL, claim_expires = NULL WHERE id = \(id) AND claimed_by = \(owner)")
    }

    @discardableResult
    public func releaseStaleClaims(node: String, keeping owner: String, isRunning: @escaping @Sendable (String) -> Bool) async throws -> Int {
        let prefix = node + "/"
        let owners = try await execute(
            "cannot read claims",
            "SELECT DISTINCT claimed_by FROM messages WHERE left(claimed_by, length(\(prefix))) = \(prefix) AND claimed_by <> \(owner)"
        ).map { try $0[0].decode(String.self) }
        let dead = owners.filter { !isRunning($0) }
        guard !dead.isEmpty else { return 0 }
        return try await execute(
            "cannot release claims", "UPDATE messages SET claimed_by = NULL, claim_expires = NULL WHERE claimed_by = ANY(\(dead)) RETURNING id"
        ).count
    }

    /// Grouped with the other deliveries' results that arrive while a statement runs
    /// (``results``, ``recordAttempts(_:keepHistory:client:)``): one round trip and one
    /// commit for all of them, as new messages are stored.
    @discardableResult
    public func recordAttempt(
        _ id: String, owner: String, recipients: [SpoolRecipient], nextAttempt: Double?, lastError: String?, attempt: DeliveryAttempt?
    ) async throws -> Bool {
        let row = try AttemptRow(id: id, owner: owner, recipients: recipients, nextAttempt: nextAttempt, lastError: lastError, attempt: attempt)
        let own = try await reachability.run("cannot record a delivery attempt") { [results] in
            try await results.submit(row, cost: row.cost)
        }
        if nextAttempt == nil { try await pruneHistory(now: Date().timeIntervalSince1970) }
        return own
    }

    /// History entries past `spool.history` go, with their attempts: at a message's end,
    /// at most every tenth of the retention (every minute with the default). Not part of
    /// the prepared `recordAttempt`: a generic plan cannot know that `completed < now −
    /// history` selects few rows of a large history, and might scan it all.
    func pruneHistory(now: Double) async throws {
        let due = lastPrune.withLockedValue { last -> Bool in
            guard now - last >= min(60, keepHistory / 10) || now < last else { return false }
            last = now
            return true
        }
        guard due else { return }
        try await execute("cannot prune the history", """
            WITH pruned AS (
                DELETE FROM history WHERE completed < \(now - keepHistory) RETURNING id
            )
            DELETE FROM attempts WHERE message_id IN (SELECT id FROM pruned)
            """)
    }

    // MARK: - Running statements

    /// Runs one statement under the deadline and returns its rows.
    @discardableResult
    func execute(_ what: String, _ query: PostgresQuery) async throws -> [PostgresRandomAccessRow] {
        try await reachability.run(what) { [client] in
            try await Self.rows(client.query(query))
        }
    }

    /// Runs one statement of the message path, prepared (``PreparedQuery``), under the deadline.
    @discardableResult
    func execute<Tag>(_ what: String, prepared tag: Tag.Type, _ query: PostgresQuery) async throws -> [PostgresRandomAccessRow] {
        try await reachability.run(what) { [client] in
            try await client.rows(query, prepared: tag)
        }
    }

    static func rows(_ sequence: PostgresRowSequence) async throws -> [PostgresRandomAccessRow] {
        var rows: [PostgresRandomAccessRow] = []
        for try await row in sequence { rows.append(row.makeRandomAccess()) }
        return rows
    }

    // MARK: - Settings

    static func readPassword(_ settings: TollgateConfiguration.Postgres) throws -> String? {
        guard let file = settings.passwordFile else { return nil }
        guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
            throw Error(description: "cannot read spool.postgres.password_file \(file)")
        }
        return String(text.split(separator: "\n", omittingEmptySubsequences: false).first ?? "").trimmingCharacters(in: .init(charactersIn: "\r"))
    }

    static func startupParameters(_ settings: TollgateConfiguration.Postgres, node: String) -> [(String, String)] {
        [
            ("statement_timeout", "\(Int(settings.statementTimeout * 1000))"),
            ("lock_timeout", "\(Int(settings.statementTimeout * 1000))"),
            ("application_name", String("tollgate \(node)".prefix(63))),
            // The 250 follows a commit on disk, whatever the database's default.
            ("synchronous_commit", "on"),
        ]
    }

    static func tls(_ settings: TollgateConfiguration.Postgres) throws -> (PostgresClient.Configuration.TLS, PostgresConnection.Configuration.TLS) {
        switch settings.tls {
        case .disable:
            return (.disable, .disable)
        case .require:
            var c = TLSConfiguration.makeClientConfiguration()
            c.certificateVerification = .none
            return (.require(c), .require(try NIOSSLContext(configuration: c)))
        case .verifyFull:
            var c = TLSConfiguration.makeClientConfiguration()
            c.certificateVerification = .fullVerification
            if let ca = settings.caFile { c.trustRoots = .file(ca) }
            return (.require(c), .require(try NIOSSLContext(configuration: c)))
        }
    }

    /// One line for an error: the server's message, or what went wrong on the wire.
    /// (`PSQLError`'s own description hides everything.)
    static func describe(_ error: any Swift.Error) -> String {
        if let error = error as? PostgresSpool.Error { return error.description }
        guard let error = error as? PSQLError else { return "\(error)" }
        if let message = error.serverInfo?[.message] {
            let state = error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
            return message + state
        }
        if let underlying = error.underlying {
            if let tls = tlsText(underlying) { return tls }
            return "\(error.code): \(underlying)"
        }
        return "\(error.code)"
    }

    /// A TLS failure to the database in words (BoringSSL's own text is a code dump).
    static func tlsText(_ error: any Swift.Error) -> String? {
        guard let ssl = error as? NIOSSLError else { return nil }
        let text = "\(ssl)"
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            return "the database's TLS certificate is not signed by spool.postgres.ca_file (or the system's roots), or has expired"
        }
        if case .handshakeFailed = ssl { return "the TLS handshake with the database failed" }
        if error is NIOSSLExtraError || text.contains("Hostname") { return "the database's TLS certificate does not name its host" }
        return "TLS with the database failed"
    }
}
