import Logging
import TollgateConfiguration
import TollgatePolicy
import TollgateSpool
import TollgateSpoolPostgres

/// Opens the store that `spool:` configures. The one place that names a store type:
/// the embedded `SQLiteSpool` under `spool.path`, or with `spool.postgres` the
/// cluster's shared `PostgresSpool`.
public enum SpoolFactory {
    public static func open(_ configuration: TollgateConfiguration.Spool, node: String, logger: Logger) async throws -> any Spool {
        if let postgres = configuration.postgres {
            return try await PostgresSpool.open(postgres, node: node, keepHistory: configuration.history, logger: logger)
        }
        return try SQLiteSpool(directory: configuration.path, node: node, keepHistory: configuration.history, logger: logger)
    }

    /// The counters plugins share (``PolicyHost/counters``): in the cluster's database
    /// with the PostgreSQL store, in this process's memory otherwise.
    public static func counters(for spool: any Spool) -> any PolicyCounterStore {
        if let postgres = spool as? PostgresSpool { return PostgresCounters(postgres) }
        return MemoryCounters()
    }
}
