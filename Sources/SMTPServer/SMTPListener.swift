import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import SMTPCore

/// One listening socket (`listeners[]`): accepts connections, applies the client
/// allowlist and connection caps, and gives each session its handler.
public final class SMTPListener<Delegate: SMTPSessionDelegate>: Sendable {
    public struct Configuration: Sendable {
        public var name: String
        public var host: String
        public var port: Int
        public var tls: ListenerTLSMode
        /// Whether a client (its IP address's bytes) may connect at all.
        public var allowsClient: @Sendable ([UInt8]) -> Bool
        public var maxConnections: Int
        public var maxConnectionsPerClient: Int
        public var timeouts: SMTPTimeouts
        /// The client's name is looked up before the greeting; nil: it is not.
        public var reverseDNS: ReverseDNS?

        /// From this many open sessions on the listener is under stress and sessions
        /// wait ``SMTPTimeouts/stressedCommand`` for a command: four fifths of
        /// ``maxConnections``.
        public var stressSessions: Int { max(1, maxConnections - maxConnections / 5) }

        public init(name: String, host: String, port: Int, tls: ListenerTLSMode, allowsClient: @escaping @Sendable ([UInt8]) -> Bool, maxConnections: Int, maxConnectionsPerClient: Int, timeouts: SMTPTimeouts) {
            self.name = name
            self.host = host
            self.port = port
            self.tls = tls
            self.allowsClient = allowsClient
            self.maxConnections = maxConnections
            self.maxConnectionsPerClient = maxConnectionsPerClient
            self.timeouts = timeouts
        }
    }

    struct Connections {
        var total = 0
        var perClient: [String: Int] = [:]
        var channels: [ObjectIdentifier: any Channel] = [:]
        var nextSession: UInt64 = 0
        /// Whether ``total`` has reached the stress level (logged when it changes).
        var stressed = false
    }

    public let configuration: Configuration
    /// Connections, TLS handshakes and bytes since start, for `/metrics`.
    public let statistics = ListenerStatistics()
    private let session: NIOLockedValueBox<SMTPSessionConfiguration>
    private let delegate: NIOLockedValueBox<Delegate>
    private let sslContext: NIOLockedValueBox<NIOSSLContext?>
    private let authFailures: AuthFailureTracker?
    private let contentBudget: ContentBudget?
    private let group: any EventLoopGroup
    private let logger: Logger
    private let connections = NIOLockedValueBox(Connections())
    private let serverChannel = NIOLockedValueBox<(any Channel)?>(nil)
    private let sessionPrefix: String

    public init(
        configuration: Configuration,
        session: SMTPSessionConfiguration,
        sslContext: NIOSSLContext?,
        delegate: Delegate,
        authFailures: AuthFailureTracker? = nil,
        contentBudget: ContentBudget? = nil,
        group: any EventLoopGroup,
        logger: Logger
    ) {
        self.configuration = configuration
        self.session = NIOLockedValueBox(session)
        self.delegate = NIOLockedValueBox(delegate)
        self.sslContext = NIOLockedValueBox(sslContext)
        self.authFailures = authFailures
        self.contentBudget = contentBudget
        self.group = group
        var logger = logger
        logger[metadataKey: "smtp.listener"] = .string(configuration.name)
        self.logger = logger
        self.sessionPrefix = String(UInt32.random(in: 0x1000_0000...0xffff_ffff), radix: 36, uppercase: true)
    }

    /// New sessions use these from now on (configuration reload: a renewed
    /// certificate, new TLS settings); sessions already running keep what they started
    /// with.
    public func update(session: SMTPSessionConfiguration, delegate: Delegate, sslContext: NIOSSLContext?) {
        self.session.withLockedValue { $0 = session }
        self.delegate.withLockedValue { $0 = delegate }
        self.sslContext.withLockedValue { $0 = sslContext }
    }

    /// The bound address (useful with port 0).
    public var localAddress: SocketAddress? {
        serverChannel.withLockedValue { $0?.localAddress }
    }

    public var activeConnections: Int {
        connections.withLockedValue { $0.total }
    }

