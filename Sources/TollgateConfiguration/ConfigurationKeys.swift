/// The keys `tollgate.yaml` accepts, per section: the loader reads its mappings with
/// these tables, and a test checks each one is in `docs/configuration.md`, so the
/// reference cannot fall behind the loader.
public enum ConfigurationKeys {
    public static let top: Set<String> = ["hostname", "listeners", "tls", "limits", "spool", "upstreams", "delivery", "plugins", "stages", "policies", "metrics", "console", "log"]
    public static let tls: Set<String> = ["certificate", "key", "min_version", "ciphers", "client_ca_file"]
    public static let listener: Set<String> = ["name", "address", "tls", "auth", "auth_after_helo", "strict_envelopes", "clients"]
    public static let limits: Set<String> = [
        "max_message_size", "max_recipients", "max_connections", "max_connections_per_client", "command_timeout", "data_timeout",
        "stress_command_timeout", "bare_newline", "address_literals", "max_auth_failures_per_client", "auth_failure_window",
        "reverse_dns_timeout", "content_memory", "store_timeout", "drain_timeout",
    ]
    public static let spool: Set<String> = ["path", "postgres", "node", "lease", "history"]
    public static let postgres: Set<String> = ["url", "password_file", "tls", "ca_file", "statement_timeout", "connect_timeout", "max_connections"]
    public static let upstream: Set<String> = [
        "name", "hosts", "directory", "tls", "verify_certificate", "ca_file", "tls_min_version", "tls_ciphers", "auth",
        "max_connections", "connect_timeout", "command_timeout", "data_timeout",
    ]
    public static let upstreamAuth: Set<String> = ["username", "password_file"]
    public static let delivery: Set<String> = ["default_upstream", "retry", "max_lifetime", "concurrency"]
    public static let plugins: Set<String> = ["path"]
    public static let stage: Set<String> = ["use", "library", "settings", "timeout", "on_error", "mode"]
    public static let metrics: Set<String> = ["address"]
    public static let console: Set<String> = ["address", "users", "session_timeout", "hostnames"]
    public static let log: Set<String> = ["level", "format"]

    /// Every key as written in the reference: `limits.max_recipients`,
    /// `listeners[].auth`, `upstreams[].auth.username`, `spool.postgres.url`.
    public static var dotted: [String] {
        var keys = top.sorted()
        func add(_ prefix: String, _ set: Set<String>) { keys += set.sorted().map { prefix + $0 } }
        add("tls.", tls)
        add("listeners[].", listener)
        add("limits.", limits)
        add("spool.", spool)
        add("spool.postgres.", postgres)
        add("upstreams[].", upstream)
        add("upstreams[].auth.", upstreamAuth)
        add("delivery.", delivery)
        add("plugins.", plugins)
        add("stages[].", stage)
        add("metrics.", metrics)
        add("console.", console)
        add("log.", log)
        return keys
    }
}
