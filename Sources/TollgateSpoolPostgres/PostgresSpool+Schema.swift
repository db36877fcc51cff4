import Logging
import PostgresNIO

extension PostgresSpool {
    /// The schema version this binary writes. A database of an earlier version is
    /// migrated at start; one of a later version (a newer Tollgate ran on it) is refused.
    public static let schemaVersion = 6

    /// One migration per version, each run in the transaction that records it.
    static let migrations: [Int: [PostgresQuery]] = [
        1: [
            "CREATE SEQUENCE incarnations",
            """
            CREATE TABLE messages (
                id text PRIMARY KEY,
                created double precision NOT NULL,
                sender text NOT NULL,
                envelope bytea NOT NULL,
                size bigint NOT NULL,
                checksum bigint NOT NULL,
                checksum_kind bigint NOT NULL,
                state text NOT NULL,
                next_attempt double precision NOT NULL,
                attempts bigint NOT NULL DEFAULT 0,
                last_error text,
                upstream text,
                "user" text,
                department text,
                bounce_now boolean NOT NULL DEFAULT false,
                accepted_by text NOT NULL,
                received_header text NOT NULL,
                claimed_by text,
                claim_expires double precision
            )
            """,
            "CREATE INDEX messages_due ON messages (next_attempt) WHERE state IN ('queued', 'deferred')",
            "CREATE INDEX messages_claimed_by ON messages (claimed_by) WHERE claimed_by IS NOT NULL",
            "CREATE INDEX messages_created ON messages (created)",
            """
            CREATE TABLE recipients (
                message_id text NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
                idx bigint NOT NULL,
                address text NOT NULL,
                notify text,
                orcpt text,
                state text NOT NULL,
                last_reply text,
                attempts bigint NOT NULL DEFAULT 0,
                PRIMARY KEY (message_id, idx)
            )
            """,
            """
            CREATE TABLE bodies (
                message_id text PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
                content bytea NOT NULL
            )
            """,
            // Mail is mostly compressed or encoded already: no pglz on the database's CPU.
            "ALTER TABLE bodies ALTER COLUMN content SET STORAGE EXTERNAL",
            """
            CREATE TABLE quarantine (
                id text PRIMARY KEY,
                moved double precision NOT NULL,
                reason text NOT NULL,
                sender text,
                envelope bytea,
                content bytea,
                received_header text
            )
            """,
        ],
        // The cluster's counters for plugins (PostgresCounters): committed amounts
        // (reservation NULL) and reservations of transactions in progress.
        2: [
            """
            CREATE TABLE counter_entries (
                counter text NOT NULL,
                window_seconds double precision NOT NULL,
                at double precision NOT NULL,
                amount bigint NOT NULL,
                reservation text
            )
            """,
            "CREATE INDEX counter_entries_counter ON counter_entries (counter, window_seconds, at)",
            "CREATE INDEX counter_entries_reservation ON counter_entries (reservation) WHERE reservation IS NOT NULL",
        ],
        // Delivered and bounced messages for `queue show` (spool.history), no content.
        3: [
            """
            CREATE TABLE history (
                id text PRIMARY KEY,
                completed double precision NOT NULL,
                created double precision NOT NULL,
                sender text NOT NULL,
                envelope bytea NOT NULL,
                size bigint NOT NULL,
                attempts bigint NOT NULL,
                upstream text,
                accepted_by text NOT NULL,
                recipients bytea NOT NULL
            )
            """,
            "CREATE INDEX history_completed ON history (completed)",
        ],
        // Indexes for `list(filter:page:)` on a large queue: the listing's order
        // (created, id), and each filter with that order after it. Sender, user,
        // department and recipient are stored as given and matched with lower(), as
        // these indexes are built; a claim's node is the owner's first part.
        4: [
            "DROP INDEX messages_created",
            "CREATE INDEX messages_created ON messages (created, id)",
            "CREATE INDEX messages_state_created ON messages (state, created, id)",
            "CREATE INDEX messages_sender ON messages (lower(sender), created, id)",
            #"CREATE INDEX messages_user ON messages (lower("user"), created, id)"#,
            "CREATE INDEX messages_department ON messages (lower(department), created, id)",
            "CREATE INDEX messages_upstream ON messages (upstream, created, id)",
            "CREATE INDEX messages_accepted_by ON messages (accepted_by, created, id)",
            "CREATE INDEX messages_claim_node ON messages (split_part(claimed_by, '/', 1)) WHERE claimed_by IS NOT NULL",
            "CREATE INDEX recipients_pending_address ON recipients (lower(address)) WHERE state = 'pending'",
        ],
        // Each message's delivery attempts (DeliveryAttempt), kept while it is queued
        // and then as long as its history entry: no foreign key, since they outlive
        // the message's row. The recipients' results are JSON.
        5: [
            """
            CREATE TABLE attempts (
                message_id text NOT NULL,
                number bigint NOT NULL,
                at double precision NOT NULL,
                upstream text,
                host text,
                owner text NOT NULL,
                recipients bytea NOT NULL,
                PRIMARY KEY (message_id, number)
            )
            """,
        ],
        // The limit each counter entry was charged against, for the console's listing
        // of counters against their limits (PostgresCounters.listing).
        6: [
            "ALTER TABLE counter_entries ADD COLUMN limit_amount bigint",
        ],
    ]

    /// An arbitrary constant: the advisory lock that makes nodes starting together
    /// migrate one after the other.
    static let migrationLock: Int64 = 0x746f_6c6c_6761_7465

    /// Creates or migrates the schema on `connection`; returns the version found.
    @discardableResult
    static func migrate(_ connection: PostgresConnection, logger: Logger) async throws -> Int {
        try await connection.query("BEGIN", logger: logger)
        do {
            try await connection.query("SELECT pg_advisory_xact_lock(\(migrationLock))", logger: logger)
            try await connection.query("CREATE TABLE IF NOT EXISTS schema_version (version bigint NOT NULL)", logger: logger)
            var found = 0
            for try await row in try await connection.query("SELECT max(version) FROM schema_version", logger: logger) {
                found = try row.makeRandomAccess()[0].decode(Int?.self) ?? 0
            }
            if found > schemaVersion { throw newerSchema(found) }
            for version in (found + 1)...max(found + 1, schemaVersion) where version <= schemaVersion {
                for statement in migrations[version] ?? [] {
                    try await connection.query(statement, logger: logger)
                }
                try await connection.query("INSERT INTO schema_version (version) VALUES (\(version))", logger: logger)
                if version > 1 || found > 0 {
                    logger.notice("spool schema migrated", metadata: ["spool.schema.version": "\(version)"])
                }
            }
            try await connection.query("COMMIT", logger: logger)
            return found
        } catch {
            _ = try? await connection.query("ROLLBACK", logger: logger)
            throw error
        }
    }
}
