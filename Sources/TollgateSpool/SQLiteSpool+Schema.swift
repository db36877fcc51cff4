import GRDB
import TollgateConfiguration

extension SQLiteSpool {
    /// The schema, one migration per version; a database of any earlier version is
    /// brought up to date when it is opened.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE messages (
                    id TEXT PRIMARY KEY NOT NULL,
                    created REAL NOT NULL,
                    sender TEXT NOT NULL,
                    envelope BLOB NOT NULL,
                    size INTEGER NOT NULL,
                    checksum INTEGER NOT NULL,
                    state TEXT NOT NULL,
                    next_attempt REAL NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    last_error TEXT,
                    upstream TEXT,
                    user TEXT,
                    department TEXT,
                    bounce_now INTEGER NOT NULL DEFAULT 0
                );
                CREATE INDEX messages_due ON messages(state, next_attempt);
                CREATE TABLE recipients (
                    message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
                    idx INTEGER NOT NULL,
                    address TEXT NOT NULL,
                    notify TEXT,
                    orcpt TEXT,
                    state TEXT NOT NULL,
                    last_reply TEXT,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    PRIMARY KEY (message_id, idx)
                );
                CREATE TABLE bodies (
                    message_id TEXT PRIMARY KEY NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
                    content BLOB NOT NULL
                );
                CREATE TABLE quarantine (
                    id TEXT PRIMARY KEY NOT NULL,
                    moved REAL NOT NULL,
                    reason TEXT NOT NULL,
                    sender TEXT,
                    envelope BLOB,
                    content BLOB
                );
                """)
        }
        // Delivery claims with a lease, the accepting node, and a trace header stored
        // apart from the content (the checksum covers both; v1 rows have none).
        migrator.registerMigration("v2") { db in
            try db.execute(sql: """
                ALTER TABLE messages ADD COLUMN claimed_by TEXT;
                ALTER TABLE messages ADD COLUMN claim_expires REAL;
                ALTER TABLE messages ADD COLUMN accepted_by TEXT NOT NULL DEFAULT '';
                ALTER TABLE messages ADD COLUMN received_header TEXT NOT NULL DEFAULT '';
                ALTER TABLE quarantine ADD COLUMN received_header TEXT;
                """)
        }
        // v3: which checksum a row carries (0: FNV-1a, every earlier row; 1: XXH64).
        migrator.registerMigration("v3") { db in
            try db.execute(sql: "ALTER TABLE messages ADD COLUMN checksum_kind INTEGER NOT NULL DEFAULT 0")
        }
        // v4: delivered and bounced messages for `queue show` (spool.history), no content.
        migrator.registerMigration("v4") { db in
            try db.execute(sql: """
                CREATE TABLE history (
                    id TEXT PRIMARY KEY,
                    completed REAL NOT NULL,
                    created REAL NOT NULL,
                    sender TEXT NOT NULL,
                    envelope BLOB NOT NULL,
                    size INTEGER NOT NULL,
                    attempts INTEGER NOT NULL,
                    upstream TEXT,
                    accepted_by TEXT NOT NULL,
                    recipients BLOB NOT NULL
                );
                CREATE INDEX history_completed ON history (completed);
                """)
        }
        // v5: indexes for `list(filter:page:)` on a large queue: the listing's order
        // (created, id), and each filter with that order after it. Sender, user,
        // department and recipient are stored as given and matched case-insensitively:
        // their indexes are NOCASE, as the queries compare.
        migrator.registerMigration("v5") { db in
            try db.execute(sql: """
                CREATE INDEX messages_created ON messages (created, id);
                CREATE INDEX messages_state_created ON messages (state, created, id);
                CREATE INDEX messages_sender ON messages (sender COLLATE NOCASE, created, id);
                CREATE INDEX messages_user ON messages (user COLLATE NOCASE, created, id);
                CREATE INDEX messages_department ON messages (department COLLATE NOCASE, created, id);
                CREATE INDEX messages_upstream ON messages (upstream, created, id);
                CREATE INDEX messages_accepted_by ON messages (accepted_by, created, id);
                CREATE INDEX messages_claimed_by ON messages (claimed_by);
                CREATE INDEX recipients_pending_address ON recipients (address COLLATE NOCASE) WHERE state = 'pending';
                """)
        }
        // v6: each message's delivery attempts (DeliveryAttempt), kept while it is
        // queued and then as long as its history entry; no foreign key, since they
        // outlive the message's row. The recipients' results are JSON.
        migrator.registerMigration("v6") { db in
            try db.execute(sql: """
                CREATE TABLE attempts (
                    message_id TEXT NOT NULL,
                    number INTEGER NOT NULL,
                    at REAL NOT NULL,
                    upstream TEXT,
                    host TEXT,
                    owner TEXT NOT NULL,
                    recipients BLOB NOT NULL,
                    PRIMARY KEY (message_id, number)
                ) WITHOUT ROWID;
                """)
        }
        return migrator
    }
}
