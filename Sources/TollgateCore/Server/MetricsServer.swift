import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// `metrics.address`: Prometheus text at `/metrics`, `ok` at `/healthz`.
public final class MetricsServer: Sendable {
    private let metrics: RelayMetrics
    private let group: any EventLoopGroup
    private let logger: Logger
    private let health: @Sendable () -> Bool

    public init(metrics: RelayMetrics, group: any EventLoopGroup, logger: Logger, health: @escaping @Sendable () -> Bool) {
        self.metrics = metrics
        self.group = group
        self.logger = logger
        self.health = health
    }

    public func start(host: String, port: Int) async throws -> any Channel {
        let metrics = self.metrics
        let health = self.health
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(metrics: metrics, health: health))
                }
            }
            .bind(host: host, port: port).get()
        logger.info("metrics listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
        return channel
    }
}

final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let metrics: RelayMetrics
    let health: @Sendable () -> Bool
    private var path = "/"

    init(metrics: RelayMetrics, health: @escaping @Sendable () -> Bool) {
        self.metrics = metrics
        self.health = health
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            path = head.uri
        case .body:
            break
        case .end:
            let (status, body, type): (HTTPResponseStatus, [UInt8], String) = {
                switch path {
                case "/metrics": return (.ok, metrics.exposition(), "text/plain; version=0.0.4")
                case "/healthz": return health() ? (.ok, Array("ok\n".utf8), "text/plain") : (.serviceUnavailable, Array("unhealthy\n".utf8), "text/plain")
                default: return (.notFound, Array("not found\n".utf8), "text/plain")
                }
            }()
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: type)
            headers.add(name: "Content-Length", value: "\(body.count)")
            headers.add(name: "Connection", value: "close")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { [context = NIOLoopBound(context, eventLoop: context.eventLoop)] _ in
                context.value.close(promise: nil)
            }
        }
    }
}
