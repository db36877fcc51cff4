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
import TollgateConsole
import TollgatePipeline
import TollgatePolicy
import TollgateSpool
import TollgateDelivery
import TollgateMetrics

/// `tollgate serve`: the listeners, the queue runner and the metrics endpoint as
/// services in one group. SIGTERM/SIGINT drain and stop; SIGHUP reloads.
public final class TollgateServer: Sendable {
    private let configPath: String
    let logger: Logger
    let state: NIOLockedValueBox<TollgateConfiguration>
    /// The configuration the relay started with: what its sockets, spool and runner use.
    let started: TollgateConfiguration
    let group: MultiThreadedEventLoopGroup
    private let spool: any Spool
    private let metrics = RelayMetrics()
    private let runner: QueueRunner
    /// The plugins' counters: kept across reloads (and, in a cluster's database, restarts).
    private let counters: any PolicyCounterStore
    let listeners: [SMTPListener<RelaySessionDelegate>]
    private let authFailures: AuthFailureTracker
    private let policy: NIOLockedValueBox<PolicySetup>
    /// The running upstreams' settings, files included, as their transports were made.
    private let upstreamFingerprint: NIOLockedValueBox<UpstreamChanges.Fingerprint>
    /// Client sessions per listener that the open-file limit leaves room for.
    private let sessionCap: Int
    /// Blocking reverse-DNS lookups run here, never on an event loop.
    private let resolverPool = NIOThreadPool(numberOfThreads: 4)
    /// systemd's `NOTIFY_SOCKET`, when it started us (`Type=notify`).
    let notifier = SystemdNotifier()
    /// The web console (`console:`), if configured.
    let console: ConsoleServer?
    /// The delegate new sessions get; a reload replaces it and shuts the old one's
    /// stages down once its sessions have ended.
    private let currentDelegate: NIOLockedValueBox<RelaySessionDelegate>

    /// Everything is checked and opened here, so that `serve` fails fast and clearly.
    public init(configPath: String, configuration: TollgateConfiguration, logger: Logger, eventTally: EventTally? = nil) async throws {
        self.configPath = configPath
        self.logger = logger
        self.state = NIOLockedValueBox(configuration)
        self.started = configuration
        let openFiles = FileDescriptorBudget.raiseSoftLimit()
        let sessionCap = FileDescriptorBudget.sessionsPerListener(configuration, openFiles: openFiles)
        self.sessionCap = sessionCap
        if sessionCap < configuration.limits.maxConnections {
            logger.warning(
                "too few open files for limits.max_connections; lowered for each listener",
                metadata: [
                    "limits.max_connections": "\(sessionCap)", "limits.max_connections.configured": "\(configuration.limits.maxConnections)",
                    "process.open_files": "\(openFiles)", "process.open_files.reserved": "\(FileDescriptorBudget.reserved(configuration))",
                    "hint": "raise LimitNOFILE (systemd) or ulimit -n to at least \(configuration.limits.maxConnections * max(configuration.listeners.count, 1) + FileDescriptorBudget.reserved(configuration))",
                ]
            )
        }
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        metrics.setBuildInfo(version: TollgateVersion.string, abi: Int(TollgatePolicyABI.version))
        let node = NodeIdentity.current(named: configuration.spool.node)
        metrics.setNodeInfo(node: node.name, store: configuration.spool.postgres == nil ? "sqlite" : "postgres")
        self.spool = try await SpoolFactory.open(configuration.spool, node: node.name, logger: logger)
        spool.observeCommits { [metrics] duration, operations in metrics.spoolCommitted(duration, operations: operations) }
        self.runner = QueueRunner(
            spool: spool,
            transports: try Transports.make(configuration, group: group, logger: logger),
            settings: QueueRunner.Settings(configuration, owner: node.claimOwner),
            logger: logger,
            metrics: metrics
        )
        self.upstreamFingerprint = NIOLockedValueBox(UpstreamChanges.fingerprint(configuration.upstreams))
        let counters = SpoolFactory.counters(for: spool)
        self.counters = counters
        let setup = try await PipelineBuilder.build(configuration, logger: logger, metrics: metrics, counters: counters)
        let policy = NIOLockedValueBox(setup)
        self.policy = policy
        if let settings = configuration.console {
            let users = try Self.consoleUsers(settings)
            let statistics = eventTally.map { ConsoleStatisticsProvider(tally: $0, policy: policy, counters: counters) }
            var consoleLogger = logger
            consoleLogger[metadataKey: "console.address"] = .string("\(settings.host):\(settings.port)")
            self.console = ConsoleServer(
                configuration: settings, spool: spool, users: users, defaultUpstream: configuration.delivery.defaultUpstream, statistics: statistics,
                logger: consoleLogger
            )
        } else {
            self.console = nil
        }
        let sslContext = try Self.makeSSLContext(configuration, logger: logger)
        let delegate = RelaySessionDelegate(policy: RelayPolicyEvaluator(setup: setup), spool: spool, runner: runner, metrics: metrics, counters: counters, hostname: configuration.hostname, storeTimeout: .milliseconds(Int64(configuration.limits.storeTimeout * 1000)), timers: group, logger: logger)
        self.currentDelegate = NIOLockedValueBox(delegate)
        let group = self.group
        resolverPool.start()
        let reverseDNS = configuration.limits.reverseDNSTimeout > 0
            ? ReverseDNS(timeout: .milliseconds(Int64(configuration.limits.reverseDNSTimeout * 1000)), pool: resolverPool) : nil
        let contentBudget = ContentBudget(limit: configuration.limits.contentMemory)
        metrics.sampleContent { (contentBudget.bytesInUse, contentBudget.limit) }
        let authFailures = AuthFailureTracker(Self.authFailureLimits(configuration))
        self.authFailures = authFailures
        listeners = configuration.listeners.map { listener in
            SMTPListener(
                configuration: Self.listenerConfiguration(listener, configuration, sessionCap: sessionCap, reverseDNS: reverseDNS),
                session: Self.sessionConfiguration(listener, configuration),
                sslContext: listener.tls == .none ? nil : sslContext,
                delegate: delegate,
                authFailures: authFailures,
                contentBudget: contentBudget,
                group: group,
                logger: logger
            )
        }
    }

