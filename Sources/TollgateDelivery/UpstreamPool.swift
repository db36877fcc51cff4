import Logging
import NIOCore
import SMTPClient
import TollgateConfiguration
import TollgateSpool
import TollgateMetrics

/// Connections to one SMTP upstream: at most `max_connections` at once, idle ones
/// reused, new ones made by trying `hosts` in order (failover).
actor UpstreamPool {
    struct Host: Sendable {
        var host: String
        var port: Int
    }

    let name: String
    private let hosts: [Host]
    private let configuration: SMTPClientConfiguration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let maxConnections: Int
    private var open = 0
    private var idle: [(connection: SMTPClientConnection, host: String, since: NIODeadline)] = []
    private var waiters: [CheckedContinuation<Void, Never>] = []
    /// Idle connections older than this are closed rather than reused.
    private let maxIdle = TimeAmount.seconds(30)
    /// Set by ``closeAll()``: a connection given back is closed, not kept (a reload
    /// replaced this pool; deliveries in flight finish on it, then it is gone).
    private var retired = false

    init(name: String, hosts: [Host], configuration: SMTPClientConfiguration, maxConnections: Int, group: any EventLoopGroup, logger: Logger) {
        self.name = name
        self.hosts = hosts
        self.configuration = configuration
        self.maxConnections = maxConnections
        self.group = group
        var logger = logger
        logger[metadataKey: "upstream.name"] = .string(name)
        self.logger = logger
    }

    /// A connection for one transaction, and the host it goes to. The caller must
    /// give it back with ``release(_:host:reusable:)``.
    func acquire() async throws -> (SMTPClientConnection, String) {
        while true {
            while let entry = idle.popLast() {
                if entry.connection.isUsable, NIODeadline.now() - entry.since < maxIdle {
                    return (entry.connection, entry.host)
                }
                open -= 1
                let connection = entry.connection
                Task { await connection.close() }
            }
            if open < maxConnections { break }
            await withCheckedContinuation { waiters.append($0) }
        }
        open += 1
        var lastError: (any Error)?
        for host in hosts {
            do {
                let connection = try await SMTPClientConnection.connect(
                    host: host.host, port: host.port, configuration: configuration, group: group, logger: logger
                )
                return (connection, "\(host.host):\(host.port)")
            } catch {
                logger.warning("upstream host failed", metadata: ["upstream.host": "\(host.host):\(host.port)", "error.message": "\(ErrorText.describe(error))"])
                lastError = error
            }
        }
        open -= 1
        wakeOne()
        throw lastError ?? SMTPClientError.connectFailed("no hosts")
    }

    func release(_ connection: SMTPClientConnection, host: String, reusable: Bool) async {
        // No RSET here: a completed transaction leaves the server ready for the next
        // MAIL (RFC 5321 §4.1.1.5), and `send` resets one that was left open itself.
        if reusable, connection.isUsable, !retired {
            idle.append((connection, host, .now()))
            wakeOne()
            return
        }
        open -= 1
        wakeOne()
        await connection.close()
    }

    func closeAll() async {
        retired = true
        let connections = idle.map(\.connection)
        open -= idle.count
        idle = []
        for c in connections { await c.close() }
    }

    private func wakeOne() {
        if !waiters.isEmpty { waiters.removeFirst().resume() }
    }
}
