import Logging
import TollgateConfiguration

/// Opens the store that `spool:` configures. The one place that names a store type:
/// a second store plugs in as one more case here.
public enum SpoolFactory {
    public static func open(_ configuration: TollgateConfiguration.Spool, node: String, logger: Logger) throws -> any Spool {
        try SQLiteSpool(directory: configuration.path, node: node, logger: logger)
    }
}
