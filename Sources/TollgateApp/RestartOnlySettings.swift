import TollgateConfiguration

/// The settings a reload (SIGHUP) cannot apply — the sockets the relay listens on and
/// what each listener fixed when it opened (TLS mode, `clients`, connection caps,
/// timeouts), the spool, the delivery runner's settings, logging — named as in the file, so that the
/// reload's log line can say which of the new file's changes wait for a restart instead
/// of leaving them silently unapplied.
enum RestartOnlySettings {
    /// The top-level keys whose restart-only parts differ between `old` and `new`, in
    /// the file's order (`listeners`, `limits`, `spool`, `delivery`, `metrics`, `console`, `log`).
    static func changed(from old: TollgateConfiguration, to new: TollgateConfiguration) -> [String] {
        let parts: [(String, (TollgateConfiguration) -> String)] = [
            ("listeners", listeners), ("limits", limits), ("spool", spool), ("delivery", delivery),
            ("metrics", metrics), ("console", console), ("log", log),
        ]
        return parts.compactMap { key, part in part(old) == part(new) ? nil : key }
    }

    static func listeners(_ c: TollgateConfiguration) -> String {
        c.listeners.map { "\($0.name)=\($0.host):\($0.port) \($0.tls.rawValue) \($0.clients)" }.sorted().joined(separator: " ")
    }

    /// The limits each listener took when it opened (the others apply at a reload).
    static func limits(_ c: TollgateConfiguration) -> String {
        let l = c.limits
        return "\(l.maxConnections) \(l.maxConnectionsPerClient) \(l.commandTimeout) \(l.dataTimeout) \(l.stressCommandTimeout) \(l.reverseDNSTimeout) \(l.contentMemory)"
    }

    static func spool(_ c: TollgateConfiguration) -> String {
        let s = c.spool
        return "\(s.path) \(s.postgres?.url ?? "-") \(s.node ?? "-") \(s.lease) \(s.history)"
    }

    static func delivery(_ c: TollgateConfiguration) -> String {
        "\(c.delivery.retry) \(c.delivery.maxLifetime) \(c.delivery.concurrency)"
    }

    static func metrics(_ c: TollgateConfiguration) -> String {
        guard let m = c.metrics else { return "off" }
        return "\(m.host):\(m.port)"
    }

    static func console(_ c: TollgateConfiguration) -> String {
        guard let console = c.console else { return "off" }
        // Its users file is read again at a reload: not restart-only.
        return "\(console.host):\(console.port) \(console.sessionTimeout) \(console.hostnames)"
    }

    static func log(_ c: TollgateConfiguration) -> String {
        "\(c.log.level) \(c.log.format)"
    }
}