    public func start() async throws {
        let bootstrap = ServerBootstrap(group: group)
            // Room for a burst of connects: past the kernel's queue a SYN is dropped and the
            // client waits a second or more to try again (measured: 400 sessions that
            // reconnect per message ran at a seventh of the rate of 200 with 256 here).
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try self.initialize(channel)
                }
            }
        let channel = try await bootstrap.bind(host: configuration.host, port: configuration.port).get()
        serverChannel.withLockedValue { $0 = channel }
        logger.info("listening", metadata: ["smtp.listener.address": "\(channel.localAddress?.hostPort ?? "?")"])
    }

    /// Stops accepting, asks every session to finish, and waits up to `grace` for them;
    /// the rest get `421 4.3.2` and are closed.
    public func shutdown(grace: TimeAmount) async {
        await stopAccepting()
        let deadline = NIODeadline.now() + grace
        while activeConnections > 0, NIODeadline.now() < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        await closeSessions()
    }

    /// Closes the listening socket and asks every session to finish: idle ones get
    /// `421 4.3.2` at once, those inside a transaction after it.
    public func stopAccepting() async {
        if let channel = serverChannel.withLockedValue({ $0 }) {
            try? await channel.close()
        }
        for channel in connections.withLockedValue({ Array($0.channels.values) }) {
            channel.pipeline.fireUserInboundEventTriggered(SMTPServerEvent.drain)
        }
    }

    /// Tells every session still open `421 4.3.2` and closes it (the drain deadline,
    /// or a second stop signal); returns when they are closed, or after a second.
    /// Returns how many there were.
    @discardableResult
    public func closeSessions() async -> Int {
        let channels = connections.withLockedValue { Array($0.channels.values) }
        for channel in channels {
            channel.pipeline.fireUserInboundEventTriggered(SMTPServerEvent.drainDeadline)
        }
        let deadline = NIODeadline.now() + .seconds(1)
        while activeConnections > 0, NIODeadline.now() < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        for channel in connections.withLockedValue({ Array($0.channels.values) }) {
            try? await channel.close()
        }
        return channels.count
    }

    private func initialize(_ channel: any Channel) throws {
        let sync = channel.pipeline.syncOperations
        let remote = channel.remoteAddress
        let clientAddress = remote?.ipAddress ?? "unknown"
        let allowed = remote?.ipBytes.map(configuration.allowsClient) ?? false
        if !allowed {
            logger.notice("client not allowed", metadata: ["client.address": "\(clientAddress)"])
            statistics.record { $0.refusedClient += 1 }
            try sync.addHandler(RefuseHandler(reply: "554 5.7.1 Access denied\r\n"))
            return
        }
        let stressLevel = configuration.stressSessions
        let admitted: (UInt64, Bool)? = connections.withLockedValue { state in
            guard state.total < configuration.maxConnections,
                state.perClient[clientAddress, default: 0] < configuration.maxConnectionsPerClient
            else { return nil }
            state.total += 1
            state.perClient[clientAddress, default: 0] += 1
            state.channels[ObjectIdentifier(channel)] = channel
            state.nextSession += 1
            let enteredStress = !state.stressed && state.total >= stressLevel
            if enteredStress { state.stressed = true }
            return (state.nextSession, enteredStress)
        }
        guard let (sessionNumber, enteredStress) = admitted else {
            logger.notice("connection limit reached", metadata: ["client.address": "\(clientAddress)"])
            statistics.record { $0.refusedLimit += 1 }
            try sync.addHandler(RefuseHandler(reply: "421 4.7.0 Too many connections, try again later\r\n"))
            return
        }
        let timeouts = configuration.timeouts
        if enteredStress, timeouts.stressedCommand < timeouts.command {
            logger.notice(
                "under stress: \(stressLevel) of \(configuration.maxConnections) sessions open, waiting \(Self.seconds(timeouts.stressedCommand)) for a command instead of \(Self.seconds(timeouts.command))"
            )
        }
        statistics.record { $0.accepted += 1 }
        channel.closeFuture.whenComplete { [connections, logger] _ in
            let leftStress: Bool = connections.withLockedValue { state in
                state.total -= 1
                state.perClient[clientAddress, default: 1] -= 1
                if state.perClient[clientAddress] == 0 { state.perClient[clientAddress] = nil }
                state.channels[ObjectIdentifier(channel)] = nil
                // Back to normal at half the stress level, so that a load hovering at
                // the level does not flap.
                guard state.stressed, state.total <= stressLevel / 2 else { return false }
                state.stressed = false
                return true
            }
            if leftStress, timeouts.stressedCommand < timeouts.command {
                logger.notice("stress over: \(stressLevel / 2) or fewer sessions open, waiting \(Self.seconds(timeouts.command)) for a command again")
            }
        }
        let implicitTLS = configuration.tls == .implicit
        let sslContext = self.sslContext.withLockedValue { $0 }
        if implicitTLS {
            guard let sslContext else { throw ChannelError.operationUnsupported }
            try sync.addHandler(NIOSSLServerHandler(context: sslContext))
        }
        try sync.addHandler(
            SMTPServerHandler<Delegate>(
                configuration: session.withLockedValue { $0 },
                delegate: delegate.withLockedValue { $0 },
                sslContext: configuration.tls == .starttls ? sslContext : nil,
                implicitTLS: implicitTLS,
                timeouts: configuration.timeouts,
                sessionID: "\(sessionPrefix)-\(String(sessionNumber, radix: 36, uppercase: true))",
                clientAddress: clientAddress,
                authFailures: authFailures,
                reverseDNS: configuration.reverseDNS,
                contentBudget: contentBudget,
                stressed: { [connections] in connections.withLockedValue { $0.stressed } },
                statistics: statistics,
                logger: logger
            )
        )
    }

    static func seconds(_ amount: TimeAmount) -> String {
        let ms = amount.nanoseconds / 1_000_000
        return ms % 1000 == 0 ? "\(ms / 1000)s" : "\(ms)ms"
    }
}

/// Answers one line and closes: for refused clients and connection caps.
final class RefuseHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let reply: String

    init(reply: String) {
        self.reply = reply
    }

    func channelActive(context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: reply.utf8.count)
        buffer.writeString(reply)
        context.writeAndFlush(NIOAny(buffer)).whenComplete { [context = NIOLoopBound(context, eventLoop: context.eventLoop)] _ in
            context.value.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}

extension SocketAddress {
    /// `127.0.0.1:2525` or `[::1]:2525`, as the configuration writes an address (NIO's
    /// own description is `[IPv4]127.0.0.1/127.0.0.1:2525`); a Unix socket's path.
    public var hostPort: String {
        switch self {
        case .v4: return "\(ipAddress ?? "?"):\(port ?? 0)"
        case .v6: return "[\(ipAddress ?? "?")]:\(port ?? 0)"
        case .unixDomainSocket: return pathname ?? "?"
        }
    }
}
