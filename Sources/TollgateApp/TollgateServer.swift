import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import SMTPCore
import SMTPServer
import ServiceLifecycle
import UnixSignals
import TollgateConfiguration
import TollgatePipeline
import TollgateSpool
import TollgateDelivery
import TollgateMetrics

/// `tollgate serve`: the listeners, the queue runner and the metrics endpoint as
/// services in one group. SIGTERM/SIGINT drain and stop; SIGHUP reloads.
public final class TollgateServer: Sendable {
    private let configPath: String
    private let logger: Logger
    private let state: NIOLockedValueBox<TollgateConfiguration>
    private let group: MultiThreadedEventLoopGroup
    private let spool: any Spool
    private let metrics = RelayMetrics()
    private let runner: QueueRunner
    private let listeners: [SMTPListener<RelaySessionDelegate>]
    private let policy: NIOLockedValueBox<PolicySetup>

    /// Everything is checked and opened here, so that `serve` fails fast and clearly.
    public init(configPath: String, configuration: TollgateConfiguration, logger: Logger) async throws {
        self.configPath = configPath
        self.logger = logger
        self.state = NIOLockedValueBox(configuration)
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let node = NodeIdentity.current()
        self.spool = try SpoolFactory.open(configuration.spool, node: node.name, logger: logger)
        self.runner = QueueRunner(
            spool: spool,
            transports: try Transports.make(configuration, group: group, logger: logger),
            settings: QueueRunner.Settings(configuration, owner: node.claimOwner),
            logger: logger,
            metrics: metrics
        )
        let setup = try await PipelineBuilder.build(configuration, logger: logger, metrics: metrics)
        self.policy = NIOLockedValueBox(setup)
        let sslContext = try Self.makeSSLContext(configuration)
        let delegate = RelaySessionDelegate(policy: RelayPolicyEvaluator(setup: setup), spool: spool, runner: runner, metrics: metrics, hostname: configuration.hostname, logger: logger)
        let group = self.group
        listeners = configuration.listeners.map { listener in
            SMTPListener(
                configuration: Self.listenerConfiguration(listener, configuration),
                session: Self.sessionConfiguration(listener, configuration),
                sslContext: listener.tls == .none ? nil : sslContext,
                delegate: delegate,
                group: group,
                logger: logger
            )
        }
    }

    static func makeSSLContext(_ configuration: TollgateConfiguration) throws -> NIOSSLContext? {
        guard let tls = configuration.tls else { return nil }
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(tls.certificate).map { NIOSSLCertificateSource.certificate($0) }
            let key = try NIOSSLPrivateKey(file: tls.key, format: .pem)
            var tlsConfiguration = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
            tlsConfiguration.minimumTLSVersion = .tlsv12
            return try NIOSSLContext(configuration: tlsConfiguration)
        } catch {
            throw StartupError("cannot load the TLS certificate or key (\(tls.certificate), \(tls.key)): \(error)")
        }
    }

    static func listenerConfiguration(_ l: TollgateConfiguration.Listener, _ c: TollgateConfiguration) -> SMTPListener<RelaySessionDelegate>.Configuration {
        SMTPListener<RelaySessionDelegate>.Configuration(
            name: l.name, host: l.host, port: l.port, tls: l.tls, allowsClient: { [clients = l.clients] address in clients.contains { $0.contains(address) } },
            maxConnections: c.limits.maxConnections, maxConnectionsPerClient: c.limits.maxConnectionsPerClient,
            timeouts: .init(command: .milliseconds(Int64(c.limits.commandTimeout * 1000)), data: .milliseconds(Int64(c.limits.dataTimeout * 1000)))
        )
    }

    static func sessionConfiguration(_ l: TollgateConfiguration.Listener, _ c: TollgateConfiguration) -> SMTPSessionConfiguration {
        SMTPSessionConfiguration(
            hostname: c.hostname, listenerName: l.name, tls: l.tls, auth: l.auth,
            maxMessageSize: c.limits.maxMessageSize, maxRecipients: c.limits.maxRecipients, bareNewline: c.limits.bareNewline,
            authAfterHelo: l.authAfterHelo, strictEnvelopes: l.strictEnvelopes
        )
    }

    /// Runs until SIGTERM or SIGINT; then stops accepting, lets sessions finish (up to
    /// 30 seconds), finishes deliveries in flight, and returns.
    public func run() async throws {
        let listenerService = ListenerService(server: self)
        let reloadService = ReloadService(server: self)
        var services: [any Service] = [runner, listenerService, reloadService]
        if let metricsAddress = state.withLockedValue({ $0.metrics }) {
            services.append(MetricsService(server: MetricsServer(metrics: metrics, group: group, logger: logger, health: { [spool] in (try? await spool.health()) != nil }), host: metricsAddress.host, port: metricsAddress.port))
        }
        let serviceGroup = ServiceGroup(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await serviceGroup.run()
        await policy.withLockedValue { $0 }.pipeline.shutdown()
        try await group.shutdownGracefully()
        logger.info("stopped")
    }

    /// SIGHUP: reads the configuration again. An invalid one is refused and the running
    /// one stays; a valid one replaces the pipeline and the per-session settings.
    /// Listener addresses, TLS files and the spool path take effect on restart.
    func reload() async {
        logger.info("reloading configuration", metadata: ["file": "\(configPath)"])
        let configuration: TollgateConfiguration
        do {
            configuration = try ConfigurationLoader.load(configPath)
        } catch {
            logger.error("new configuration refused; keeping the running one", metadata: ["problems": "\(error.description)"])
            return
        }
        let newSetup: PolicySetup
        do {
            newSetup = try await PipelineBuilder.build(configuration, logger: logger, metrics: metrics)
        } catch {
            logger.error("new policy refused; keeping the running one", metadata: ["problems": "\(error)"])
            return
        }
        let old = policy.withLockedValue { p -> PolicySetup in
            let old = p
            p = newSetup
            return old
        }
        let delegate = RelaySessionDelegate(policy: RelayPolicyEvaluator(setup: newSetup), spool: spool, runner: runner, metrics: metrics, hostname: configuration.hostname, logger: logger)
        for listener in listeners {
            if let l = configuration.listeners.first(where: { $0.name == listener.configuration.name }) {
                listener.update(session: Self.sessionConfiguration(l, configuration), delegate: delegate)
            }
        }
        state.withLockedValue { $0 = configuration }
        // Sessions that started before keep the old stages until they end.
        Task {
            try? await Task.sleep(for: .seconds(configuration.limits.commandTimeout))
            await old.pipeline.shutdown()
        }
        logger.info("configuration reloaded", metadata: ["stages": "\(newSetup.pipeline.stages.count)", "departments": "\(newSetup.policies.departments.count)"])
    }

    struct ListenerService: Service {
        let server: TollgateServer
        func run() async throws {
            for listener in server.listeners { try await listener.start() }
            try? await gracefulShutdown()
            server.logger.info("shutting down: draining sessions")
            await withTaskGroup(of: Void.self) { group in
                for listener in server.listeners {
                    group.addTask { await listener.shutdown(grace: .seconds(30)) }
                }
            }
        }
    }

    struct ReloadService: Service {
        let server: TollgateServer
        func run() async throws {
            let signals = await UnixSignalsSequence(trapping: .sighup)
            for await _ in signals.cancelOnGracefulShutdown() {
                await server.reload()
            }
        }
    }

    struct MetricsService: Service {
        let server: MetricsServer
        let host: String
        let port: Int
        func run() async throws {
            let channel = try await server.start(host: host, port: port)
            try? await gracefulShutdown()
            try? await channel.close()
        }
    }
}