    static func makeSSLContext(_ configuration: TollgateConfiguration, logger: Logger) throws -> NIOSSLContext? {
        guard let tls = configuration.tls else { return nil }
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(tls.certificate).map { NIOSSLCertificateSource.certificate($0) }
            let key = try NIOSSLPrivateKey(file: tls.key, format: .pem)
            var tlsConfiguration = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
            tlsConfiguration.apply(tls.policy)
            if let clientCA = tls.clientCAFile {
                // Postfix's smtpd_tls_ask_ccert with smtpd_tls_CAfile: asked, not required.
                tlsConfiguration.certificateVerification = .optionalVerification
                tlsConfiguration.trustRoots = .file(clientCA)
            }
            let context = try NIOSSLContext(configuration: tlsConfiguration)
            if !context.preferServerCipherOrder() {
                logger.warning("cannot set the server's cipher order with this swift-nio-ssl; clients choose among the configured suites")
            }
            return context
        } catch {
            let files = ([tls.certificate, tls.key] + [tls.clientCAFile].compactMap { $0 }).joined(separator: ", ")
            throw StartupError("cannot load the TLS certificate, key or client CAs (\(files)): \(error)")
        }
    }

    /// The console's administrators (`console.users`); nil: read-only.
    static func consoleUsers(_ settings: TollgateConfiguration.Console) throws -> ConsoleUsers? {
        guard let path = settings.usersFile else { return nil }
        do {
            return try ConsoleUsers.load(path)
        } catch {
            throw StartupError("console.users: \(error.description)")
        }
    }

    static func authFailureLimits(_ c: TollgateConfiguration) -> AuthFailureTracker.Limits {
        AuthFailureTracker.Limits(maxFailures: c.limits.maxAuthFailuresPerClient, window: .milliseconds(Int64(c.limits.authFailureWindow * 1000)))
    }

    static func listenerConfiguration(
        _ l: TollgateConfiguration.Listener, _ c: TollgateConfiguration, sessionCap: Int, reverseDNS: ReverseDNS?
    ) -> SMTPListener<RelaySessionDelegate>.Configuration {
        var configuration = SMTPListener<RelaySessionDelegate>.Configuration(
            name: l.name, host: l.host, port: l.port, tls: l.tls, allowsClient: { [clients = l.clients] address in clients.contains { $0.contains(address) } },
            maxConnections: min(c.limits.maxConnections, sessionCap), maxConnectionsPerClient: c.limits.maxConnectionsPerClient,
            timeouts: .init(
                command: .milliseconds(Int64(c.limits.commandTimeout * 1000)), data: .milliseconds(Int64(c.limits.dataTimeout * 1000)),
                stressedCommand: .milliseconds(Int64(c.limits.stressCommandTimeout * 1000))
            )
        )
        configuration.reverseDNS = reverseDNS
        return configuration
    }

    static func sessionConfiguration(_ l: TollgateConfiguration.Listener, _ c: TollgateConfiguration) -> SMTPSessionConfiguration {
        SMTPSessionConfiguration(
            hostname: c.hostname, listenerName: l.name, tls: l.tls, auth: l.auth,
            maxMessageSize: c.limits.maxMessageSize, maxRecipients: c.limits.maxRecipients, bareNewline: c.limits.bareNewline,
            acceptsAddressLiteralRecipients: c.limits.acceptsAddressLiterals,
            authAfterHelo: l.authAfterHelo, strictEnvelopes: l.strictEnvelopes
        )
    }

    /// Runs until SIGTERM or SIGINT; then stops accepting, lets sessions finish (up to
    /// `limits.drain_timeout`), finishes deliveries in flight, and returns. A second
    /// SIGTERM or SIGINT closes the sessions with 421 and exits at once.
    public func run() async throws {
        let listenerService = ListenerService(server: self)
        let reloadService = ReloadService(server: self)
        // Shut down in reverse order: reloads stop, sessions drain, deliveries finish,
        // and the watchdog keeps systemd informed until the end.
        var services: [any Service] = [runner, listenerService, reloadService]
        if let notifier, let interval = notifier.watchdogInterval {
            services.insert(WatchdogService(notifier: notifier, interval: interval / 2, loops: group), at: 0)
        }
        if let metricsAddress = state.withLockedValue({ $0.metrics }) {
            let server = MetricsServer(
                metrics: metrics, group: group, logger: logger,
                health: { [spool] in (try? await spool.health()) != nil },
                sample: { [spool, metrics, listeners] in
                    metrics.spoolSampled(up: (try? await spool.health()) != nil)
                    // Grouped by the store (no listing of the whole queue per scrape).
                    if let b = try? await spool.breakdown() {
                        metrics.queueSampled(Dictionary(uniqueKeysWithValues: QueueState.allCases.map { ($0.rawValue, b.byState[$0] ?? 0) }))
                        metrics.claimsAndDepartmentsSampled(claims: b.claimsByNode, departments: b.byDepartment)
                    }
                    for listener in listeners {
                        let c = listener.statistics.snapshot
                        metrics.listenerSampled(.init(
                            listener: listener.configuration.name, openSessions: listener.activeConnections, accepted: c.accepted,
                            refusedClient: c.refusedClient, refusedLimit: c.refusedLimit, tlsHandshakes: c.tlsHandshakes,
                            tlsFailures: c.tlsFailures, bytesIn: c.bytesIn, bytesOut: c.bytesOut, refusals: c.refusals
                        ))
                    }
                },
                extra: { [policy, logger] registry in
                    // The current pipeline's stages (a reload replaces it), in order.
                    var samples: [(plugin: String, samples: [StageMetricSample])] = []
                    for stage in policy.withLockedValue({ $0 }).pipeline.stages {
                        samples.append((stage.name, await stage.stage.metrics()))
                    }
                    let rendered = StageMetricsExposition.render(samples, reserved: StageMetricsExposition.families(in: registry))
                    if !rendered.rejected.isEmpty {
                        logger.warning("stage metrics left out of /metrics: bad name, label or kind, or a name of the relay's own", metadata: ["metrics.rejected": "\(rendered.rejected.joined(separator: ", "))"])
                    }
                    return Array(rendered.text.utf8)
                }
            )
            services.append(MetricsService(server: server, host: metricsAddress.host, port: metricsAddress.port))
        }
        if let console { services.append(console) }
        let serviceGroup = ServiceGroup(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await serviceGroup.run()
        await policy.withLockedValue { $0 }.pipeline.shutdown()
        try await group.shutdownGracefully()
        try? await resolverPool.shutdownGracefully()
        logger.info("stopped")
    }

    /// SIGHUP: reads the configuration again. An invalid one is refused and the running
    /// one stays; a valid one replaces the pipeline and the per-session settings.
    /// The TLS certificate, key and settings are read again, so a renewed certificate
    /// is served to new connections without a restart. Upstreams that changed (hosts,
    /// TLS, credentials, limits) are replaced: the next delivery uses the new settings,
    /// deliveries in flight finish on the old connections, which then close. Listener
    /// addresses, delivery settings and the spool path take effect on restart.
    func reload() async {
        notifier?.reloading()
        defer { notifier?.ready(status: "accepting mail") }
        logger.info("reloading configuration", metadata: ["config.file": "\(configPath)"])
        let configuration: TollgateConfiguration
        do {
            configuration = try ConfigurationLoader.load(configPath)
        } catch {
            logger.error("new configuration refused; keeping the running one", metadata: ["config.problems": "\(error.description)"])
            return
        }
        let sslContext: NIOSSLContext?
        do {
            sslContext = try Self.makeSSLContext(configuration, logger: logger)
        } catch {
            logger.error("new configuration refused; keeping the running one", metadata: ["config.problems": "\(error)"])
            return
        }
        // The console's administrators are read again; its address takes effect on restart.
        let consoleUsers: ConsoleUsers?
        do {
            consoleUsers = try configuration.console.flatMap(Self.consoleUsers)
        } catch {
            logger.error("new configuration refused; keeping the running one", metadata: ["config.problems": "\(error)"])
            return
        }
        let newSetup: PolicySetup
        do {
            newSetup = try await PipelineBuilder.build(configuration, logger: logger, metrics: metrics, counters: counters)
        } catch {
            logger.error("new policy refused; keeping the running one", metadata: ["config.problems": "\(error)"])
            return
        }
        // Upstreams: only those that changed are made anew (their pools drained); a
        // password file that cannot be read refuses the whole reload.
        let fingerprint = UpstreamChanges.fingerprint(configuration.upstreams)
        let upstreamChanges = UpstreamChanges(from: upstreamFingerprint.withLockedValue { $0 }, to: fingerprint)
        let rebuilt: [String: any Transport]
        do {
            rebuilt = try Transports.make(configuration, only: upstreamChanges.rebuilt, group: group, logger: logger)
        } catch {
            logger.error("new configuration refused; keeping the running one", metadata: ["config.problems": "\(error)"])
            // The stages just built for it are never used: let them go now.
            await newSetup.pipeline.shutdown()
            return
        }
        await runner.replaceTransports(rebuilt, removing: upstreamChanges.removed)
        upstreamFingerprint.withLockedValue { $0 = fingerprint }
        let old = policy.withLockedValue { p -> PolicySetup in
            let old = p
            p = newSetup
            return old
        }
        let delegate = RelaySessionDelegate(policy: RelayPolicyEvaluator(setup: newSetup), spool: spool, runner: runner, metrics: metrics, counters: counters, hostname: configuration.hostname, storeTimeout: .milliseconds(Int64(configuration.limits.storeTimeout * 1000)), timers: group, logger: logger)
        let oldDelegate = currentDelegate.withLockedValue { d -> RelaySessionDelegate in
            defer { d = delegate }
            return d
        }
        for listener in listeners {
            if let l = configuration.listeners.first(where: { $0.name == listener.configuration.name }) {
                listener.update(session: Self.sessionConfiguration(l, configuration), delegate: delegate, sslContext: l.tls == .none ? nil : sslContext)
            }
        }
        authFailures.update(Self.authFailureLimits(configuration))
        console?.reload(users: consoleUsers, defaultUpstream: configuration.delivery.defaultUpstream)
        // What the file changed that only a restart applies: compared with the file the
        // relay started with, so a second reload still says it.
        let waiting = RestartOnlySettings.changed(from: started, to: configuration)
        state.withLockedValue { $0 = configuration }
        // Sessions that started before keep the old stages until they end; then the old
        // stages are shut down. The grace covers a connection accepted just before the
        // listeners took the new delegate, which tells the old one a moment later.
        Task {
            try? await Task.sleep(for: .seconds(5))
            await oldDelegate.sessionsEnded()
            await old.pipeline.shutdown()
        }
        var metadata: Logger.Metadata = [
            "policy.stages": "\(newSetup.pipeline.stages.count)", "policy.departments": "\(newSetup.policies.departments.count)",
            "upstreams.changes": "\(upstreamChanges.summary)",
        ]
        // The stages are new instances, but the counters are the relay's: kept.
        if newSetup.pipeline.stages.contains(where: { $0.name == "rate-limit" }) {
            metadata["rate_limit.counters"] = "kept"
        }
        if let tls = configuration.tls, let leaf = try? NIOSSLCertificate.fromPEMFile(tls.certificate).first {
            metadata["tls.certificate"] = "\(tls.certificate)"
            metadata["tls.certificate.not_after"] = "\(Date(timeIntervalSince1970: TimeInterval(leaf.notValidAfter)))"
        }
        if !waiting.isEmpty {
            metadata["config.restart_needed"] = "\(waiting.joined(separator: ","))"
            logger.warning("these changes take effect on restart", metadata: ["config.restart_needed": "\(waiting.joined(separator: ","))"])
        }
        logger.info("configuration reloaded", metadata: metadata)
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
